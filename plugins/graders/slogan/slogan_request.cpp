#include "slogan/slogan_request.h"

#include <algorithm>

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

// The value of a Chinese numeral of up to 9999 (一 ... 九千九百九十九, 两, 〇/零), or nullopt.
std::optional<size_t> chinese_number(std::u32string_view s) {
  if (s.empty()) return std::nullopt;
  auto digit = [](char32_t c) -> int {
    switch (c) {
      case U'零': case U'〇': return 0;
      case U'一': return 1;
      case U'二': case U'两': return 2;
      case U'三': return 3;
      case U'四': return 4;
      case U'五': return 5;
      case U'六': return 6;
      case U'七': return 7;
      case U'八': return 8;
      case U'九': return 9;
      default: return -1;
    }
  };
  size_t total = 0, pending = 0;
  bool any = false;
  for (char32_t c : s) {
    const int d = digit(c);
    if (d >= 0) {
      pending = static_cast<size_t>(d);
      any = true;
      continue;
    }
    const size_t unit = c == U'十' ? 10 : c == U'百' ? 100 : c == U'千' ? 1000 : 0;
    if (unit == 0) return std::nullopt;
    total += (pending == 0 && !any ? 1 : pending) * unit;  // 十五 = 15
    pending = 0;
    any = true;
  }
  return any ? std::optional(total + pending) : std::nullopt;
}

bool is_chinese_numeral(char32_t c) {
  return std::u32string_view(U"零〇一二两三四五六七八九十百千").find(c) != std::u32string_view::npos;
}

bool ends_with(std::u32string_view s, std::u32string_view w) {
  return s.size() >= w.size() && s.substr(s.size() - w.size()) == w;
}

std::u32string lower32(std::u32string s) {
  for (char32_t& c : s) {
    if (c >= 'A' && c <= 'Z') c = c - 'A' + 'a';
  }
  return s;
}

}  // namespace

SloganRequest read_slogan_request(std::string_view prompt_utf8) {
  SloganRequest request;
  const std::u32string prompt = decode_utf8(prompt_utf8);
  const std::u32string lower = lower32(prompt);
  // The limit: the first number followed by 字 / 个字 / word(s).
  for (size_t i = 0; i < lower.size() && !request.limit; ++i) {
    size_t j = i;
    std::optional<size_t> value;
    if (lower[i] >= '0' && lower[i] <= '9' && (i == 0 || !(lower[i - 1] >= '0' && lower[i - 1] <= '9'))) {
      size_t v = 0;
      while (j < lower.size() && lower[j] >= '0' && lower[j] <= '9' && v < 100000000) {
        v = v * 10 + static_cast<size_t>(lower[j++] - '0');
      }
      value = v;
    } else if (is_chinese_numeral(lower[i]) && (i == 0 || !is_chinese_numeral(lower[i - 1]))) {
      while (j < lower.size() && is_chinese_numeral(lower[j])) ++j;
      value = chinese_number(std::u32string_view(lower).substr(i, j - i));
    }
    if (!value) continue;
    size_t k = j;
    while (k < lower.size() && (lower[k] == ' ' || lower[k] == '-')) ++k;
    const std::u32string_view rest = std::u32string_view(lower).substr(k);
    const std::u32string_view before = std::u32string_view(lower).substr(0, i);
    // "字数不超过10", "word limit: 8": the unit comes before the number.
    const std::u32string_view recent = before.substr(before.size() > 12 ? before.size() - 12 : 0);
    const bool unit_before = recent.find(U"字数") != std::u32string_view::npos ||
                             recent.find(U"word count") != std::u32string_view::npos ||
                             recent.find(U"word limit") != std::u32string_view::npos;
    const bool unit = rest.rfind(U"字", 0) == 0 || rest.rfind(U"个字", 0) == 0 ||
                      rest.rfind(U"个汉字", 0) == 0 || rest.rfind(U"word", 0) == 0 || unit_before;
    if (!unit) continue;
    std::u32string_view head = before;
    while (!head.empty() && head.back() == ' ') head.remove_suffix(1);
    const bool strict = ends_with(head, U"少于") || ends_with(head, U"低于") ||
                        ends_with(head, U"fewer than") || ends_with(head, U"less than") ||
                        ends_with(head, U"under");
    request.limit = strict && *value > 0 ? *value - 1 : *value;
  }
  // Quoted keywords after an "include" verb in the same sentence.
  static const std::vector<std::u32string> kVerbs = {U"包含", U"包括", U"含有", U"带有", U"出现",
                                                     U"含", U"include", U"contain", U"mention",
                                                     U"use"};
  static const std::vector<std::pair<char32_t, char32_t>> kQuotes = {
      {U'“', U'”'}, {U'"', U'"'}, {U'「', U'」'}, {U'‘', U'’'}, {U'『', U'』'}};
  for (size_t i = 0; i < prompt.size(); ++i) {
    for (const auto& [open, close] : kQuotes) {
      if (prompt[i] != open) continue;
      const size_t end = prompt.find(close, i + 1);
      if (end == std::u32string::npos) break;
      // The clause before the quote, at most 40 characters back.
      size_t sentence = i;
      while (sentence > 0 && i - sentence < 40 && prompt[sentence - 1] != U'。' && prompt[sentence - 1] != '.' &&
             prompt[sentence - 1] != U'！' && prompt[sentence - 1] != '\n') {
        --sentence;
      }
      const std::u32string_view context = std::u32string_view(lower).substr(sentence, i - sentence);
      const bool wanted = std::any_of(kVerbs.begin(), kVerbs.end(), [&](const std::u32string& v) {
        return context.find(v) != std::u32string_view::npos;
      });
      const std::u32string term = prompt.substr(i + 1, end - i - 1);
      if (wanted && !term.empty()) request.keywords.push_back(encode_utf8(term));
      i = end;
      break;
    }
  }
  return request;
}

size_t slogan_length(std::string_view text) {
  size_t n = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(text)) {
    if (is_han(c)) {
      ++n;
      in_word = false;
    } else if (is_ascii_alnum(c) || (in_word && (c == '\'' || c == '-'))) {
      if (!in_word) ++n;
      in_word = true;
    } else {
      in_word = false;
    }
  }
  return n;
}

}  // namespace prefengine::plugins::graders
