#pragma once
// DPO (Rafailov et al. 2023) with conservative label smoothing:
//   z = beta * (h_w - h_l),  L = -(1 - eps) log sigma(z) - eps log sigma(-z)
#include "prefengine/loss.h"

namespace prefengine::plugins::losses {

struct DpoOptions {
  double beta = 0.1;            // inverse temperature of the implicit reward, > 0
  double label_smoothing = 0;   // eps in [0, 0.5): probability that a label is flipped
  bool reference_free = false;  // true: h = policy log-prob (a uniform reference)
};

class DpoLoss : public Loss {
 public:
  explicit DpoLoss(PluginOptions& options);
  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

 private:
  DpoOptions options_;
};

}  // namespace prefengine::plugins::losses
