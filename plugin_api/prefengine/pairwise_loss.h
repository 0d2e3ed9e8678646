#pragma once
// Losses on preference pairs (DPO, flex-beta DPO, DPO+SFT, IPO, SLiC, the reward model).
#include "prefengine/loss.h"

namespace prefengine {

// One batch of B preference pairs. Undefined tensors were not asked for.
struct PairwiseBatch {
  at::Tensor chosen_logps;          // [B] policy logp(y_w|x), requires grad
  at::Tensor rejected_logps;        // [B] policy logp(y_l|x), requires grad
  at::Tensor ref_chosen_logps;      // [B] reference logp(y_w|x), no grad
  at::Tensor ref_rejected_logps;    // [B] reference logp(y_l|x), no grad
  at::Tensor chosen_lengths;        // [B] float, number of response tokens of y_w (always set)
  at::Tensor rejected_lengths;      // [B] float, number of response tokens of y_l (always set)
  at::Tensor chosen_token_logps;    // [B, T] per-token policy log-probs, 0 outside the response
  at::Tensor rejected_token_logps;  // [B, T] likewise
  at::Tensor chosen_mask;           // [B, T] float, 1 on response tokens of y_w
  at::Tensor rejected_mask;         // [B, T] float, 1 on response tokens of y_l
  at::Tensor chosen_rewards;        // [B] scalar head r(x, y_w), requires grad
  at::Tensor rejected_rewards;      // [B] scalar head r(x, y_l), requires grad
  bool want_metrics = true;         // false on steps whose metrics are not logged: may skip them
};

class PREFENGINE_API PairwiseLoss : public Loss {
 public:
  ~PairwiseLoss() override;

  // The mean loss over the batch and the plugin's metrics.
  virtual LossOutput pairwise(const PairwiseBatch& batch) = 0;
};

}  // namespace prefengine
