#include "math/answer_equivalence.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/utf8.h"
#include "math/answer_normalizer.h"
#include "math/math_expression.h"

namespace prefengine::plugins::graders {
namespace {

// A parsed answer: a scalar, or a bracketed/comma-separated collection of answers.
struct Structured {
  enum class Kind { kScalar, kOrdered, kUnordered } kind = Kind::kScalar;
  std::string open, close;        // brackets of an ordered collection: "(", "]", ...
  std::string text;               // the scalar's normalised text
  std::vector<Structured> items;  // the collection's elements
};

// Splits `s` at top-level occurrences of `sep` (outside (), [], {}).
std::vector<std::string> split_top(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && (s.compare(i, 2, "\\{") == 0 || s.compare(i, 2, "\\}") == 0)) {
      depth += s[i + 1] == '{' ? 1 : -1;
      ++i;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      parts.push_back(s.substr(from, i - from));
      from = i + sep.size();
      i += sep.size() - 1;
    }
  }
  parts.push_back(s.substr(from));
  return parts;
}

// True when the bracket that opens at 0 closes at the last character, not before: "(1,2)" but
// not "(1)+(2)".
bool wraps_whole(const std::string& s) {
  int depth = 0;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' || c == '[' || c == '{') ++depth;
    if (c == ')' || c == ']' || c == '}') --depth;
    if (depth == 0) return false;
  }
  return true;
}

Structured parse_structure(const std::string& s, int depth = 0) {
  Structured out;
  out.text = s;
  if (depth > 20 || s.size() < 2) return out;
  auto collection = [&](Structured::Kind kind, const std::vector<std::string>& parts) {
    Structured c;
    c.kind = kind;
    for (const auto& p : parts) c.items.push_back(parse_structure(p, depth + 1));
    return c;
  };
  // Unions of intervals compare as sets of intervals.
  if (auto parts = split_top(s, "\\cup"); parts.size() > 1) {
    return collection(Structured::Kind::kUnordered, parts);
  }
  if (s.rfind("\\{", 0) == 0 && s.size() >= 4 && s.compare(s.size() - 2, 2, "\\}") == 0) {
    return collection(Structured::Kind::kUnordered, split_top(s.substr(2, s.size() - 4), ","));
  }
  const char first = s.front(), last = s.back();
  if ((first == '(' || first == '[') && (last == ')' || last == ']') && wraps_whole(s)) {
    auto parts = split_top(s.substr(1, s.size() - 2), ",");
    if (parts.size() > 1) {
      Structured c = collection(Structured::Kind::kOrdered, parts);
      c.open = std::string(1, first);
      c.close = std::string(1, last);
      return c;
    }
  }
  if (auto parts = split_top(s, ","); parts.size() > 1) {
    return collection(Structured::Kind::kUnordered, parts);
  }
  // "1\pm\sqrt{2}" stands for the two values 1+\sqrt{2} and 1-\sqrt{2}.
  const size_t pm = s.find("\\pm");
  if (pm != std::string::npos && s.find("\\pm", pm + 3) == std::string::npos) {
    const std::string head = s.substr(0, pm), tail = s.substr(pm + 3);
    return collection(Structured::Kind::kUnordered, {head + "+" + tail, head + "-" + tail});
  }
  return out;
}

bool close_enough(const NumericValue& a, const NumericValue& b, double tol) {
  if (a.exact && b.exact) return a.exact->num == b.exact->num && a.exact->den == b.exact->den;
  if (std::isnan(a.approx) || std::isnan(b.approx)) return false;
  if (std::isinf(a.approx) || std::isinf(b.approx)) return a.approx == b.approx;
  const double scale = std::max({1.0, std::fabs(a.approx), std::fabs(b.approx)});
  return std::fabs(a.approx - b.approx) <= tol * scale;
}

// A word ("Monday", "3apples"): a run of three or more letters outside a command, or nothing
// but letters. Words are compared as text, not as products of one-letter variables (which would
// make "no" equal "on").
bool has_word(const std::string& s) {
  size_t run = 0;
  bool command = false;
  bool only_letters = !s.empty();
  for (char c : s) {
    const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
    only_letters = only_letters && letter;
    if (c == '\\') {
      command = true;
      run = 0;
      continue;
    }
    if (!letter) {
      command = false;
      run = 0;
      continue;
    }
    if (!command && ++run >= 3) return true;
  }
  return only_letters && s.size() >= 2;
}

bool scalars_equal(const std::string& a, const std::string& b, double tol) {
  if (a == b) return true;
  if (has_word(a) || has_word(b)) return false;
  const auto va = evaluate_expression(a, 0);
  const auto vb = evaluate_expression(b, 0);
  if (!va || !vb) return false;
  if (va->has_variables != vb->has_variables) return false;
  if (!close_enough(*va, *vb, tol)) return false;
  if (!va->has_variables) return true;
  for (int point = 1; point <= 3; ++point) {
    const auto pa = evaluate_expression(a, point);
    const auto pb = evaluate_expression(b, point);
    if (!pa || !pb || !close_enough(*pa, *pb, tol)) return false;
  }
  return true;
}

bool equal(const Structured& a, const Structured& b, double tol) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Structured::Kind::kScalar:
      return scalars_equal(a.text, b.text, tol);
    case Structured::Kind::kOrdered:
      if (a.open != b.open || a.close != b.close || a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (!equal(a.items[i], b.items[i], tol)) return false;
      }
      return true;
    case Structured::Kind::kUnordered: {
      if (a.items.size() != b.items.size()) return false;
      std::vector<bool> used(b.items.size(), false);
      for (const auto& item : a.items) {
        bool found = false;
        for (size_t j = 0; j < b.items.size() && !found; ++j) {
          if (!used[j] && equal(item, b.items[j], tol)) used[j] = found = true;
        }
        if (!found) return false;
      }
      return true;
    }
  }
  return false;
}

}  // namespace

void EquivalenceOptions::validate() const {
  if (!(tolerance >= 0)) {
    throw std::invalid_argument("tolerance: expected a number >= 0, got " + std::to_string(tolerance));
  }
}

bool answers_equivalent(std::string_view answer, std::string_view reference,
                        const EquivalenceOptions& options) {
  // No final answer is this long; compare such text as it is rather than parse it.
  constexpr size_t kMaxAnswerBytes = 10000;
  if (answer.size() > kMaxAnswerBytes || reference.size() > kMaxAnswerBytes) {
    return trim(answer) == trim(reference);
  }
  const std::string a = normalize_answer(answer);
  const std::string b = normalize_answer(reference);
  if (a.empty() || b.empty()) return false;
  if (a == b) return true;
  return equal(parse_structure(a), parse_structure(b), options.tolerance);
}

}  // namespace prefengine::plugins::graders
