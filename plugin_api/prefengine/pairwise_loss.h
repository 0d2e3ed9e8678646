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

// A capability a pairwise loss adds beside PairwiseLoss: its gradient in closed form. With a model
// that runs outside autograd (DirectBackward, prefengine/model.h), the engine then runs a step
// with no autograd at all (the toy model's steps that log nothing): it calls
// pairwise_with_gradient instead of pairwise(), with log-probs that do not require grad, and
// backpropagates grad_chosen and grad_rejected itself. The contract:
//   - return what pairwise() returns for the batch (the loss need not require grad);
//   - set grad_chosen and grad_rejected ([B] each, fp32) to grad_output * dloss/dchosen_logps and
//     grad_output * dloss/drejected_logps, where grad_output is a one-element fp32 tensor (1, or
//     1/k in a step of k micro-batches): what autograd would hand the loss's own node.
// The engine uses it only for losses on policy (and reference) log-probs: requirements() without
// scalar_head or token_logps. A run is meant to give the same numbers either way; the engine's
// tests hold the shipped losses to the same bits (tests/direct_backward_test.cpp).
// dynamic_cast<PairwiseGradient*>(&loss).
class PREFENGINE_API PairwiseGradient {
 public:
  virtual ~PairwiseGradient();
  virtual LossOutput pairwise_with_gradient(const PairwiseBatch& batch, const at::Tensor& grad_output,
                                            at::Tensor& grad_chosen, at::Tensor& grad_rejected) = 0;
};

}  // namespace prefengine
