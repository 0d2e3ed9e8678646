#pragma once
// The math grader: the 1-5 rubric of the paper (docs/algorithms.md, "Graders").
//   5 correct answer with a correct, complete process
//   4 correct answer without working, or buried in very verbose reasoning
//   3 wrong answer with a mostly correct process, or correct answer with arithmetic errors
//   2 wrong answer and a mostly wrong process (or working that cannot be checked)
//   1 no final answer (an empty response included), or a wrong answer with no working or with
//     every checked step wrong
// Several different final answers offered as alternatives are compared as the list of them, so
// they are wrong against a single reference value (see extract_answer).
// Dimensions: answer (1 correct / 0), working (1 when there is working), arithmetic (share of
// checked equations that are right; 1 when none could be checked), concise (0 when verbose).
#include <string>
#include <vector>

#include "math/answer_equivalence.h"
#include "prefengine/grader.h"

namespace prefengine::plugins::graders {

struct MathGraderOptions {
  double tolerance = 1e-6;         // relative tolerance for inexact numeric answers
  size_t verbose_chars = 6000;     // a response longer than this (bytes) is "very verbose"; 0 = never
  size_t min_working_tokens = 12;  // fewer words of working than this counts as no working
  size_t symbolic_max_chars = 400; // GiNaC budget: longer normalised answers are not parsed
  double symbolic_max_ms = 50;     // GiNaC budget: no further step after this many ms of CPU time per answer
  void validate() const;           // throws std::invalid_argument naming the field
};

class MathGrader : public Grader {
 public:
  // keys: tolerance, verbose_chars, min_working_tokens, symbolic_max_chars, symbolic_max_ms
  explicit MathGrader(PluginOptions& options);
  explicit MathGrader(MathGraderOptions options);

  // Throws std::invalid_argument without a reference answer.
  GradeResult grade(const GradeInput& input) const override;
  std::vector<std::string> dimensions() const override;
  double min_score() const override { return 1; }
  double max_score() const override { return 5; }

 private:
  MathGraderOptions options_;
};

}  // namespace prefengine::plugins::graders
