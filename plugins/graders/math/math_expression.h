#pragma once
// Evaluating the LaTeX-ish arithmetic of answers: numbers, + - * / ^, \frac, \sqrt, \pi, implicit
// multiplication, scientific notation, factorials (5!), binomials (\binom{6}{3}) and one-letter
// variables. Exact rational arithmetic where the
// expression allows it (no roots, pi or variables), doubles otherwise.
#include <cstdint>
#include <optional>
#include <string_view>

namespace prefengine::plugins::graders {

// A rational number num/den in lowest terms, den > 0.
struct Rational {
  int64_t num = 0;  // numerator
  int64_t den = 1;  // denominator, > 0
};

struct NumericValue {
  double approx = 0;               // the value as a double (may be +-inf)
  std::optional<Rational> exact;   // the exact value when known
  bool has_variables = false;      // true when a variable took part (value depends on `point`)
  bool overflow = false;           // an exact value did not fit in 64 bits: `approx` is rounded
};

// Evaluates `expr` (a normalised answer without spaces, see normalize_answer), giving every
// one-letter variable a fixed value that depends on the letter and on `point` (0, 1, 2, ...), so
// that two expressions in the same variables can be compared at several points. nullopt when the
// text is not an expression this evaluator understands. Never throws; nesting deeper than 100
// levels is refused.
std::optional<NumericValue> evaluate_expression(std::string_view expr, int point = 0);

}  // namespace prefengine::plugins::graders
