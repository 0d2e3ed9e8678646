#pragma once
// Evaluation inside any stage (the stage's `eval:` block, EvalOptions in
// engine/config/experiment_config.h). The training loop runs it every `every` steps and at the
// stage's end (at every metrics row when every = 0), after the step's update, and adds its values
// to the step's metrics row. Two parts, each optional:
//
// Held-out pairs (`eval.path`, text or pre-tokenized, read and truncated like the stage's data):
//   eval/logps_chosen_per_token, eval/logps_rejected_per_token
//                  the mean over pairs of the policy's log-prob of the response divided by its
//                  number of tokens (the paper's Table 1 measure);
//   in a pairwise stage, scored by the stage's loss plugin:
//   eval/pair_accuracy  fraction of pairs whose chosen response is scored above the rejected one:
//                  r_w > r_l for a reward model (scalar head, no policy log-probs), the implicit
//                  reward h_w > h_l (log-prob margin against the reference) when the loss uses a
//                  reference, logp_w > logp_l otherwise;
//   eval/loss      the stage's loss on the held-out pairs as one batch (no gradient).
//
// Generation (`eval.prompts`, text {"prompt", "reference"?} rows): `sampling.n` answers per prompt
// are sampled through the engine generator from a generator seeded by (seed, stage, step), so an
// evaluation neither moves the training's random stream nor changes on resume; each answer is
// graded by `eval.grader`, and
//   eval/score_mean     mean grade over all answers;
//   eval/accuracy       share of answers grading at least `correct_at` (default 3/4 up the
//                       grader's range: 4 on the 1-5 math rubric);
//   eval/pass@k         per prompt 1 - C(n-c, k)/C(n, k) with c correct of n, averaged (pass_at_k);
//   eval/length_mean    mean answer length in tokens (EOS not counted);
//   eval/stopped        share of answers that ended with EOS (else cut at max_new_tokens);
//   eval/sample_logps_per_token, eval/sample_ref_logps_per_token, eval/sample_kl_per_token
//                       (sample_kl: true) the per-token log-prob of the answers under the policy
//                       and under the stage's reference (the policy at the stage's start, or
//                       reference_from), and their difference: a Monte Carlo estimate of the
//                       per-token KL(policy || reference) on the policy's own answers, the
//                       dispersion measure (docs/algorithms.md);
//   eval/grade_errors   answers the grader refused (scored its minimum), when any.
// The answers are written to RUN_DIR/eval/<stage>-<step>.jsonl, one line per answer, in the form
// `prefengine grade` reads.
//
// With data parallelism every rank evaluates the same prompts with the same draws (the values
// are identical); rank 0 writes.
#include <cstdint>
#include <memory>
#include <string>

#include "engine/train/stage_unit.h"

namespace prefengine {

struct MetricsRow;

// The unbiased pass@k estimator from n samples of which c are correct: 1 - C(n-c, k) / C(n, k),
// computed as 1 - prod_{i=n-c+1}^{n} (1 - k/i); 1 when n - c < k. Requires 0 <= c <= n, 1 <= k <= n.
double pass_at_k(int64_t n, int64_t c, int64_t k);

// The grade from which an answer counts as correct: `configured`, or when it is NaN,
// min + 3/4 (max - min) of the grader's range.
double correct_threshold(double configured, double min_score, double max_score);

class StageEvaluator {
 public:
  // The stage's evaluator, or null when it has no `eval:` block. Call after the unit's prepare()
  // and before any resume weights are loaded: the reference is the policy as it is then.
  static std::unique_ptr<StageEvaluator> create(StageContext& context);
  // Reads and checks every eval input (pairs, prompts, token ranges, the grader) without running
  // anything (`prefengine validate`, and create()).
  static void validate(StageContext& context);

  virtual ~StageEvaluator();
  // True when step `step` of `steps` is evaluated (`log_row`: the step writes a metrics row).
  virtual bool due(int64_t step, int64_t steps, bool log_row) const = 0;
  // Evaluates the policy and adds eval/* to `row`.
  virtual void measure(int64_t step, MetricsRow& row) = 0;
};

}  // namespace prefengine
