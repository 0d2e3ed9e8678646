#include "slogan/slogan_grader.h"

#include <algorithm>
#include <set>
#include <stdexcept>

#include "common/utf8.h"

namespace prefengine::plugins::graders {
namespace {

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

  if (trim(input.response).empty()) {
    GradeResult empty;
    for (const auto& name : dimensions()) empty.dimensions.emplace_back(name, 0.0);
    empty.reason = "empty response";
    return empty;
  }
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
  } else if (request.minimum && length < *request.minimum) {
    const double minimum = static_cast<double>(*request.minimum);
    count_score = std::max(0.0, 1.0 - (minimum - static_cast<double>(length)) / minimum);
    notes.push_back("word_count: " + std::to_string(length) + " < minimum " +
                    std::to_string(*request.minimum));
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
