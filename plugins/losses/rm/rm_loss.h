#pragma once
// Bradley-Terry reward-model training on the model's scalar head (the first stage of RLHF-PPO).
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct RmOptions {
  double margin = 0.0;                      // m: required reward gap r_w - r_l; >= 0
  double center_rewards_coefficient = 0.0;  // c: weight of mean((r_w + r_l)^2); >= 0 (0 = off)
};

// L = mean_pairs(-log sigma(r_w - r_l - m)) + c * mean_pairs((r_w + r_l)^2), on the scalar head's
// rewards; needs neither policy nor reference log-probs.
class RmLoss : public PairwiseLoss {
 public:
  explicit RmLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

  const RmOptions& options() const { return options_; }

 private:
  RmOptions options_;
};

}  // namespace prefengine::plugins::losses
