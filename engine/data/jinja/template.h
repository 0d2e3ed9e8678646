#pragma once
// A compiled Jinja2 template with Hugging Face's chat-template environment: trim_blocks and
// lstrip_blocks, loop controls, the globals raise_exception(msg), namespace(...), range(...),
// dict(...) and strftime_now(fmt), and tojson as HF defines it (json.dumps with
// ensure_ascii=False). Undefined variables render as "" and are falsy; using an attribute of one
// is an error, as with Jinja's default Undefined. Strings are UTF-8; len, indexing and slicing
// count code points; upper/lower/title/capitalize change ASCII letters only.
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/data/jinja/value.h"

namespace prefengine::jinja {

struct Node;

class Template {
 public:
  // `name` prefixes every error ("NAME:LINE: ..."). Throws TemplateError for a syntax error.
  Template(const std::string& source, std::string name);
  ~Template();
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;

  // Renders with the variables of `context` (a JSON object). Throws TemplateError naming the
  // template and line for raise_exception() and every error while rendering.
  std::string render(const nlohmann::ordered_json& context) const;
  std::string render(const nlohmann::json& context) const;
  std::string render(const Dict& context) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const std::vector<std::unique_ptr<Node>>> body_;
};

}  // namespace prefengine::jinja
