#pragma once
// Held-out preference accuracy during a pairwise stage (the paper's section 5.3: RM vs DPO).
// At every evaluation the held-out pairs are scored by the model and the stage's loss:
//   eval/accuracy  fraction of pairs whose chosen response is scored above the rejected one:
//                  r_w > r_l for a reward model (scalar head, no policy log-probs), the implicit
//                  reward h_w > h_l (log-prob margin against the reference, the sign of
//                  beta*(h_w - h_l)) when the loss uses a reference, logp_w > logp_l otherwise;
//   eval/loss      the stage's loss on the held-out pairs (no gradient).
// The reference log-probs are the policy's at stage start (the frozen copy is that policy).
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>

#include "engine/config/experiment_config.h"
#include "engine/data/records.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/pairwise_loss.h"

namespace prefengine {

class Model;
struct MetricsRow;

class PairwiseEvaluator {
 public:
  // Reads the held-out pairs and, when the loss needs them, the reference log-probs from `model`
  // as it is now (call before the stage's first step).
  PairwiseEvaluator(const EvalOptions& options, const LossRequirements& requirements, Model& model);

  // True when step `step` should be evaluated (every `every` steps, or on every metrics row).
  bool due(int64_t step, bool log_row) const;
  void measure(Model& model, PairwiseLoss& loss, MetricsRow& row) const;

  int64_t pairs() const { return static_cast<int64_t>(records_.size()); }

 private:
  EvalOptions options_;
  LossRequirements requirements_;
  std::vector<PairRecord> records_;
  SequenceTensors packed_;  // rows 0..n-1 prompt + chosen, n..2n-1 prompt + rejected
  at::Tensor ref_logps_;    // [2n] or undefined
};

// A stage hook: the evaluator when the stage asks for one, else null.
std::unique_ptr<PairwiseEvaluator> make_pairwise_evaluator(const StageOptions& stage,
                                                           const LossRequirements& requirements,
                                                           Model& model);

}  // namespace prefengine
