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
class FlexDpoLoss : public PairwiseLoss, public PairwiseGradient {
 public:
  explicit FlexDpoLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;
  // The same loss with its closed-form gradient (no autograd): the engine's direct step.
  LossOutput pairwise_with_gradient(const PairwiseBatch& batch, const at::Tensor& grad_output,
                                    at::Tensor& grad_chosen, at::Tensor& grad_rejected) override;

  const FlexDpoOptions& options() const { return options_; }

 private:
  // pairwise() (grad_output null) or pairwise_with_gradient()
  LossOutput compute(const PairwiseBatch& batch, const at::Tensor* grad_output, at::Tensor* grad_chosen,
                     at::Tensor* grad_rejected);
  FlexDpoOptions options_;
};

}  // namespace prefengine::plugins::losses
