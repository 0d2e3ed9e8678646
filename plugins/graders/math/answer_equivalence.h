#pragma once
// Are two final answers the same? Normalised strings first, then values: equal numbers are equal
// however written (fractions, decimals, roots, pi, powers, scientific notation; exact rational
// comparison where both sides allow it, else relative tolerance), expressions in one-letter
// variables agree at several points, and tuples, intervals and sets compare element by element
// (tuples and intervals in order and with the same brackets, sets and bare lists in any order).
// Integers and rationals of any size compare exactly (GiNaC past 64 bits, never by tolerance);
// matrices (pmatrix, bmatrix, matrix) entry by entry, a one-column or one-row matrix also against
// a tuple; equations of a line or curve as equal when one side minus the other is a constant
// multiple of the other's (y=2x+3 vs 2x-y+3=0); expressions in variables by GiNaC first, by
// evaluation at four points when GiNaC cannot decide; words (\text{Yes}) case-insensitively.
#include <string_view>

#include "math/symbolic_equivalence.h"

namespace prefengine::plugins::graders {

struct EquivalenceOptions {
  double tolerance = 1e-6;  // relative tolerance for inexact values: |a-b| <= tol*max(1,|a|,|b|)
  SymbolicBudget symbolic;  // the size and time budget of each GiNaC comparison
  void validate() const;    // throws std::invalid_argument naming the field
};

bool answers_equivalent(std::string_view answer, std::string_view reference,
                        const EquivalenceOptions& options = {});

}  // namespace prefengine::plugins::graders
