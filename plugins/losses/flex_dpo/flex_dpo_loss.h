#pragma once
// DPO with separate inverse temperatures for the chosen and the rejected log-ratio ("flex-beta",
// the 3D-properties paper's remedy: keep beta_chosen, lower beta_rejected).
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct FlexDpoOptions {
  double beta_chosen = 0.1;    // beta_w on the chosen log-ratio h_w; > 0
  double beta_rejected = 0.1;  // beta_l on the rejected log-ratio h_l; > 0 (equal betas = DPO)
};

// Per pair: z = beta_w*h_w - beta_l*h_l, L = -log sigma(z); the loss is the batch mean.
class FlexDpoLoss : public PairwiseLoss {
 public:
  explicit FlexDpoLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

  const FlexDpoOptions& options() const { return options_; }

 private:
  FlexDpoOptions options_;
};

}  // namespace prefengine::plugins::losses
