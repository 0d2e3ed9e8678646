#pragma once
// A simple configurable chat template: each role has a format with one "{content}" placeholder,
// e.g. "<|user|>\n{content}\n"; a conversation is the concatenation of its formatted messages,
// optionally followed by the generation prompt (the assistant's prefix).
#include <map>
#include <string>
#include <vector>

namespace prefengine {

struct ChatMessage {
  std::string role;     // "system", "user", "assistant", or any role the template knows
  std::string content;  // the message text
};

class ChatTemplate {
 public:
  // The default: "<|system|>\n{content}\n", "<|user|>\n{content}\n", "<|assistant|>\n{content}\n"
  // with generation prompt "<|assistant|>\n".
  ChatTemplate();
  // role_formats: role -> format holding "{content}" exactly once. generation_prompt: appended
  // by apply(..., true); empty = the assistant format's prefix. Throws std::invalid_argument.
  ChatTemplate(const std::map<std::string, std::string>& role_formats,
               std::string generation_prompt = "");

  // A named preset: "default" (the constructor above), "chatml" (Qwen2, SmolLM2:
  // "<|im_start|>user\n{content}<|im_end|>\n") or "llama3" ("<|start_header_id|>user
  // <|end_header_id|>\n\n{content}<|eot_id|>"). An unknown name is an std::invalid_argument
  // listing the presets and the nearest one.
  static ChatTemplate preset(const std::string& name);

  // The text of `messages`. An unknown role is an std::invalid_argument naming the known roles.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // The text that `completion` adds after apply(prompt, true): apply(prompt + completion, false)
  // without that prefix. Throws std::invalid_argument when the prompt text is not a prefix.
  std::string continuation(const std::vector<ChatMessage>& prompt,
                           const std::vector<ChatMessage>& completion) const;
  const std::string& generation_prompt() const { return generation_prompt_; }

 private:
  struct RoleFormat {
    std::string prefix;
    std::string suffix;
  };
  std::map<std::string, RoleFormat> roles_;
  std::string generation_prompt_;
};

}  // namespace prefengine
