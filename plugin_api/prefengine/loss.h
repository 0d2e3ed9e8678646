#pragma once
// The loss interface. A loss declares what it needs (requirements()); the engine computes exactly
// that, once per batch, and hands it over as tensors. Every "logps" is a sum over response tokens
// of token log-probabilities in fp32.
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "prefengine/plugin.h"

namespace prefengine {

// What a stage of the given kind must compute for the loss.
struct LossRequirements {
  bool pairwise = true;          // consumes preference pairs (PairwiseBatch); false: rollouts (PPO)
  bool reference_logps = true;   // frozen reference log-probs of chosen and rejected
  bool policy_logps = true;      // the policy's summed log-probs (false: a reward model)
  bool token_logps = false;      // per-token log-probs and masks besides the sums
  bool scalar_head = false;      // the model's scalar head, read at the last response token
};

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

// One batch of B sampled responses (PPO). All [B, T] tensors are aligned on response tokens.
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

// A named scalar for the metrics files; the engine averages it over the batches of a log step.
using Metric = std::pair<std::string, at::Tensor>;

struct LossOutput {
  at::Tensor loss;              // scalar, the mean over the batch
  std::vector<Metric> metrics;  // the plugin's own metrics (e.g. rewards/margins), detached
};

class PREFENGINE_API Loss : public Plugin {
 public:
  ~Loss() override;

  virtual LossRequirements requirements() const = 0;

  // Pairwise losses implement this one.
  virtual LossOutput pairwise(const PairwiseBatch& batch);

  // Rollout losses (PPO) implement these: prepare_rollout turns scores, old/ref log-probs and old
  // values into rewards, advantages and returns once per rollout batch; rollout is called for
  // every optimisation epoch over it.
  virtual void prepare_rollout(RolloutBatch& batch);
  virtual LossOutput rollout(const RolloutBatch& batch);
  virtual int rollout_epochs() const { return 1; }
};

}  // namespace prefengine
