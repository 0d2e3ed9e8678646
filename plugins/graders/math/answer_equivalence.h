#pragma once
// Are two final answers the same? Normalised strings first, then values: equal numbers are equal
// however written (fractions, decimals, roots, pi, powers, scientific notation; exact rational
// comparison where both sides allow it, else relative tolerance), expressions in one-letter
// variables agree at several points, and tuples, intervals and sets compare element by element
// (tuples and intervals in order and with the same brackets, sets and bare lists in any order).
#include <string_view>

namespace prefengine::plugins::graders {

struct EquivalenceOptions {
  double tolerance = 1e-6;  // relative tolerance for inexact values: |a-b| <= tol*max(1,|a|,|b|)
  void validate() const;    // throws std::invalid_argument when tolerance is negative or NaN
};

bool answers_equivalent(std::string_view answer, std::string_view reference,
                        const EquivalenceOptions& options = {});

}  // namespace prefengine::plugins::graders
