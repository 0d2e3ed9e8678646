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

}  // namespace prefengine
