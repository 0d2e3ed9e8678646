#pragma once
// Chat templates. Two kinds:
//  - a model's own Jinja2 template (Hugging Face's `chat_template` in tokenizer_config.json),
//    rendered by engine/data/jinja with HF's settings and variables: messages, tools (none),
//    add_generation_prompt, bos_token, eos_token, ... (the special tokens of the config) and
//    any extra variable set with set_variable (e.g. enable_thinking for Qwen3);
//  - a simple role-format template: each role has a format with one "{content}" placeholder,
//    e.g. "<|user|>\n{content}\n"; a conversation is the concatenation of its formatted messages,
//    optionally followed by the generation prompt (the assistant's prefix). Three presets.
// Either kind can carry the tokenizer's special-token facts (bos/eos strings, whether the
// tokenizer itself adds a BOS), so that the data readers add each special token once.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine {

namespace jinja {
class Template;
}

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

  // A Jinja2 chat template. `name` prefixes errors ("FILE:chat_template:LINE: ..."); `variables`
  // (a JSON object) are passed to every render besides messages, tools and add_generation_prompt.
  // Throws std::invalid_argument (jinja::TemplateError) for a syntax error.
  static ChatTemplate jinja(const std::string& source, const std::string& name,
                            nlohmann::json variables = nlohmann::json::object());

  // The chat template for a tokenizer at `tokenizer_path` (a folder, or a file such as
  // tokenizer.json / tokenizer.model whose folder is used). `choice` "auto": the
  // tokenizer_config.json's chat_template when it has one (a string, or the list form
  // [{name, template}] whose "default" entry is used), else the "default" preset; a preset name:
  // that preset. Either way the special tokens of tokenizer_config.json (bos_token, eos_token,
  // pad_token, unk_token and the other *_token strings) become template variables and the BOS
  // facts below are read: tokenizer.json's post_processor (a TemplateProcessing that starts with
  // the BOS token adds it; any other adds none) or, without tokenizer.json, add_bos_token.
  // An empty path or a folder without tokenizer_config.json gives the preset with no facts.
  // Throws std::invalid_argument naming the file and key for a malformed file or template.
  static ChatTemplate for_tokenizer(const std::string& tokenizer_path, const std::string& choice = "auto");

  bool is_jinja() const { return jinja_ != nullptr; }
  // Where the template came from: a preset name or "FILE:chat_template".
  const std::string& source_name() const { return source_name_; }
  // Sets a variable every render sees (overrides one from the tokenizer config).
  void set_variable(const std::string& name, const nlohmann::json& value);
  const nlohmann::json& variables() const { return variables_; }

  // Special-token facts: the BOS / EOS strings ("" when unknown) and whether the tokenizer adds
  // a BOS by itself (nullopt when unknown: the reader's add_bos option decides alone).
  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }
  std::optional<bool> tokenizer_adds_bos() const { return tokenizer_adds_bos_; }
  void set_special_tokens(std::string bos_token, std::string eos_token, std::optional<bool> tokenizer_adds_bos);
  // Whether a prompt whose text is `text` should get the tokenizer's BOS id: not when the text
  // already starts with the BOS token (a template that writes it, as Gemma 3's), nor when the
  // tokenizer adds none (the first Llama 3 release).
  bool wants_bos(const std::string& text) const;
  // Whether a response whose text is `text` should get the tokenizer's EOS id: not when the text
  // already ends with the EOS token (trailing whitespace aside), as rendered turns often do.
  bool wants_eos(const std::string& text) const;

  // The text of `messages`. An unknown role is an std::invalid_argument naming the known roles.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const;
  // The text that `completion` adds after apply(prompt, true): apply(prompt + completion, false)
  // without that prefix. Throws std::invalid_argument when the prompt text is not a prefix.
  std::string continuation(const std::vector<ChatMessage>& prompt,
                           const std::vector<ChatMessage>& completion) const;
  // The generation prompt of a role-format template; "" for a Jinja template.
  const std::string& generation_prompt() const { return generation_prompt_; }

 private:
  ChatTemplate(std::shared_ptr<const jinja::Template> t, std::string name, nlohmann::json variables);
  static ChatTemplate preset_formats(const std::string& name);

  struct RoleFormat {
    std::string prefix;
    std::string suffix;
  };
  std::map<std::string, RoleFormat> roles_;
  std::string generation_prompt_;
  std::shared_ptr<const jinja::Template> jinja_;  // set for a Jinja template
  std::string source_name_ = "default";
  nlohmann::json variables_ = nlohmann::json::object();
  std::string bos_token_;
  std::string eos_token_;
  std::optional<bool> tokenizer_adds_bos_;
};

}  // namespace prefengine
