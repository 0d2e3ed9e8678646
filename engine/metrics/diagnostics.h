#pragma once
// The 3D diagnostics (docs/algorithms.md).
//  - probs/*: exact response distributions, for models whose responses are single tokens.
//  - grad/*: |dL/dpi| from autograd's dL/dlogpi, in log10 space (pi can be 1e-30 and below).
#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "engine/data/records.h"
#include "engine/metrics/metrics_logger.h"

namespace prefengine {

class Model;

class ResponseDistributionProbe {
 public:
  // True when every chosen and rejected response is a single token.
  static bool applicable(const std::vector<PairRecord>& records);

  ResponseDistributionProbe(const std::vector<PairRecord>& records, int64_t vocab_size);

  // Adds probs/chosen, probs/rejected (means over pairs), probs/unseen (mass on responses in none
  // of the prompt's pairs, mean over prompts) and probs/never_seen (mass on responses in no pair
  // at all, mean over prompts).
  void measure(Model& model, MetricsRow& row) const;

  // [U, V] next-token distributions after each distinct prompt.
  at::Tensor distributions(Model& model) const;

 private:
  std::vector<std::vector<int64_t>> prompts_;  // distinct prompts
  at::Tensor pair_prompt_;                     // [P] index into prompts_
  at::Tensor pair_chosen_;                     // [P] token id
  at::Tensor pair_rejected_;                   // [P] token id
  at::Tensor unseen_mask_;                     // [U, V] 1 where not in that prompt's pairs
  at::Tensor never_seen_mask_;                 // [U, V] 1 where in no pair at all
  at::Tensor prompt_ids_;                      // prompts_ packed once (pack_sequences): input ids
  at::Tensor prompt_attention_;                // and attention mask
};

// Per-pair gradient magnitudes: dloss_dlogp are dL_i/dlogp (per pair, not divided by the batch),
// logps the log-probs. |dL/dpi| = |dL/dlogpi| / pi, so log10|dL/dpi| = log10|dL/dlogpi| - logpi/ln 10.
// Adds grad/chosen_log10, grad/rejected_log10 and grad/ratio_log10 (means over the pairs whose
// gradients are non-zero); nothing when no pair has one.
void add_gradient_diagnostics(const at::Tensor& dloss_dlogp_chosen, const at::Tensor& dloss_dlogp_rejected,
                              const at::Tensor& logp_chosen, const at::Tensor& logp_rejected,
                              MetricsRow& row);

}  // namespace prefengine
