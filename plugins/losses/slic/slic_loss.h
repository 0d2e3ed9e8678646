#pragma once
// SLiC-HF (Zhao et al. 2023): a calibration hinge on the policy's own log-probs plus a
// likelihood term on the chosen response. No reference model.
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct SlicOptions {
  double delta = 1.0;   // hinge margin on logp(y_w|x) - logp(y_l|x), in nats; >= 0
  double lambda = 0.1;  // weight of the -logp(y_w|x) regulariser; >= 0 (0 = hinge only)
};

// Per pair: L = max(0, delta - logp_w + logp_l) - lambda * logp_w, with summed policy log-probs;
// the loss is the batch mean.
class SlicLoss : public PairwiseLoss {
 public:
  explicit SlicLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

  const SlicOptions& options() const { return options_; }

 private:
  SlicOptions options_;
};

}  // namespace prefengine::plugins::losses
