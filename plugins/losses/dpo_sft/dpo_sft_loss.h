#pragma once
// DPO plus an SFT term on the chosen response (RPO-style): the NLL keeps pushing the chosen
// response up after the DPO term has saturated.
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct DpoSftOptions {
  double beta = 0.1;        // DPO inverse temperature; > 0
  double sft_weight = 1.0;  // lambda, weight of the chosen response's NLL; >= 0 (0 = plain DPO)
};

// Per pair: L = -log sigma(beta*(h_w - h_l)) + lambda * NLL_w, where NLL_w = -logp(y_w|x) / |y_w|
// is the mean token negative log-likelihood of the chosen response. The loss is the batch mean.
class DpoSftLoss : public PairwiseLoss {
 public:
  explicit DpoSftLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;

  const DpoSftOptions& options() const { return options_; }

 private:
  DpoSftOptions options_;
};

}  // namespace prefengine::plugins::losses
