#include "poem/poem_grader.h"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "common/utf8.h"
#include "poem/poem_parser.h"

namespace prefengine::plugins::graders {
namespace {

// Level/oblique patterns of 5-character lines; 'p' level (平), 'z' oblique (仄).
//   A 仄仄平平仄   B 平平仄仄平   C 平平平仄仄   D 仄仄仄平平
// A 7-character line puts the opposite pair in front: A7 = 平平 + A, and so on.
const char* kPatterns5[] = {"zzppz", "ppzzp", "pppzz", "zzzpp"};
// The four schemes (indices into the patterns): 仄起 without and with a rhyming first line, 平起
// likewise. A quatrain uses the first four lines; regulated verse continues the alternation of
// 粘 and 对, so its lines 5-8 repeat lines 1-4 of the scheme without a rhyming first line.
const int kSchemes[4][8] = {{0, 1, 2, 3, 0, 1, 2, 3},
                            {3, 1, 2, 3, 0, 1, 2, 3},
                            {2, 3, 0, 1, 2, 3, 0, 1},
                            {1, 3, 0, 1, 2, 3, 0, 1}};

std::string pattern(int index, int chars) {
  std::string p = kPatterns5[index];
  if (chars == 7) p = std::string(2, p[0] == 'z' ? 'p' : 'z') + p;
  return p;
}

}  // namespace

void PoemGraderOptions::validate() const {
  if (rhyme_scheme != "xinyun" && rhyme_scheme != "strict") {
    throw std::invalid_argument("rhyme_scheme: expected one of xinyun, strict, got '" +
                                rhyme_scheme + "'");
  }
  if (readings_path.empty()) throw std::invalid_argument("readings_path: must not be empty");
}

PoemGrader::PoemGrader(PluginOptions& options) {
  PoemGraderOptions o;
  o.rhyme_scheme = options.get_choice("rhyme_scheme", o.rhyme_scheme, {"xinyun", "strict"});
  o.readings_path = options.get_string("readings_path", o.readings_path);
  o.strict = options.get_bool("strict", o.strict);
  o.validate();
  options_ = o;
  readings_ = UnihanReadings::cached(options_.readings_path);
}

PoemGrader::PoemGrader(PoemGraderOptions options, std::shared_ptr<const UnihanReadings> readings)
    : options_(std::move(options)), readings_(std::move(readings)) {
  options_.validate();
  if (!readings_) readings_ = UnihanReadings::cached(options_.readings_path);
}

std::vector<std::string> PoemGrader::dimensions() const {
  return {"row_number", "chars_per_row", "rhyme", "tone_pattern", "title"};
}

std::vector<std::string> PoemGrader::rhyme_keys(char32_t c) const {
  std::vector<std::string> keys;
  for (const Syllable& s : readings_->readings(c)) {
    std::string key;
    if (options_.rhyme_scheme == "xinyun") {
      const int group = xinyun_group(s);
      if (group == 0) continue;
      key = xinyun_group_name(group);
    } else {
      key = s.final == "i" ? xinyun_group_name(xinyun_group(s)) : s.final;  // zhi vs ji differ
    }
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  return keys;
}

void PoemGrader::tones(char32_t c, bool& level, bool& oblique) const {
  level = oblique = false;
  const auto& readings = readings_->readings(c);
  for (const Syllable& s : readings) {
    level = level || is_level_tone(s.tone);
    oblique = oblique || is_oblique_tone(s.tone);
  }
  if (!level && !oblique) level = oblique = true;  // unknown: no evidence against the pattern
}

GradeResult PoemGrader::grade(const GradeInput& input) const {
  if (!is_valid_utf8(input.prompt)) throw std::invalid_argument("prompt is not valid UTF-8");
  const ParsedPoem poem = parse_poem(input.response);  // throws for invalid UTF-8
  if (trim(input.response).empty()) {
    GradeResult empty;
    for (const auto& name : dimensions()) empty.dimensions.emplace_back(name, 0.0);
    empty.reason = "empty response";
    return empty;
  }
  const PoemForm form = requested_form(input.prompt);
  const size_t n = poem.lines.size();
  std::vector<std::string> failures;

  // Row number.
  size_t rows = form.rows ? static_cast<size_t>(*form.rows) : (n <= 6 ? 4 : 8);
  const bool rows_ok = form.rows ? n == rows : (n == 4 || n == 8);
  if (!rows_ok) {
    failures.push_back("row_number: " + std::to_string(n) + " lines, expected " +
                       (form.rows ? std::to_string(rows) : std::string("4 or 8")));
  }

  // Characters per row.
  size_t chars = 0;
  if (form.chars) {
    chars = static_cast<size_t>(*form.chars);
  } else {
    const auto fives = std::count_if(poem.lines.begin(), poem.lines.end(),
                                     [](const std::u32string& l) { return l.size() == 5; });
    const auto sevens = std::count_if(poem.lines.begin(), poem.lines.end(),
                                      [](const std::u32string& l) { return l.size() == 7; });
    chars = sevens > fives ? 7 : 5;
  }
  size_t right_length = 0;
  for (size_t i = 0; i < n; ++i) {
    if (poem.lines[i].size() == chars) {
      ++right_length;
    } else if (failures.size() < 6) {
      failures.push_back("chars_per_row: line " + std::to_string(i + 1) + " has " +
                         std::to_string(poem.lines[i].size()) + " characters, expected " +
                         std::to_string(chars));
    }
  }
  const double chars_score = n == 0 ? 0.0 : static_cast<double>(right_length) / n;

  // Rhyme: the even lines within the form.
  const size_t within = std::min(n, rows);
  std::map<std::string, size_t> votes;
  size_t even_lines = 0;
  for (size_t i = 1; i < within; i += 2) {
    ++even_lines;
    for (const auto& key : rhyme_keys(poem.lines[i].back())) ++votes[key];
  }
  size_t best_votes = 0;
  std::string best_group;
  for (const auto& [key, count] : votes) {
    if (count > best_votes) best_votes = count, best_group = key;
  }
  const double rhyme_score = even_lines == 0 ? 0.0 : static_cast<double>(best_votes) / even_lines;
  if (rhyme_score < 1) {
    std::string which;
    for (size_t i = 1; i < within; i += 2) {
      const auto keys = rhyme_keys(poem.lines[i].back());
      if (std::find(keys.begin(), keys.end(), best_group) == keys.end()) {
        which += " " + std::to_string(i + 1) + "(" + encode_utf8(poem.lines[i].back()) + ")";
      }
    }
    failures.push_back(even_lines == 0 ? "rhyme: no even lines"
                                       : "rhyme: lines" + which + " leave the group " + best_group);
  }

  // Tone pattern: lines of the right length within the form, against each scheme.
  double tone_score = 0;
  size_t tone_lines = 0;
  size_t best_fit = 0;
  if (chars == 5 || chars == 7) {
    for (int scheme = 0; scheme < 4; ++scheme) {
      size_t considered = 0, fit = 0;
      for (size_t i = 0; i < within && i < 8; ++i) {
        const std::u32string& line = poem.lines[i];
        if (line.size() != chars) continue;
        ++considered;
        const std::string want = pattern(kSchemes[scheme][i], static_cast<int>(chars));
        bool ok = true;
        for (size_t k = 0; k < chars && ok; ++k) {
          const bool free = k % 2 == 0 && k + 2 < chars;  // positions 1, 3 (and 5 of 7)
          if (free) continue;
          bool level = false, oblique = false;
          tones(line[k], level, oblique);
          ok = want[k] == 'p' ? level : oblique;
        }
        fit += ok ? 1 : 0;
      }
      tone_lines = considered;
      best_fit = std::max(best_fit, fit);
    }
    tone_score = tone_lines == 0 ? 0.0 : static_cast<double>(best_fit) / tone_lines;
  }
  if (tone_score < 1) {
    failures.push_back("tone_pattern: " + std::to_string(best_fit) + " of " +
                       std::to_string(tone_lines) + " lines fit a standard scheme");
  }

  // Title.
  double title_score = 1;
  if (form.title_asked) {
    if (!poem.title || poem.title->empty()) {
      title_score = 0;
      failures.push_back("title: missing");
    } else if (form.title && encode_utf8(*poem.title) != *form.title) {
      title_score = 0.5;
      failures.push_back("title: '" + encode_utf8(*poem.title) + "', asked for '" + *form.title + "'");
    }
  }

  GradeResult result;
  result.dimensions = {{"row_number", rows_ok ? 1.0 : 0.0},
                       {"chars_per_row", chars_score},
                       {"rhyme", rhyme_score},
                       {"tone_pattern", tone_score},
                       {"title", title_score}};
  double sum = 0;
  for (const auto& d : result.dimensions) sum += d.second;
  result.score = sum / result.dimensions.size();
  if (options_.strict && (!poem.extra.empty() || poem.author)) {
    result.score = 0;
    const std::string what = !poem.extra.empty() ? "'" + poem.extra.front() + "'"
                                                 : "the author line '" + encode_utf8(*poem.author) + "'";
    failures.insert(failures.begin(), "strict: text besides the title and the verse: " + what);
  }
  if (failures.empty()) {
    result.reason = "all five dimensions pass (" + std::to_string(n) + " lines of " +
                    std::to_string(chars) + ", rhyme group " + best_group + ")";
  } else {
    result.reason = failures[0];
    for (size_t i = 1; i < failures.size(); ++i) result.reason += "; " + failures[i];
  }
  return result;
}

}  // namespace prefengine::plugins::graders
