#include "engine/data/chat_template.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "engine/data/jinja/template.h"
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
  ChatTemplate t = preset_formats(name);
  t.source_name_ = name;
  return t;
}

ChatTemplate ChatTemplate::preset_formats(const std::string& name) {
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
  if (jinja_) {
    nlohmann::ordered_json context = nlohmann::ordered_json::object();
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const auto& m : messages) list.push_back({{"role", m.role}, {"content", m.content}});
    context["messages"] = std::move(list);
    context["tools"] = nullptr;
    context["add_generation_prompt"] = add_generation_prompt;
    for (const auto& [k, v] : variables_.items()) context[k] = nlohmann::ordered_json::parse(v.dump());
    return jinja_->render(context);
  }
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
    if (jinja_) {
      throw std::invalid_argument(source_name_ + ": the conversation rendered with the completion does not "
                                  "start with the prompt rendered with add_generation_prompt (does the "
                                  "completion begin with an assistant message?)");
    }
    throw std::invalid_argument(
        "chat_template: the completion does not start with the generation prompt '" +
        generation_prompt_ + "' (does it begin with an assistant message?)");
  }
  return full.substr(head.size());
}

ChatTemplate::ChatTemplate(std::shared_ptr<const jinja::Template> t, std::string name, nlohmann::json variables)
    : jinja_(std::move(t)), source_name_(std::move(name)), variables_(std::move(variables)) {}

ChatTemplate ChatTemplate::jinja(const std::string& source, const std::string& name, nlohmann::json variables) {
  if (!variables.is_object()) throw std::invalid_argument(name + ": the template variables must be a JSON object");
  return ChatTemplate(std::make_shared<const jinja::Template>(source, name), name, std::move(variables));
}

void ChatTemplate::set_variable(const std::string& name, const nlohmann::json& value) { variables_[name] = value; }

void ChatTemplate::set_special_tokens(std::string bos_token, std::string eos_token,
                                      std::optional<bool> tokenizer_adds_bos) {
  bos_token_ = std::move(bos_token);
  eos_token_ = std::move(eos_token);
  tokenizer_adds_bos_ = tokenizer_adds_bos;
}

bool ChatTemplate::wants_bos(const std::string& text) const {
  if (tokenizer_adds_bos_.has_value() && !*tokenizer_adds_bos_) return false;
  return bos_token_.empty() || text.compare(0, bos_token_.size(), bos_token_) != 0;
}

bool ChatTemplate::wants_eos(const std::string& text) const {
  if (eos_token_.empty()) return true;
  size_t end = text.size();
  while (end > 0 && (text[end - 1] == ' ' || text[end - 1] == '\n' || text[end - 1] == '\t' || text[end - 1] == '\r')) {
    --end;
  }
  return end < eos_token_.size() || text.compare(end - eos_token_.size(), eos_token_.size(), eos_token_) != 0;
}

namespace {

nlohmann::json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path.string() + ": expected JSON, got a parse error (" + e.what() + ")");
  }
}

// A special token as tokenizer_config.json writes it: a string, or {"content": str, ...}; "" for null.
std::string token_string(const nlohmann::json& v, const std::string& where) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  throw std::invalid_argument(where + ": expected a token string, {\"content\": string} or null, got " + v.dump());
}

// Whether tokenizer.json's post_processor adds `bos` in front of a single sequence.
bool post_processor_adds(const nlohmann::json& pp, const std::string& bos) {
  if (!pp.is_object()) return false;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& p : pp["processors"]) {
      if (post_processor_adds(p, bos)) return true;
    }
    return false;
  }
  if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() && !pp["single"].empty()) {
    const auto& first = pp["single"][0];
    return first.is_object() && first.contains("SpecialToken") && first["SpecialToken"].is_object() &&
           first["SpecialToken"].value("id", "") == bos;
  }
  if ((type == "BertProcessing" || type == "RobertaProcessing") && pp.contains("cls") && pp["cls"].is_array() &&
      !pp["cls"].empty()) {
    return pp["cls"][0].is_string() && pp["cls"][0].get<std::string>() == bos;
  }
  return false;
}

}  // namespace

ChatTemplate ChatTemplate::for_tokenizer(const std::string& tokenizer_path, const std::string& choice) {
  if (choice != "auto") preset(choice);  // an unknown name fails before any file is read
  const std::string fallback = choice == "auto" ? "default" : choice;
  if (tokenizer_path.empty()) return preset(fallback);
  std::filesystem::path dir(tokenizer_path);
  if (!std::filesystem::is_directory(dir)) dir = dir.parent_path();
  const std::filesystem::path config_path = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(config_path)) return preset(fallback);
  const nlohmann::json config = read_json_file(config_path);
  const std::string file = config_path.string();
  if (!config.is_object()) throw std::invalid_argument(file + ": expected a JSON object");

  // The special tokens: every top-level *_token string (bos_token, eos_token, pad_token, ...).
  nlohmann::json variables = nlohmann::json::object();
  for (const auto& [key, value] : config.items()) {
    if (key.size() > 6 && key.compare(key.size() - 6, 6, "_token") == 0 &&
        (value.is_string() || (value.is_object() && value.contains("content") && value["content"].is_string()))) {
      variables[key] = token_string(value, file + ": " + key);
    }
  }
  const std::string bos = config.contains("bos_token") ? token_string(config["bos_token"], file + ": bos_token") : "";
  const std::string eos = config.contains("eos_token") ? token_string(config["eos_token"], file + ": eos_token") : "";
  // As HF's special_tokens_map: unset tokens are left undefined; the additional ones are a list.
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& t : config["additional_special_tokens"]) {
      list.push_back(token_string(t, file + ": additional_special_tokens"));
    }
    variables["additional_special_tokens"] = list;
  }

  std::optional<bool> adds_bos;
  const std::filesystem::path tokenizer_json = dir / "tokenizer.json";
  if (std::filesystem::exists(tokenizer_json)) {
    const nlohmann::json tj = read_json_file(tokenizer_json);
    adds_bos = !bos.empty() && tj.is_object() && tj.contains("post_processor") &&
               post_processor_adds(tj["post_processor"], bos);
  } else if (config.contains("add_bos_token")) {
    if (!config["add_bos_token"].is_boolean()) {
      throw std::invalid_argument(file + ": add_bos_token: expected true or false, got " + config["add_bos_token"].dump());
    }
    adds_bos = config["add_bos_token"].get<bool>() && !bos.empty();
  }

  std::string source;
  if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    const nlohmann::json& t = config["chat_template"];
    if (t.is_string()) {
      source = t.get<std::string>();
    } else if (t.is_array()) {
      std::string names;
      for (const auto& entry : t) {
        if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() || !entry.contains("template") ||
            !entry["template"].is_string()) {
          throw std::invalid_argument(file + ": chat_template: expected a list of {\"name\": string, \"template\": "
                                      "string}, got an entry " + entry.dump().substr(0, 80));
        }
        names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
        if (entry["name"] == "default") source = entry["template"].get<std::string>();
      }
      if (source.empty()) {
        throw std::invalid_argument(file + ": chat_template: the list has no \"default\" template (names: " + names + ")");
      }
    } else {
      throw std::invalid_argument(file + ": chat_template: expected a string or a list of {name, template}, got " +
                                  t.dump().substr(0, 80));
    }
  }
  ChatTemplate result = choice == "auto" && !source.empty() ? jinja(source, file + ":chat_template", variables)
                                                            : preset(fallback);
  result.set_special_tokens(bos, eos, adds_bos);
  return result;
}

}  // namespace prefengine
