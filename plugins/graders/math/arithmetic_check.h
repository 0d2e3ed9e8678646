#pragma once
// Checking the process of a solution: the arithmetic of the equations it writes out
// ("12 * 3 = 36", "$\frac{1}{2} + 1 = 1.5$") and whether there is any working at all.
#include <string>
#include <string_view>
#include <vector>

namespace prefengine::plugins::graders {

struct ArithmeticStep {
  std::string text;  // the equation as found, e.g. "12*3=36"
  bool correct;      // the left side evaluates to the right side
};

struct ArithmeticReport {
  std::vector<ArithmeticStep> steps;  // every checkable equation, in order
  size_t correct() const;             // how many steps are correct
};

// Finds equations "expr = number" whose left side is arithmetic on numbers (+ - * / ^, \times,
// \cdot, \div, x between numbers, parentheses, \frac{a}{b}, \sqrt{...}) with at least one operator,
// and checks each: exact for rationals; a right side given with k decimals may be rounded
// (|lhs - rhs| <= 0.5*10^-k); otherwise a relative tolerance of 1e-9.
ArithmeticReport check_arithmetic(std::string_view solution);

// The number of words of working in `solution` outside the final \boxed{...}: ASCII words and
// numbers count one each, every Han character counts one.
size_t working_tokens(std::string_view solution);

}  // namespace prefengine::plugins::graders
