#pragma once
// Identity Preference Optimisation (Azar et al. 2024): a squared loss that pulls the per-token
// log-ratio margin to 1/(2 tau) instead of pushing it to infinity.
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct IpoOptions {
  double tau = 0.1;  // regularisation strength; > 0; the target margin is 1/(2 tau)
};

// Per pair, with log-probs averaged per token (logp/|y|, not summed):
// h = logp_theta/|y| - logp_ref/|y|, L = (h_w - h_l - 1/(2 tau))^2. The loss is the batch mean.
class IpoLoss : public PairwiseLoss {
 public:
  explicit IpoLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

  const IpoOptions& options() const { return options_; }

 private:
  IpoOptions options_;
};

}  // namespace prefengine::plugins::losses
