#include "math/math_grader.h"

#include <stdexcept>

#include "common/utf8.h"
#include "math/answer_extractor.h"
#include "math/arithmetic_check.h"

namespace prefengine::plugins::graders {

void MathGraderOptions::validate() const {
  if (!(tolerance >= 0) || tolerance >= 1) {
    throw std::invalid_argument("tolerance: expected a number in [0, 1), got " +
                                std::to_string(tolerance));
  }
  if (symbolic_max_chars < 1) {
    throw std::invalid_argument("symbolic_max_chars: expected >= 1, got 0");
  }
  if (!(symbolic_max_ms > 0) || symbolic_max_ms > 10000) {
    throw std::invalid_argument("symbolic_max_ms: expected a number in (0, 10000], got " +
                                std::to_string(symbolic_max_ms));
  }
}

MathGrader::MathGrader(PluginOptions& options) {
  MathGraderOptions o;
  o.tolerance = options.get_double("tolerance", o.tolerance, /*min=*/0, /*max=*/0.5);
  o.verbose_chars = static_cast<size_t>(
      options.get_int("verbose_chars", static_cast<int64_t>(o.verbose_chars), /*min=*/0));
  o.min_working_tokens = static_cast<size_t>(options.get_int(
      "min_working_tokens", static_cast<int64_t>(o.min_working_tokens), /*min=*/0, /*max=*/100000));
  o.symbolic_max_chars = static_cast<size_t>(options.get_int(
      "symbolic_max_chars", static_cast<int64_t>(o.symbolic_max_chars), /*min=*/1, /*max=*/100000));
  o.symbolic_max_ms = options.get_double("symbolic_max_ms", o.symbolic_max_ms, /*min=*/0.001,
                                         /*max=*/10000);
  o.validate();
  options_ = o;
}

MathGrader::MathGrader(MathGraderOptions options) : options_(options) { options_.validate(); }

std::vector<std::string> MathGrader::dimensions() const {
  return {"answer", "working", "arithmetic", "concise"};
}

GradeResult MathGrader::grade(const GradeInput& input) const {
  if (!input.reference || trim(*input.reference).empty()) {
    throw std::invalid_argument("the math grader needs a reference answer");
  }
  if (!is_valid_utf8(input.response)) throw std::invalid_argument("response is not valid UTF-8");
  // A reference may be a whole solution; its final answer is what counts.
  const std::string reference =
      extract_marked_answer(*input.reference).value_or(std::string(trim(*input.reference)));
  const ExtractedAnswer extracted = extract_answer(input.response);
  const auto& answer = extracted.answer;
  const ArithmeticReport arithmetic = check_arithmetic(input.response);
  const size_t checked = arithmetic.steps.size();
  const size_t right = arithmetic.correct();
  const bool has_working =
      checked > 0 || working_tokens(input.response) >= options_.min_working_tokens;
  const bool verbose = options_.verbose_chars > 0 && input.response.size() > options_.verbose_chars;
  EquivalenceOptions equivalence;
  equivalence.tolerance = options_.tolerance;
  equivalence.symbolic.max_chars = options_.symbolic_max_chars;
  equivalence.symbolic.max_millis = options_.symbolic_max_ms;
  const bool correct = answer && answers_equivalent(*answer, reference, equivalence);
  const double arithmetic_share = checked == 0 ? 1.0 : static_cast<double>(right) / checked;

  GradeResult result;
  std::string why;
  if (!answer) {
    result.score = 1;
    why = trim(input.response).empty() ? "empty response"
          : extracted.ambiguous        ? "no single final answer (hedged)"
                                       : "no final answer found";
  } else if (extracted.ambiguous && !correct) {
    result.score = 1;
    why = "several different final answers";
  } else if (correct) {
    if (!has_working) {
      result.score = 4, why = "correct answer without working";
    } else if (right < checked) {
      result.score = 3, why = "correct answer but the process has arithmetic errors";
    } else if (verbose) {
      result.score = 4, why = "correct answer buried in very verbose reasoning";
    } else {
      result.score = 5, why = "correct answer with a correct process";
    }
  } else {
    if (!has_working) {
      result.score = 1, why = "wrong answer without working";
    } else if (checked > 0 && 2 * right >= checked) {
      result.score = 3, why = "wrong answer with a mostly correct process";
    } else if (checked > 0 && right == 0) {
      result.score = 1, why = "wrong answer and every checked step is wrong";
    } else {
      result.score = 2, why = "wrong answer and a mostly wrong or uncheckable process";
    }
  }
  std::string detail = "; answer '" + (answer ? *answer : std::string()) + "' vs reference '" +
                       reference + "'";
  if (answer && answer->size() > 80) detail = "; answer vs reference '" + reference + "'";
  if (checked > 0) {
    detail += "; " + std::to_string(right) + " of " + std::to_string(checked) +
              " equations correct";
  }
  result.reason = why + detail;
  result.dimensions = {{"answer", correct ? 1.0 : 0.0},
                       {"working", has_working ? 1.0 : 0.0},
                       {"arithmetic", arithmetic_share},
                       {"concise", verbose ? 0.0 : 1.0}};
  return result;
}

}  // namespace prefengine::plugins::graders
