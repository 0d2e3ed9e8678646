#pragma once
// Normalising a final answer before comparison. Covers the normalisation of the Hendrycks MATH
// `is_equiv` (strip_string) and of Minerva's `normalize_final_answer`, rewritten from their
// descriptions: \dfrac and \tfrac to \frac, \left and \right dropped, \text{...} unwrapped and
// units after a number dropped, degree and percent signs, dollar signs, thin spaces, "x = 5" to
// "5", \frac12 and \sqrt3 shorthands braced, a/b of integers to \frac{a}{b}, ".5" to "0.5",
// thousands separators, a trailing full stop, and all white space. Beyond them: full-width digits
// and punctuation folded (１８ -> 18), Chinese measure words after a number dropped (18 个 -> 18),
// "3 and 5" -> "3,5", \binom variants, matrix environments kept (rows "\\", cells "&").
#include <string>
#include <string_view>

namespace prefengine::plugins::graders {

// With `keep_equations`, "y = 2x + 3" stays an equation; otherwise an assignment to a name loses
// its left side ("x = 5" -> "5").
std::string normalize_answer(std::string_view answer, bool keep_equations = false);

}  // namespace prefengine::plugins::graders
