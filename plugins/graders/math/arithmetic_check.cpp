#include "math/arithmetic_check.h"

#include <cctype>
#include <cmath>
#include <stdexcept>

#include "common/utf8.h"
#include "math/answer_extractor.h"
#include "math/math_expression.h"

namespace prefengine::plugins::graders {
namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Characters that may appear on the arithmetic side of an equation after rewriting.
bool arithmetic_char(char c) {
  return is_digit(c) || c == '.' || c == '+' || c == '-' || c == '*' || c == '/' || c == '^' ||
         c == '(' || c == ')' || c == '{' || c == '}' || c == ' ' || c == '\x01' || c == '\x02';
}

// Rewrites the operators people write into ASCII ones; \frac and \sqrt become one-byte markers
// so that the scan below can treat them as arithmetic.
std::string rewrite(std::string_view text) {
  std::string s(text);
  replace_all(s, "\\times", "*");
  replace_all(s, "\\cdot", "*");
  replace_all(s, "\\div", "/");
  replace_all(s, "×", "*");
  replace_all(s, "÷", "/");
  replace_all(s, "·", "*");
  replace_all(s, "−", "-");
  replace_all(s, "＝", "=");
  replace_all(s, "\\dfrac", "\x01");
  replace_all(s, "\\frac", "\x01");
  replace_all(s, "\\sqrt", "\x02");
  replace_all(s, "\\left", "");
  replace_all(s, "\\right", "");
  replace_all(s, "\\approx", "~");
  // Thousands separators: "1,000" -> "1000" (a comma between a digit and exactly three digits).
  for (size_t i = 1; i + 3 < s.size(); ++i) {
    if (s[i] == ',' && is_digit(s[i - 1]) && is_digit(s[i + 1]) && is_digit(s[i + 2]) &&
        is_digit(s[i + 3]) && (i + 4 >= s.size() || !is_digit(s[i + 4]))) {
      s.erase(i, 1);
    }
  }
  // "3 x 4" with a spaced x between numbers is multiplication.
  for (size_t i = 1; i + 2 < s.size(); ++i) {
    if (s[i] == 'x' && s[i - 1] == ' ' && s[i + 1] == ' ') {
      size_t l = i - 1, r = i + 1;
      while (l > 0 && s[l] == ' ') --l;
      while (r < s.size() && s[r] == ' ') ++r;
      if (r < s.size() && (is_digit(s[l]) || s[l] == ')') && (is_digit(s[r]) || s[r] == '(')) s[i] = '*';
    }
  }
  return s;
}

// Back to the evaluator's syntax.
std::string to_expression(std::string_view side) {
  std::string e;
  for (char c : side) {
    if (c == ' ') continue;
    if (c == '\x01') {
      e += "\\frac";
    } else if (c == '\x02') {
      e += "\\sqrt";
    } else {
      e += c;
    }
  }
  return e;
}

bool balanced(std::string_view e) {
  int paren = 0, brace = 0;
  for (char c : e) {
    paren += c == '(' ? 1 : c == ')' ? -1 : 0;
    brace += c == '{' ? 1 : c == '}' ? -1 : 0;
    if (paren < 0 || brace < 0) return false;
  }
  return paren == 0 && brace == 0;
}

}  // namespace

size_t ArithmeticReport::correct() const {
  size_t n = 0;
  for (const auto& step : steps) n += step.correct ? 1 : 0;
  return n;
}

ArithmeticReport check_arithmetic(std::string_view solution) {
  ArithmeticReport report;
  const std::string s = rewrite(solution);
  for (size_t eq = s.find('='); eq != std::string::npos; eq = s.find('=', eq + 1)) {
    // Left side: the arithmetic run ending at '='.
    size_t l = eq;
    // A full stop not followed by a digit ends a sentence, not a decimal.
    while (l > 0 && arithmetic_char(s[l - 1]) && !(s[l - 1] == '.' && !is_digit(s[l]))) --l;
    // Glued to a name, a subscript or a command ("x+2", "a_1 + 2", "\binom{6}{2}", "3!"): part of
    // something this check cannot evaluate.
    if (l > 0 && l < eq && s[l] != ' ') {
      const char before = s[l - 1];
      if (std::isalpha(static_cast<unsigned char>(before)) || before == '_' || before == '\\' ||
          before == '!' || before == '|') {
        continue;
      }
    }
    // Right side: one number after '='.
    size_t r = eq + 1;
    while (r < s.size() && s[r] == ' ') ++r;
    const size_t num_start = r;
    if (r < s.size() && s[r] == '-') ++r;
    while (r < s.size() && (is_digit(s[r]) || s[r] == '.' || s[r] == ',')) {
      if (s[r] == ',') {  // only a thousands separator: ",ddd" not followed by a digit
        const bool group = r + 3 < s.size() && is_digit(s[r + 1]) && is_digit(s[r + 2]) &&
                           is_digit(s[r + 3]) && (r + 4 >= s.size() || !is_digit(s[r + 4]));
        if (!group) break;
      }
      ++r;
    }
    std::string rhs_text;
    for (size_t k = num_start; k < r; ++k) {
      if (s[k] != ',') rhs_text += s[k];
    }
    while (!rhs_text.empty() && rhs_text.back() == '.') rhs_text.pop_back();
    if (rhs_text.empty() || rhs_text == "-" || (r < s.size() && (std::isalpha(static_cast<unsigned char>(s[r])) || s[r] == '\\' || s[r] == '/' || s[r] == '^'))) {
      continue;  // the right side is not a plain number: not checkable
    }
    std::string lhs = to_expression(s.substr(l, eq - l));
    // Drop unbalanced leading openers ("(2+3=5").
    while (!lhs.empty() && !balanced(lhs) && (lhs[0] == '(' || lhs[0] == '{')) lhs.erase(0, 1);
    while (!lhs.empty() && (lhs[0] == '+' || lhs[0] == '*' || lhs[0] == '/' || lhs[0] == '^')) lhs.erase(0, 1);
    if (lhs.empty() || !balanced(lhs)) continue;
    bool has_operator = lhs.find_first_of("+*/^") != std::string::npos ||
                        lhs.find("\\frac") != std::string::npos ||
                        lhs.find("\\sqrt") != std::string::npos ||
                        lhs.find('-', 1) != std::string::npos;
    if (!has_operator) continue;
    const auto left = evaluate_expression(lhs);
    const auto right = evaluate_expression(rhs_text);
    if (!left || !right || left->has_variables) continue;
    bool correct = false;
    if (left->exact && right->exact) {
      correct = left->exact->num == right->exact->num && left->exact->den == right->exact->den;
    }
    if (!correct && std::isfinite(left->approx)) {
      const size_t dot = rhs_text.find('.');
      const size_t decimals = dot == std::string::npos ? 0 : rhs_text.size() - dot - 1;
      const double diff = std::fabs(left->approx - right->approx);
      const bool rounded = dot != std::string::npos && diff <= 0.5 * std::pow(10.0, -static_cast<double>(decimals)) + 1e-12;
      correct = rounded || diff <= 1e-9 * std::max(1.0, std::fabs(right->approx));
    }
    report.steps.push_back({lhs + "=" + rhs_text, correct});
  }
  return report;
}

size_t working_tokens(std::string_view solution) {
  std::string text(solution);
  // The final boxed answer is not working.
  const size_t boxed = text.rfind("\\boxed");
  if (boxed != std::string::npos) text.erase(boxed);
  size_t tokens = 0;
  bool in_word = false;
  std::u32string chars;
  try {
    chars = decode_utf8(text);
  } catch (const std::invalid_argument&) {
    return 0;
  }
  for (char32_t c : chars) {
    if (is_han(c)) {
      ++tokens;
      in_word = false;
    } else if (is_ascii_alnum(c)) {
      if (!in_word) ++tokens;
      in_word = true;
    } else {
      in_word = false;
    }
  }
  return tokens;
}

}  // namespace prefengine::plugins::graders
