#pragma once
// Losses on sampled responses with rewards (RLHF-PPO).
#include "prefengine/loss.h"

namespace prefengine {

// One batch of B sampled responses. All [B, T] tensors are aligned on response tokens.
struct RolloutBatch {
  at::Tensor logps;       // [B, T] current policy per-token log-probs of the sampled tokens (grad)
  at::Tensor old_logps;   // [B, T] the same at rollout time
  at::Tensor ref_logps;   // [B, T] the reference model's
  at::Tensor values;      // [B, T] current value head (grad)
  at::Tensor old_values;  // [B, T] value head at rollout time
  at::Tensor scores;      // [B] sequence reward (reward model or grader)
  at::Tensor rewards;     // [B, T] per-token rewards, filled by prepare_rollout
  at::Tensor advantages;  // [B, T] filled by prepare_rollout
  at::Tensor returns;     // [B, T] filled by prepare_rollout
  at::Tensor mask;        // [B, T] float, 1 on response tokens
  bool want_metrics = true;  // false on steps whose metrics are not logged: may skip them
};

class PREFENGINE_API RolloutLoss : public Loss {
 public:
  ~RolloutLoss() override;

  // Turns scores, old/ref log-probs and old values into rewards, advantages and returns, once per
  // rollout batch.
  virtual void prepare_rollout(RolloutBatch& batch) = 0;
  // The loss of one minibatch; called for every optimisation epoch over the rollout batch.
  virtual LossOutput rollout(const RolloutBatch& batch) = 0;
  // Optimisation epochs over each rollout batch.
  virtual int rollout_epochs() const { return 1; }
};

}  // namespace prefengine
