#pragma once
// Robust DPO (Chowdhury et al. 2024, "Provably Robust DPO"): DPO made unbiased under preference
// labels that are flipped with a known rate eps.
#include <prefengine/pairwise_loss.h>
#include <prefengine/plugin_options.h>

namespace example {

// Per pair: z = beta*(h_w - h_l), h = logp_theta - logp_ref,
//   L = ((1 - eps)*(-log sigma(z)) - eps*(-log sigma(-z))) / (1 - 2 eps).
// eps = 0 is DPO. The loss is the batch mean.
class RobustDpoLoss : public prefengine::PairwiseLoss {
 public:
  // Reads the options `beta` (> 0, default 0.1) and `label_noise` (eps in [0, 0.5), default 0.1).
  explicit RobustDpoLoss(prefengine::PluginOptions& options);

  prefengine::LossRequirements requirements() const override;
  prefengine::LossOutput pairwise(const prefengine::PairwiseBatch& batch) override;

 private:
  double beta_ = 0.1;         // inverse temperature on the log-ratio margin; > 0
  double label_noise_ = 0.1;  // eps: rate of flipped labels in the data, in [0, 0.5)
};

}  // namespace example
