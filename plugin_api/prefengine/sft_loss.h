#pragma once
// Losses for supervised fine-tuning: target completions (token log-likelihood) or, for models
// whose responses are one token (the toy model), target distributions over the next token.
#include "prefengine/loss.h"

namespace prefengine {

// One batch of B SFT records. A row has either a target completion or a target distribution.
struct SftBatch {
  at::Tensor logps;                // [B] policy logp(completion|prompt), grad; 0 on distribution rows
  at::Tensor lengths;              // [B] float, completion tokens (0 on distribution rows)
  at::Tensor token_logps;          // [B, T] per-token log-probs, when requirements().token_logps
  at::Tensor mask;                 // [B, T] float, 1 on completion tokens, with token_logps
  at::Tensor next_token_logits;    // [B, V] logits of the token after the prompt, grad; set when
                                   // any row has a target distribution
  at::Tensor target_distribution;  // [B, V] target probabilities (rows without one: zeros)
  at::Tensor has_distribution;     // [B] bool: the row's target is target_distribution
  bool want_metrics = true;        // false on steps whose metrics are not logged: may skip them
};

class PREFENGINE_API SftLoss : public Loss {
 public:
  ~SftLoss() override;

  virtual LossOutput sft(const SftBatch& batch) = 0;
};

// A capability an SFT loss adds beside SftLoss: its gradient in closed form, for a step without
// autograd when the model runs outside it (DirectBackward; see PairwiseGradient in
// prefengine/pairwise_loss.h for the contract). The engine calls it only for batches whose rows
// all have a target distribution or all have a completion, with tensors that do not require grad,
// and only for losses whose requirements() ask for no token_logps. It returns what sft() returns
// and sets grad_next_token_logits ([B, V], distribution batches) or grad_logps ([B], completion
// batches) to grad_output * dloss/d(that input).
class PREFENGINE_API SftGradient {
 public:
  virtual ~SftGradient();
  virtual LossOutput sft_with_gradient(const SftBatch& batch, const at::Tensor& grad_output,
                                       at::Tensor& grad_next_token_logits, at::Tensor& grad_logps) = 0;
};

}  // namespace prefengine
