#include "engine/data/jinja/lexer.h"

#include <cctype>

#include "engine/data/jinja/value.h"

namespace prefengine::jinja {
namespace {

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

[[noreturn]] void fail(const std::string& name, int line, const std::string& what) {
  throw TemplateError(name + ":" + std::to_string(line) + ": " + what);
}

class Lexer {
 public:
  Lexer(std::string source, std::string name) : src_(std::move(source)), name_(std::move(name)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      const size_t open = find_open(pos);
      std::string text = src_.substr(pos, open - pos);
      const int text_line = line_;
      if (open == src_.size()) {
        emit_text(text, text_line);
        advance_to(open);
        break;
      }
      const char kind = src_[open + 1];  // '{', '%' or '#'
      const char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_ws(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only whitespace between the line start and a block or comment tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        const bool line_starting = pos == 0 || src_[pos - 1] == '\n';
        if (l_pos > 0 || line_starting) {
          bool blank = true;
          for (size_t i = l_pos; i < text.size(); ++i) blank = blank && (text[i] == ' ' || text[i] == '\t' ||
                                                                          text[i] == '\v' || text[i] == '\f' ||
                                                                          text[i] == '\r');
          if (blank) text.resize(l_pos);
        }
      }
      emit_text(text, text_line);
      advance_to(open + 2 + ((sign == '-' || sign == '+') ? 1 : 0));
      size_t after = 0;
      if (kind == '#') {
        after = lex_comment();
      } else {
        after = lex_tag(kind == '{');
      }
      advance_to(after);
      pos = after;
    }
    tokens_.push_back({TokenKind::kEof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_open(size_t from) const {
    for (size_t i = from; i + 1 < src_.size(); ++i) {
      if (src_[i] == '{' && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return src_.size();
  }

  void emit_text(const std::string& text, int line) {
    if (!text.empty()) tokens_.push_back({TokenKind::kText, text, line});
  }

  void advance_to(size_t pos) {
    for (; cur_ < pos; ++cur_) {
      if (src_[cur_] == '\n') ++line_;
    }
  }

  // After a closing tag: '-' strips all whitespace; a block or comment end without '+' drops
  // one newline (trim_blocks). Returns the position after what is skipped.
  size_t after_close(size_t close_end, char sign, bool is_block) const {
    size_t p = close_end;
    if (sign == '-') {
      while (p < src_.size() && is_ws(src_[p])) ++p;
    } else if (is_block && sign != '+' && p < src_.size() && src_[p] == '\n') {
      ++p;
    }
    return p;
  }

  size_t lex_comment() {
    const size_t close = src_.find("#}", cur_);
    if (close == std::string::npos) fail(name_, line_, "unterminated comment: missing '#}'");
    const char sign = close > cur_ && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : '\0';
    return after_close(close + 2, sign, true);
  }

  size_t lex_tag(bool is_var) {
    const int start_line = line_;
    tokens_.push_back({is_var ? TokenKind::kVarBegin : TokenKind::kBlockBegin, "", line_});
    const char close = is_var ? '}' : '%';
    int depth = 0;  // open brackets
    size_t p = cur_;
    while (true) {
      while (p < src_.size() && is_ws(src_[p])) {
        if (src_[p] == '\n') ++line_;
        ++p;
      }
      cur_ = p;
      if (p >= src_.size()) {
        fail(name_, start_line, std::string("unterminated tag: missing '") + (is_var ? "}}" : "%}") + "'");
      }
      const char c = src_[p];
      // The closer, possibly with a whitespace-control sign.
      if (depth == 0) {
        char sign = '\0';
        size_t q = p;
        if ((c == '-' || c == '+') && q + 2 < src_.size() + 0 && src_[q + 1] == close && src_[q + 2] == '}') {
          sign = c;
          ++q;
        }
        if (q + 1 < src_.size() && src_[q] == close && src_[q + 1] == '}') {
          tokens_.push_back({is_var ? TokenKind::kVarEnd : TokenKind::kBlockEnd, "", line_});
          return after_close(q + 2, sign, !is_var);
        }
      }
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = p;
        while (e < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        tokens_.push_back({TokenKind::kName, src_.substr(p, e - p), line_});
        p = e;
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        size_t e = p;
        bool is_float = false;
        while (e < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) ++e;
        if (e + 1 < src_.size() && src_[e] == '.' && std::isdigit(static_cast<unsigned char>(src_[e + 1]))) {
          is_float = true;
          ++e;
          while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
          size_t f = e + 1;
          if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
          if (f < src_.size() && std::isdigit(static_cast<unsigned char>(src_[f]))) {
            is_float = true;
            e = f;
            while (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) ++e;
          }
        }
        std::string digits;
        for (size_t i = p; i < e; ++i) {
          if (src_[i] != '_') digits += src_[i];
        }
        tokens_.push_back({is_float ? TokenKind::kFloat : TokenKind::kInt, digits, line_});
        p = e;
      } else if (c == '\'' || c == '"') {
        p = lex_string(p);
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                           ">",  "(",  ")",  "[",  "]",  "{",  "}", ",", ".", ":", "|", "="};
        std::string op;
        for (const char* candidate : kOps) {
          const std::string s(candidate);
          if (src_.compare(p, s.size(), s) == 0) {
            op = s;
            break;
          }
        }
        if (op.empty()) fail(name_, line_, std::string("unexpected character '") + c + "'");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        tokens_.push_back({TokenKind::kOp, op, line_});
        p += op.size();
      }
    }
  }

  size_t lex_string(size_t p) {
    const char quote = src_[p];
    const int start_line = line_;
    std::string value;
    size_t i = p + 1;
    for (; i < src_.size() && src_[i] != quote; ++i) {
      char c = src_[i];
      if (c == '\n') ++line_;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (++i >= src_.size()) break;
      c = src_[i];
      switch (c) {
        case 'n': value += '\n'; break;
        case 't': value += '\t'; break;
        case 'r': value += '\r'; break;
        case '0': value += '\0'; break;
        case 'a': value += '\a'; break;
        case 'b': value += '\b'; break;
        case 'f': value += '\f'; break;
        case 'v': value += '\v'; break;
        case '\\': value += '\\'; break;
        case '\'': value += '\''; break;
        case '"': value += '"'; break;
        case '\n': ++line_; break;  // line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
          if (i + n >= src_.size()) fail(name_, line_, "truncated \\" + std::string(1, c) + " escape");
          const std::string hex = src_.substr(i + 1, n);
          for (char h : hex) {
            if (!std::isxdigit(static_cast<unsigned char>(h))) fail(name_, line_, "bad \\" + std::string(1, c) + " escape");
          }
          utf8_append(static_cast<char32_t>(std::stoul(hex, nullptr, 16)), &value);
          i += n;
          break;
        }
        default:  // Python keeps unknown escapes as they are
          value += '\\';
          value += c;
      }
    }
    if (i >= src_.size()) fail(name_, start_line, "unterminated string literal");
    tokens_.push_back({TokenKind::kString, value, start_line});
    return i + 1;
  }

  std::string src_;
  std::string name_;
  size_t cur_ = 0;  // position up to which lines were counted
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source, const std::string& name) {
  // As Jinja: newlines normalised to "\n", and one trailing newline dropped.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), name).run();
}

}  // namespace prefengine::jinja
