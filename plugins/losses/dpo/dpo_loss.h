#pragma once
// Direct Preference Optimisation (Rafailov et al. 2023), with conservative DPO's label smoothing
// and an optional reference-free form.
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

struct DpoOptions {
  double beta = 0.1;             // inverse temperature on the log-ratio margin; > 0
  double label_smoothing = 0.0;  // eps: assumed rate of flipped labels (cDPO), in [0, 0.5]; 0 = DPO
  bool reference_free = false;   // true: h = policy logp, no reference model is computed
};

// Per pair: z = beta*(h_w - h_l), L = -(1-eps)*log sigma(z) - eps*log sigma(-z), with
// h = logp_theta - logp_ref (or logp_theta when reference_free). The loss is the batch mean.
class DpoLoss : public PairwiseLoss, public PairwiseGradient {
 public:
  explicit DpoLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;
  // The same loss with its closed-form gradient (no autograd): the engine's direct step.
  LossOutput pairwise_with_gradient(const PairwiseBatch& batch, const at::Tensor& grad_output,
                                    at::Tensor& grad_chosen, at::Tensor& grad_rejected) override;

  const DpoOptions& options() const { return options_; }

 private:
  // pairwise() (grad_output null) or pairwise_with_gradient()
  LossOutput compute(const PairwiseBatch& batch, const at::Tensor* grad_output, at::Tensor* grad_chosen,
                     at::Tensor* grad_rejected);
  DpoOptions options_;
};

}  // namespace prefengine::plugins::losses
