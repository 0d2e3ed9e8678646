#pragma once
// The Jinja2 lexer with Hugging Face's settings (trim_blocks=True, lstrip_blocks=True,
// keep_trailing_newline=False): splits a template into text and the tokens of its {{ }} and {% %}
// tags, applying whitespace control ({%- -%}, {{- -}}, {#- -#}, {%+ +%}); comments are dropped.
#include <string>
#include <vector>

namespace prefengine::jinja {

enum class TokenKind {
  kText,        // literal template text
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword
  kString,      // a string literal, unescaped
  kInt,
  kFloat,
  kOp,          // operator or punctuation: + - * / // % ** ~ == != < > <= >= ( ) [ ] { } , . : | =
  kEof,
};

struct Token {
  TokenKind kind;
  std::string text;
  int line = 1;
};

// Throws TemplateError "NAME:LINE: ..." for an unterminated tag, comment or string.
std::vector<Token> lex(const std::string& source, const std::string& name);

}  // namespace prefengine::jinja
