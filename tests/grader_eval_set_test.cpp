// Agreement of the graders with hand labels on the evaluation set in tests/data/graders/
// (eval_math.jsonl, eval_poem.jsonl, eval_slogan.jsonl). Every label is a human judgement written
// beside the record, never a grader's output. Prints the agreement figures (and a plain
// Hendrycks-MATH normaliser's on the same math set, implemented below as that paper's
// `last_boxed_only_string` + `strip_string` + string equality) and asserts >= 97% for math and
// 100% for the poem and slogan format checks.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "math/math_grader.h"
#include "poem/poem_grader.h"
#include "slogan/slogan_grader.h"

namespace g = prefengine::plugins::graders;
using nlohmann::json;
using prefengine::GradeInput;

namespace {

std::vector<json> load(const std::string& name) {
  std::ifstream in(std::string(PREFENGINE_SOURCE_DIR) + "/tests/data/graders/" + name);
  std::vector<json> rows;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

double dimension(const prefengine::GradeResult& r, const std::string& name) {
  for (const auto& [n, v] : r.dimensions) {
    if (n == name) return v;
  }
  ADD_FAILURE() << "no dimension " << name;
  return -1;
}

// --- The plain Hendrycks MATH baseline (is_equiv with strip_string), for comparison only. ---

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = s.find(from, at)) != std::string::npos; at += to.size()) {
    s.replace(at, from.size(), to);
  }
}

// last_boxed_only_string + remove_boxed: the argument of the last \boxed{...} or \fbox{...}.
std::optional<std::string> hendrycks_last_boxed(const std::string& s) {
  size_t at = s.rfind("\\boxed");
  if (at == std::string::npos) at = s.rfind("\\fbox");
  if (at == std::string::npos) return std::nullopt;
  const size_t open = s.find('{', at);
  if (open == std::string::npos) return std::nullopt;
  int depth = 0;
  for (size_t i = open; i < s.size(); ++i) {
    if (s[i] == '{') ++depth;
    if (s[i] == '}' && --depth == 0) return s.substr(open + 1, i - open - 1);
  }
  return std::nullopt;
}

// fix_fracs: \frac12 -> \frac{1}{2}.
std::string hendrycks_fix_fracs(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (s.compare(i, 5, "\\frac") == 0 && i + 5 < s.size() && s[i + 5] != '{' && i + 6 < s.size()) {
      out += "\\frac{" + std::string(1, s[i + 5]) + "}";
      i += 6;
      if (s[i] != '{') {
        out += "{" + std::string(1, s[i]) + "}";
        ++i;
      }
      continue;
    }
    out += s[i++];
  }
  return out;
}

std::string hendrycks_strip(std::string s) {
  replace_all(s, "\n", "");
  replace_all(s, "\\!", "");
  replace_all(s, "\\\\", "\\");
  replace_all(s, "tfrac", "frac");
  replace_all(s, "dfrac", "frac");
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  replace_all(s, "^{\\circ}", "");
  replace_all(s, "^\\circ", "");
  replace_all(s, "\\$", "");
  // remove_right_units: everything from "\text{ " on.
  if (const size_t u = s.find("\\text{ "); u != std::string::npos) s = s.substr(0, u);
  replace_all(s, "\\%", "");
  replace_all(s, " .", " 0.");
  replace_all(s, "{.", "{0.");
  if (s.empty()) return s;
  if (s[0] == '.') s = "0" + s;
  // "k = 5" -> "5" when the left side is short.
  if (const size_t eq = s.find('='); eq != std::string::npos && s.find('=', eq + 1) == std::string::npos &&
                                     eq <= 2) {
    s = s.substr(eq + 1);
  }
  // fix_sqrt: \sqrt3 -> \sqrt{3}.
  std::string fixed;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 5, "\\sqrt") == 0 && i + 5 < s.size() && s[i + 5] != '{') {
      fixed += "\\sqrt{" + std::string(1, s[i + 5]) + "}";
      i += 5;
      continue;
    }
    fixed += s[i];
  }
  s = fixed;
  replace_all(s, " ", "");
  s = hendrycks_fix_fracs(s);
  if (s == "0.5") s = "\\frac{1}{2}";
  // fix_a_slash_b: "3/4" of integers -> \frac{3}{4}.
  if (const size_t sl = s.find('/'); sl != std::string::npos && s.find('/', sl + 1) == std::string::npos) {
    const std::string a = s.substr(0, sl), b = s.substr(sl + 1);
    const auto integer = [](const std::string& t) {
      return !t.empty() && t.find_first_not_of("0123456789") == std::string::npos;
    };
    if (integer(a) && integer(b)) s = "\\frac{" + a + "}{" + b + "}";
  }
  return s;
}

bool hendrycks_correct(const std::string& response, const std::string& reference) {
  const auto answer = hendrycks_last_boxed(response);
  if (!answer) return false;
  return hendrycks_strip(*answer) == hendrycks_strip(reference);
}

}  // namespace

TEST(GraderEvalSet, MathAgreementWithHandLabels) {
  const auto rows = load("eval_math.jsonl");
  ASSERT_GE(rows.size(), 150u);
  const g::MathGrader grader{g::MathGraderOptions{}};
  size_t agree = 0, baseline_agree = 0;
  for (const auto& row : rows) {
    const std::string response = row["response"];
    const std::string reference = row["reference"];
    const bool label = row["correct"];
    const auto r = grader.grade(GradeInput{"", response, reference});
    const bool verdict = dimension(r, "answer") == 1.0;
    if (verdict == label) {
      ++agree;
    } else {
      ADD_FAILURE() << "disagrees with the label (" << (label ? "correct" : "wrong") << ") ["
                    << row["category"].get<std::string>() << "] " << response << " vs " << reference
                    << ": " << r.reason;
    }
    baseline_agree += hendrycks_correct(response, reference) == label ? 1 : 0;
  }
  const double share = 100.0 * agree / rows.size();
  const double baseline = 100.0 * baseline_agree / rows.size();
  std::printf("math: grader agrees with the labels on %zu of %zu (%.1f%%); Hendrycks MATH "
              "normaliser baseline: %zu of %zu (%.1f%%)\n",
              agree, rows.size(), share, baseline_agree, rows.size(), baseline);
  EXPECT_GE(share, 97.0);
}

TEST(GraderEvalSet, PoemFormatAgreementWithHandLabels) {
  const auto rows = load("eval_poem.jsonl");
  ASSERT_GE(rows.size(), 40u);
  const g::PoemGrader grader{g::PoemGraderOptions{}};
  g::PoemGraderOptions strict_options;
  strict_options.strict = true;
  const g::PoemGrader strict{strict_options};
  size_t agree = 0, strict_checked = 0, strict_agree = 0;
  for (const auto& row : rows) {
    const std::string prompt = row["prompt"], response = row["response"];
    const auto r = grader.grade(GradeInput{prompt, response, std::nullopt});
    const bool format_ok = dimension(r, "row_number") == 1.0 && dimension(r, "chars_per_row") == 1.0;
    if (format_ok == row["format_ok"].get<bool>()) {
      ++agree;
    } else {
      ADD_FAILURE() << "format disagrees (" << row["note"].get<std::string>() << "): " << response
                    << "\n  " << r.reason;
    }
    // Strict mode: a well-formed poem with extra text around it scores 0, without it keeps its score.
    if (!row["format_ok"].get<bool>()) continue;
    ++strict_checked;
    const auto s = strict.grade(GradeInput{prompt, response, std::nullopt});
    const bool rejected = s.score == 0 && r.score > 0;
    if (rejected == row["extra_text"].get<bool>()) {
      ++strict_agree;
    } else {
      ADD_FAILURE() << "strict disagrees (" << row["note"].get<std::string>() << "): " << response
                    << "\n  " << s.reason;
    }
  }
  std::printf("poem: format check agrees on %zu of %zu (%.1f%%); strict extra-text check on %zu "
              "of %zu\n",
              agree, rows.size(), 100.0 * agree / rows.size(), strict_agree, strict_checked);
  EXPECT_EQ(agree, rows.size());
  EXPECT_EQ(strict_agree, strict_checked);
}

TEST(GraderEvalSet, SloganFormatAgreementWithHandLabels) {
  const auto rows = load("eval_slogan.jsonl");
  ASSERT_GE(rows.size(), 30u);
  const g::SloganGrader grader{g::SloganGraderOptions{}};
  size_t agree = 0;
  for (const auto& row : rows) {
    const std::string prompt = row["prompt"], response = row["response"];
    const auto r = grader.grade(GradeInput{prompt, response, std::nullopt});
    const bool length_ok = dimension(r, "word_count") == 1.0;
    const bool keywords_ok = dimension(r, "keywords") == 1.0;
    if (length_ok == row["length_ok"].get<bool>() && keywords_ok == row["keywords_ok"].get<bool>()) {
      ++agree;
    } else {
      ADD_FAILURE() << "disagrees (" << row["note"].get<std::string>() << "): " << prompt << " / "
                    << response << "\n  " << r.reason;
    }
  }
  std::printf("slogan: length and keyword checks agree on %zu of %zu (%.1f%%)\n", agree,
              rows.size(), 100.0 * agree / rows.size());
  EXPECT_EQ(agree, rows.size());
}
