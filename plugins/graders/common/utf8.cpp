#include "common/utf8.h"

#include <stdexcept>

namespace prefengine::plugins::graders {
namespace {

// Decodes one code point at `i`; returns false when the sequence there is malformed.
bool decode_one(std::string_view s, size_t& i, char32_t& out) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    out = b0;
    ++i;
    return true;
  }
  size_t len = 0;
  char32_t cp = 0;
  char32_t min = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (i + len > s.size()) return false;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
  out = cp;
  i += len;
  return true;
}

}  // namespace

bool is_valid_utf8(std::string_view text) {
  size_t i = 0;
  char32_t c = 0;
  while (i < text.size()) {
    if (!decode_one(text, i, c)) return false;
  }
  return true;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  char32_t c = 0;
  while (i < text.size()) {
    const size_t at = i;
    if (!decode_one(text, i, c)) {
      throw std::invalid_argument("invalid UTF-8 at byte " + std::to_string(at));
    }
    out.push_back(c);
  }
  return out;
}

std::string encode_utf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
  return out;
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  for (char32_t c : text) out += encode_utf8(c);
  return out;
}

bool is_han(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x323AF) || (c >= 0xF900 && c <= 0xFAFF) || c == 0x3007;
}

bool is_clause_punctuation(char32_t c) {
  switch (c) {
    case U'，': case U'。': case U'！': case U'？': case U'；': case U'：': case U'、':
    case U',': case U'.': case U'!': case U'?': case U';': case U':':
      return true;
    default:
      return false;
  }
}

bool is_space(char32_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' ||
         c == 0x3000 || c == 0xA0;
}

bool is_ascii_alnum(char32_t c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string_view trim(std::string_view text) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = text.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = text.find_last_not_of(ws);
  return text.substr(b, e - b + 1);
}

std::string ascii_lower(std::string_view text) {
  std::string out(text);
  for (char& ch : out) {
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  }
  return out;
}

std::string fold_fullwidth(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  for (size_t i = 0; i < text.size();) {
    const unsigned char b = byte(i);
    if (b < 0x80) {
      out.push_back(static_cast<char>(b));
      ++i;
      continue;
    }
    // U+FF01-U+FF5E: EF BC 81-BF, EF BD 80-9E (U+FF01 + k -> '!' + k).
    if (b == 0xEF && i + 2 < text.size() && (byte(i + 1) == 0xBC || byte(i + 1) == 0xBD)) {
      const unsigned cp = 0xFF00u + ((byte(i + 1) & 0x03u) << 6) + (byte(i + 2) & 0x3Fu);
      if ((byte(i + 2) & 0xC0) == 0x80 && cp >= 0xFF01 && cp <= 0xFF5E) {
        out.push_back(static_cast<char>(cp - 0xFF01 + '!'));
        i += 3;
        continue;
      }
    }
    if (text.compare(i, 3, "\xE3\x80\x80") == 0) {  // U+3000
      out.push_back(' ');
      i += 3;
    } else if (text.compare(i, 2, "\xC3\x97") == 0) {  // ×
      out.push_back('*');
      i += 2;
    } else if (text.compare(i, 2, "\xC3\xB7") == 0) {  // ÷
      out.push_back('/');
      i += 2;
    } else if (text.compare(i, 3, "\xE2\x88\x92") == 0) {  // U+2212
      out.push_back('-');
      i += 3;
    } else {
      out.push_back(static_cast<char>(b));
      ++i;
    }
  }
  return out;
}

}  // namespace prefengine::plugins::graders
