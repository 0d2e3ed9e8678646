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
  enum class Kind { kScalar, kOrdered, kUnordered, kMatrix } kind = Kind::kScalar;
  std::string open, close;        // brackets of an ordered collection: "(", "]", ...
  std::string text;               // the scalar's normalised text
  std::vector<Structured> items;  // the collection's elements (a matrix: its rows, kOrdered)
};

// The environments of a matrix or vector value (vmatrix is a determinant, not a matrix).
constexpr std::string_view kMatrixEnvironments[] = {"pmatrix", "bmatrix", "Bmatrix", "matrix",
                                                   "smallmatrix"};

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

// Splits `s` at top-level occurrences of `sep` outside \begin{...}...\end{...} as well.
std::vector<std::string> split_cells(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  int depth = 0;
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 7, "\begin{") == 0) ++depth;
    if (s.compare(i, 5, "\end{") == 0) --depth;
    if (s[i] == '{' || s[i] == '(' || s[i] == '[') ++depth;
    if (s[i] == '}' || s[i] == ')' || s[i] == ']') --depth;
    if (depth == 0 && s.compare(i, sep.size(), sep) == 0) {
      parts.push_back(s.substr(from, i - from));
      from = i + sep.size();
      i += sep.size() - 1;
    }
  }
  parts.push_back(s.substr(from));
  return parts;
}

// "\begin{pmatrix}1&2\\3&4\end{pmatrix}" (normalised, no spaces): the rows of cells.
std::optional<std::vector<std::vector<std::string>>> matrix_cells(const std::string& s) {
  for (std::string_view env : kMatrixEnvironments) {
    const std::string begin = "\\begin{" + std::string(env) + "}";
    const std::string end = "\\end{" + std::string(env) + "}";
    if (s.size() < begin.size() + end.size() || s.compare(0, begin.size(), begin) != 0 ||
        s.compare(s.size() - end.size(), end.size(), end) != 0) {
      continue;
    }
    std::string body = s.substr(begin.size(), s.size() - begin.size() - end.size());
    // A trailing row break ("1\\2\\") adds no row.
    while (body.size() >= 2 && body.compare(body.size() - 2, 2, "\\\\") == 0) body.resize(body.size() - 2);
    std::vector<std::vector<std::string>> rows;
    for (const auto& row : split_cells(body, "\\\\")) rows.push_back(split_cells(row, "&"));
    if (rows.empty()) return std::nullopt;
    for (const auto& row : rows) {
      if (row.size() != rows[0].size()) return std::nullopt;
      for (const auto& cell : row) {
        if (cell.empty()) return std::nullopt;
      }
    }
    return rows;
  }
  return std::nullopt;
}

Structured parse_structure(const std::string& s, int depth = 0) {
  Structured out;
  out.text = s;
  if (depth > 20 || s.size() < 2) return out;
  if (const auto cells = matrix_cells(s)) {
    Structured m;
    m.kind = Structured::Kind::kMatrix;
    for (const auto& row : *cells) {
      Structured r;
      r.kind = Structured::Kind::kOrdered;
      for (const auto& cell : row) r.items.push_back(parse_structure(cell, depth + 1));
      m.items.push_back(std::move(r));
    }
    return m;
  }
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

bool lower_equal(const std::string& a, const std::string& b) {
  return ascii_lower(a) == ascii_lower(b);
}

bool sampled_equal(const std::string& a, const std::string& b, double tol) {
  for (int point = 1; point <= 3; ++point) {
    const auto pa = evaluate_expression(a, point);
    const auto pb = evaluate_expression(b, point);
    if (!pa || !pb || !close_enough(*pa, *pb, tol)) return false;
  }
  return true;
}

bool scalars_equal(const std::string& a, const std::string& b, const EquivalenceOptions& o) {
  if (a == b) return true;
  // Words compare as text, whatever their case: \text{Yes} and "yes".
  if (has_word(a) || has_word(b)) return lower_equal(a, b);
  const auto va = evaluate_expression(a, 0);
  const auto vb = evaluate_expression(b, 0);
  if (!va || !vb) {
    // Past what the evaluator reads: only an exact symbolic proof counts.
    return symbolic_compare(a, b, o.symbolic) == SymbolicVerdict::kEqual;
  }
  if (va->has_variables != vb->has_variables) return false;
  if (va->exact && vb->exact) return va->exact->num == vb->exact->num && va->exact->den == vb->exact->den;
  // Values that are not even close differ, however they would simplify.
  const bool finite = std::isfinite(va->approx) && std::isfinite(vb->approx);
  if (finite && !va->has_variables && !close_enough(*va, *vb, o.tolerance)) return false;
  // Exact values past 64 bits, and expressions in variables: GiNaC decides where it can.
  if (va->overflow || vb->overflow || va->has_variables) {
    const SymbolicVerdict verdict = symbolic_compare(a, b, o.symbolic);
    if (verdict != SymbolicVerdict::kUnknown) return verdict == SymbolicVerdict::kEqual;
    if (va->overflow || vb->overflow) return false;  // no floating-point verdict on big numbers
    return close_enough(*va, *vb, o.tolerance) && sampled_equal(a, b, o.tolerance);
  }
  return close_enough(*va, *vb, o.tolerance);
}

// A one-row or one-column matrix against a tuple "(a,b,c)": the same vector.
bool vector_equal(const Structured& matrix, const Structured& tuple, const EquivalenceOptions& o);

bool equal(const Structured& a, const Structured& b, const EquivalenceOptions& o) {
  if (a.kind == Structured::Kind::kMatrix && b.kind == Structured::Kind::kOrdered) {
    return vector_equal(a, b, o);
  }
  if (b.kind == Structured::Kind::kMatrix && a.kind == Structured::Kind::kOrdered) {
    return vector_equal(b, a, o);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Structured::Kind::kScalar:
      return scalars_equal(a.text, b.text, o);
    case Structured::Kind::kMatrix:
      if (a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (a.items[i].items.size() != b.items[i].items.size()) return false;
        for (size_t j = 0; j < a.items[i].items.size(); ++j) {
          if (!equal(a.items[i].items[j], b.items[i].items[j], o)) return false;
        }
      }
      return true;
    case Structured::Kind::kOrdered:
      if (a.open != b.open || a.close != b.close || a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i) {
        if (!equal(a.items[i], b.items[i], o)) return false;
      }
      return true;
    case Structured::Kind::kUnordered: {
      if (a.items.size() != b.items.size()) return false;
      std::vector<bool> used(b.items.size(), false);
      for (const auto& item : a.items) {
        bool found = false;
        for (size_t j = 0; j < b.items.size() && !found; ++j) {
          if (!used[j] && equal(item, b.items[j], o)) used[j] = found = true;
        }
        if (!found) return false;
      }
      return true;
    }
  }
  return false;
}

bool vector_equal(const Structured& matrix, const Structured& tuple, const EquivalenceOptions& o) {
  if (tuple.open != "(" || tuple.close != ")") return false;
  std::vector<const Structured*> entries;
  if (matrix.items.size() == 1) {
    for (const auto& cell : matrix.items[0].items) entries.push_back(&cell);
  } else {
    for (const auto& row : matrix.items) {
      if (row.items.size() != 1) return false;
      entries.push_back(&row.items[0]);
    }
  }
  if (entries.size() != tuple.items.size()) return false;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (!equal(*entries[i], tuple.items[i], o)) return false;
  }
  return true;
}

// "L=R" with exactly one '=' and no top-level comma: the two sides; else nullopt.
bool is_equation(const std::string& s) {
  const size_t eq = s.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) return false;
  if (s.find('=', eq + 1) != std::string::npos) return false;
  return split_top(s, ",").size() == 1 && s.find("\\begin") == std::string::npos;
}

// Equations as equations: L1-R1 a constant multiple of L2-R2, by GiNaC or else at four points.
bool equations_equal(const std::string& a, const std::string& b, const EquivalenceOptions& o) {
  const SymbolicVerdict verdict = symbolic_compare_equations(a, b, o.symbolic);
  if (verdict != SymbolicVerdict::kUnknown) return verdict == SymbolicVerdict::kEqual;
  const size_t ea = a.find('='), eb = b.find('=');
  const std::string d1 = "(" + a.substr(0, ea) + ")-(" + a.substr(ea + 1) + ")";
  const std::string d2 = "(" + b.substr(0, eb) + ")-(" + b.substr(eb + 1) + ")";
  std::optional<double> ratio;
  for (int point = 0; point <= 3; ++point) {
    const auto v1 = evaluate_expression(d1, point);
    const auto v2 = evaluate_expression(d2, point);
    if (!v1 || !v2 || !v1->has_variables || !v2->has_variables) return false;
    if (!std::isfinite(v1->approx) || !std::isfinite(v2->approx) || v2->approx == 0) return false;
    const double r = v1->approx / v2->approx;
    if (r == 0) return false;
    if (ratio && std::fabs(r - *ratio) > o.tolerance * std::max(1.0, std::fabs(*ratio))) return false;
    ratio = r;
  }
  return true;
}

}  // namespace

void EquivalenceOptions::validate() const {
  if (!(tolerance >= 0)) {
    throw std::invalid_argument("tolerance: expected a number >= 0, got " + std::to_string(tolerance));
  }
  symbolic.validate();
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
  // Two equations ("y=2x+3", "2x-y+3=0") compare as equations first; "x=5" vs "5" below.
  const std::string ea = normalize_answer(answer, /*keep_equations=*/true);
  const std::string eb = normalize_answer(reference, /*keep_equations=*/true);
  if (is_equation(ea) && is_equation(eb) && equations_equal(ea, eb, options)) return true;
  return equal(parse_structure(a), parse_structure(b), options);
}

}  // namespace prefengine::plugins::graders
