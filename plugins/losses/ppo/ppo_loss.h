#pragma once
// RLHF-PPO (Schulman et al. 2017; Ouyang et al. 2022), as in docs/algorithms.md:
//   r_t = -kl_coef * (logp_old(a_t) - logp_ref(a_t)), plus the sequence score at the last token
//   delta_t = r_t + gamma*V_{t+1} - V_t,  A_t = sum_k (gamma*lam)^k delta_{t+k},  R_t = A_t + V_t
//   A whitened over the response tokens of the batch (when `whiten`)
//   rho = exp(logp - logp_old)
//   L_pg = mean(max(-A*rho, -A*clip(rho, 1-eps, 1+eps)))
//   L_vf = 0.5*mean(max((V-R)^2, (clip(V, V_old-eps_v, V_old+eps_v) - R)^2))
//   L = L_pg + vf_coef * L_vf          (means over response tokens)
#include "prefengine/rollout_loss.h"

namespace prefengine::plugins::losses {

struct PpoOptions {
  double kl_coef = 0.05;          // per-token KL penalty weight, >= 0
  double cliprange = 0.2;         // eps of the ratio clip, > 0
  double cliprange_value = 0.2;   // eps_v of the value clip around the rollout value, > 0
  double vf_coef = 0.1;           // weight of the value loss, >= 0
  double gamma = 1.0;             // discount in [0, 1]
  double lam = 0.95;              // GAE lambda in [0, 1]
  int64_t ppo_epochs = 4;         // optimisation passes over each rollout batch, >= 1
  bool whiten = true;             // whiten the advantages over the batch's response tokens
};

class PpoLoss : public RolloutLoss {
 public:
  explicit PpoLoss(PluginOptions& options);
  explicit PpoLoss(const PpoOptions& options) : options_(options) {}
  LossRequirements requirements() const override;
  void prepare_rollout(RolloutBatch& batch) override;
  LossOutput rollout(const RolloutBatch& batch) override;
  int rollout_epochs() const override { return static_cast<int>(options_.ppo_epochs); }

  const PpoOptions& options() const { return options_; }

 private:
  PpoOptions options_;
};

}  // namespace prefengine::plugins::losses
