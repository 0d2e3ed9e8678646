#include "slogan/slogan_grader.h"

#include <algorithm>
#include <set>
#include <stdexcept>

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

// Whether `needle` occurs in `hay`; ASCII-word needles only at word boundaries.
bool occurs(std::u32string_view hay, std::u32string_view needle) {
  if (needle.empty()) return false;
  const bool wordlike = is_ascii_alnum(needle.front()) && is_ascii_alnum(needle.back());
  size_t at = 0;
  while ((at = hay.find(needle, at)) != std::u32string_view::npos) {
    const size_t end = at + needle.size();
    const bool left_ok = !wordlike || at == 0 || !is_ascii_alnum(hay[at - 1]);
    const bool right_ok = !wordlike || end >= hay.size() || !is_ascii_alnum(hay[end]);
    if (left_ok && right_ok) return true;
    ++at;
  }
  return false;
}

// The first phrase that occurs twice: `chars` Han characters in a row, or `words` ASCII words in
// a row; empty when none.
std::string repeated_phrase(const std::u32string& text, size_t chars, size_t words) {
  std::set<std::u32string> seen;
  // Han runs (no punctuation or spaces inside a phrase).
  std::u32string run;
  auto scan_run = [&]() -> std::string {
    for (size_t i = 0; i + chars <= run.size(); ++i) {
      const std::u32string phrase = run.substr(i, chars);
      if (!seen.insert(phrase).second) return encode_utf8(phrase);
    }
    run.clear();
    return {};
  };
  for (char32_t c : text) {
    if (is_han(c)) {
      run.push_back(c);
    } else if (!run.empty()) {
      if (auto p = scan_run(); !p.empty()) return p;
    }
  }
  if (auto p = scan_run(); !p.empty()) return p;
  // English words.
  std::vector<std::u32string> tokens;
  std::u32string word;
  const std::u32string lower = lower32(text);
  for (char32_t c : lower) {
    if (is_ascii_alnum(c) || c == '\'') {
      word.push_back(c);
    } else if (!word.empty()) {
      tokens.push_back(word);
      word.clear();
    }
  }
  if (!word.empty()) tokens.push_back(word);
  std::set<std::vector<std::u32string>> seen_words;
  for (size_t i = 0; i + words <= tokens.size(); ++i) {
    std::vector<std::u32string> phrase(tokens.begin() + i, tokens.begin() + i + words);
    if (!seen_words.insert(phrase).second) {
      std::u32string joined;
      for (const auto& t : phrase) joined += (joined.empty() ? U"" : U" ") + t;
      return encode_utf8(joined);
    }
  }
  return {};
}

}  // namespace

const std::vector<std::string>& default_banned_words() {
  static const std::vector<std::string> kBanned = {
      "最佳", "最好", "最优", "最高", "最低", "最大", "最强", "最先进", "最新技术", "最受欢迎",
      "最便宜", "最时尚", "最赚", "第一", "唯一", "首个", "首选", "顶级", "顶尖", "极品", "极致",
      "国家级", "世界级", "全球级", "全网第一", "销量第一", "绝对", "万能", "史无前例",
      "独一无二", "遥遥领先", "王牌", "NO.1", "TOP1", "100%"};
  return kBanned;
}

void SloganGraderOptions::validate() const {
  for (const auto& w : banned_words) {
    if (trim(w).empty()) throw std::invalid_argument("banned_words: contains an empty word");
    if (!is_valid_utf8(w)) throw std::invalid_argument("banned_words: '" + w + "' is not UTF-8");
  }
  for (const auto& w : required_keywords) {
    if (trim(w).empty()) throw std::invalid_argument("required_keywords: contains an empty word");
    if (!is_valid_utf8(w)) {
      throw std::invalid_argument("required_keywords: '" + w + "' is not UTF-8");
    }
  }
  if (min_repeat_chars < 1) throw std::invalid_argument("min_repeat_chars: expected >= 1, got 0");
  if (min_repeat_words < 1) throw std::invalid_argument("min_repeat_words: expected >= 1, got 0");
}

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

SloganGrader::SloganGrader(PluginOptions& options) {
  SloganGraderOptions o;
  o.banned_words = options.get_string_list("banned_words", o.banned_words);
  o.required_keywords = options.get_string_list("required_keywords", o.required_keywords);
  o.min_repeat_chars = static_cast<size_t>(
      options.get_int("min_repeat_chars", static_cast<int64_t>(o.min_repeat_chars), 1, 100));
  o.min_repeat_words = static_cast<size_t>(
      options.get_int("min_repeat_words", static_cast<int64_t>(o.min_repeat_words), 1, 100));
  o.validate();
  options_ = std::move(o);
}

SloganGrader::SloganGrader(SloganGraderOptions options) : options_(std::move(options)) {
  options_.validate();
}

std::vector<std::string> SloganGrader::dimensions() const {
  return {"word_count", "keywords", "banned_words", "repetition"};
}

GradeResult SloganGrader::grade(const GradeInput& input) const {
  const SloganRequest request = read_slogan_request(input.prompt);  // throws for invalid UTF-8
  const std::u32string text = decode_utf8(input.response);
  const std::u32string lower = lower32(text);
  std::vector<std::string> notes;

  const size_t length = slogan_length(input.response);
  double count_score = 1;
  if (length == 0) {
    count_score = 0;
    notes.push_back("word_count: empty slogan");
  } else if (request.limit && length > *request.limit) {
    const double limit = static_cast<double>(std::max<size_t>(*request.limit, 1));
    count_score = std::max(0.0, 1.0 - (static_cast<double>(length) - limit) / limit);
    notes.push_back("word_count: " + std::to_string(length) + " > limit " +
                    std::to_string(*request.limit));
  }

  std::vector<std::string> keywords = options_.required_keywords;
  for (const auto& k : request.keywords) {
    if (std::find(keywords.begin(), keywords.end(), k) == keywords.end()) keywords.push_back(k);
  }
  size_t present = 0;
  std::string missing;
  for (const auto& k : keywords) {
    if (occurs(lower, lower32(decode_utf8(k)))) {
      ++present;
    } else {
      missing += (missing.empty() ? "" : ", ") + k;
    }
  }
  const double keyword_score = keywords.empty() ? 1.0 : static_cast<double>(present) / keywords.size();
  if (!missing.empty()) notes.push_back("keywords: missing " + missing);

  std::string banned;
  for (const auto& w : options_.banned_words) {
    if (occurs(lower, lower32(decode_utf8(w)))) banned += (banned.empty() ? "" : ", ") + w;
  }
  if (!banned.empty()) notes.push_back("banned_words: " + banned);

  const std::string repeated =
      repeated_phrase(text, options_.min_repeat_chars, options_.min_repeat_words);
  if (!repeated.empty()) notes.push_back("repetition: '" + repeated + "' repeats");

  GradeResult result;
  result.dimensions = {{"word_count", count_score},
                       {"keywords", keyword_score},
                       {"banned_words", banned.empty() ? 1.0 : 0.0},
                       {"repetition", repeated.empty() ? 1.0 : 0.0}};
  double sum = 0;
  for (const auto& d : result.dimensions) sum += d.second;
  result.score = sum / result.dimensions.size();
  if (notes.empty()) {
    result.reason = "all four dimensions pass (" + std::to_string(length) +
                    (request.limit ? " of at most " + std::to_string(*request.limit) : "") + ")";
  } else {
    result.reason = notes[0];
    for (size_t i = 1; i < notes.size(); ++i) result.reason += "; " + notes[i];
  }
  return result;
}

}  // namespace prefengine::plugins::graders
