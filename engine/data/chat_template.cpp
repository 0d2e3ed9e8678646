#include "engine/data/chat_template.h"

#include <stdexcept>

#include "prefengine/plugin_options.h"

namespace prefengine {
namespace {

const std::string kPlaceholder = "{content}";

}  // namespace

ChatTemplate::ChatTemplate()
    : ChatTemplate({{"system", "<|system|>\n{content}\n"},
                    {"user", "<|user|>\n{content}\n"},
                    {"assistant", "<|assistant|>\n{content}\n"}}) {}

ChatTemplate::ChatTemplate(const std::map<std::string, std::string>& role_formats,
                           std::string generation_prompt)
    : generation_prompt_(std::move(generation_prompt)) {
  if (role_formats.empty()) throw std::invalid_argument("chat_template: no roles given");
  for (const auto& [role, format] : role_formats) {
    const size_t at = format.find(kPlaceholder);
    if (role.empty()) throw std::invalid_argument("chat_template: a role name is empty");
    if (at == std::string::npos || format.find(kPlaceholder, at + 1) != std::string::npos) {
      throw std::invalid_argument("chat_template." + role + ": the format must hold " + kPlaceholder +
                                  " exactly once, got '" + format + "'");
    }
    roles_[role] = RoleFormat{format.substr(0, at), format.substr(at + kPlaceholder.size())};
  }
  if (generation_prompt_.empty()) {
    auto it = roles_.find("assistant");
    if (it == roles_.end()) {
      throw std::invalid_argument(
          "chat_template: without an 'assistant' role the generation_prompt must be given");
    }
    generation_prompt_ = it->second.prefix;
  }
}

ChatTemplate ChatTemplate::preset(const std::string& name) {
  if (name == "default") return ChatTemplate();
  if (name == "chatml") {
    return ChatTemplate({{"system", "<|im_start|>system\n{content}<|im_end|>\n"},
                         {"user", "<|im_start|>user\n{content}<|im_end|>\n"},
                         {"assistant", "<|im_start|>assistant\n{content}<|im_end|>\n"}});
  }
  if (name == "llama3") {
    auto role = [](const std::string& r) {
      return "<|start_header_id|>" + r + "<|end_header_id|>\n\n{content}<|eot_id|>";
    };
    return ChatTemplate(
        {{"system", role("system")}, {"user", role("user")}, {"assistant", role("assistant")}});
  }
  const std::vector<std::string> names = {"default", "chatml", "llama3"};
  throw std::invalid_argument("chat_template: unknown preset '" + name + "' (did you mean '" +
                              nearest_name(name, names) + "'? known: default, chatml, llama3)");
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages,
                                bool add_generation_prompt) const {
  std::string text;
  for (const auto& m : messages) {
    auto it = roles_.find(m.role);
    if (it == roles_.end()) {
      std::vector<std::string> known;
      std::string list;
      for (const auto& [role, format] : roles_) {
        known.push_back(role);
        list += (list.empty() ? "" : ", ") + role;
      }
      throw std::invalid_argument("chat_template: unknown role '" + m.role + "' (did you mean '" +
                                  nearest_name(m.role, known) + "'? known: " + list + ")");
    }
    text += it->second.prefix + m.content + it->second.suffix;
  }
  if (add_generation_prompt) text += generation_prompt_;
  return text;
}

std::string ChatTemplate::continuation(const std::vector<ChatMessage>& prompt,
                                       const std::vector<ChatMessage>& completion) const {
  const std::string head = apply(prompt, true);
  std::vector<ChatMessage> all = prompt;
  all.insert(all.end(), completion.begin(), completion.end());
  const std::string full = apply(all, false);
  if (full.compare(0, head.size(), head) != 0) {
    throw std::invalid_argument(
        "chat_template: the completion does not start with the generation prompt '" +
        generation_prompt_ + "' (does it begin with an assistant message?)");
  }
  return full.substr(head.size());
}

}  // namespace prefengine
