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

namespace {

struct NumberAt {
  size_t end;    // one past the number's last character
  size_t value;  // its value
};

// The number (Arabic or Chinese numerals) that starts at `i`, when one starts there.
std::optional<NumberAt> number_at(std::u32string_view s, size_t i) {
  if (i >= s.size()) return std::nullopt;
  const auto digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  if (digit(s[i])) {
    if (i > 0 && digit(s[i - 1])) return std::nullopt;
    size_t v = 0, j = i;
    while (j < s.size() && digit(s[j])) {
      if (v < 100000000) v = v * 10 + static_cast<size_t>(s[j] - '0');
      ++j;
    }
    return NumberAt{j, v};
  }
  if (is_chinese_numeral(s[i]) && (i == 0 || !is_chinese_numeral(s[i - 1]))) {
    size_t j = i;
    while (j < s.size() && is_chinese_numeral(s[j])) ++j;
    if (const auto v = chinese_number(s.substr(i, j - i))) return NumberAt{j, *v};
  }
  return std::nullopt;
}

size_t skip_spaces(std::u32string_view s, size_t k) {
  while (k < s.size() && s[k] == ' ') ++k;
  return k;
}

bool starts_at(std::u32string_view s, size_t k, std::u32string_view w) {
  return s.substr(k, w.size()) == w;
}

// The length of the unit (字, 个字, 个汉字, word(s)) that starts at `k`, or 0.
size_t unit_at(std::u32string_view s, size_t k) {
  for (std::u32string_view u : {U"个汉字", U"个字", U"字", U"words", U"word"}) {
    if (starts_at(s, k, u)) return u.size();
  }
  return 0;
}

bool closing_quote(char32_t c) {
  return std::u32string_view(U"」”\"』’'").find(c) != std::u32string_view::npos;
}

}  // namespace

SloganRequest read_slogan_request(std::string_view prompt_utf8) {
  SloganRequest request;
  const std::u32string prompt = decode_utf8(prompt_utf8);
  const std::u32string lower = lower32(prompt);
  const std::u32string_view text(lower);
  for (size_t i = 0; i < text.size() && !request.limit; ++i) {
    const auto number = number_at(text, i);
    if (!number) continue;
    const size_t value = number->value;
    const std::u32string_view before = text.substr(0, i);
    std::u32string_view head = before;
    while (!head.empty() && head.back() == ' ') head.remove_suffix(1);
    // "「环保」二字", "“绿色”两个字": the keyword's length, not the slogan's.
    if (!head.empty() && closing_quote(head.back())) {
      i = number->end - 1;
      continue;
    }
    // A range: "8到12个字", "8-12字", "8～12 words", "8 to 12 words", "between 8 and 12 words".
    const size_t after = skip_spaces(text, number->end);
    bool range = false;
    for (std::u32string_view connector : {U"到", U"至", U"-", U"~", U"～", U"—", U"–", U"to", U"and"}) {
      if (!starts_at(text, after, connector)) continue;
      const auto second = number_at(text, skip_spaces(text, after + connector.size()));
      if (!second || unit_at(text, skip_spaces(text, second->end)) == 0 || second->value < value) {
        continue;
      }
      request.minimum = value;
      request.limit = second->value;
      range = true;
      break;
    }
    if (range) break;
    size_t k = number->end;
    while (k < text.size() && (text[k] == ' ' || text[k] == '-')) ++k;
    const size_t unit = unit_at(text, k);
    // "字数不超过10", "word limit: 8": the unit comes before the number.
    const std::u32string_view recent = before.substr(before.size() > 12 ? before.size() - 12 : 0);
    const bool unit_before = recent.find(U"字数") != std::u32string_view::npos ||
                             recent.find(U"word count") != std::u32string_view::npos ||
                             recent.find(U"word limit") != std::u32string_view::npos;
    if (unit == 0 && !unit_before) continue;
    const size_t tail = skip_spaces(text, k + unit);
    const auto ends = [&](std::u32string_view w) { return ends_with(head, w); };
    // "8个字以上", "不少于8个字", "至少8个字", "at least 8 words": a minimum; a limit may follow.
    if (starts_at(text, tail, U"以上") || ends(U"不少于") || ends(U"至少") || ends(U"最少") ||
        ends(U"不低于") || ends(U"at least") || ends(U"no fewer than") || ends(U"no less than") ||
        ends(U"minimum of")) {
      request.minimum = value;
      i = number->end - 1;
      continue;
    }
    // "10字左右", "约10个字", "about 10 words": within a fifth of it either way.
    if (starts_at(text, tail, U"左右") || ends(U"约") || ends(U"大约") || ends(U"about") ||
        ends(U"around") || ends(U"roughly")) {
      request.minimum = value - value / 5;
      request.limit = value + value / 5;
      break;
    }
    const bool strict = ends(U"少于") || ends(U"低于") || ends(U"fewer than") ||
                        ends(U"less than") || ends(U"under");
    request.limit = strict && value > 0 ? value - 1 : value;
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
