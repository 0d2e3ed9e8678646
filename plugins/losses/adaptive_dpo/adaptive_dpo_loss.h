#pragma once
// Flex-beta DPO whose beta_rejected is not fixed but steered, step by step, by a controller that
// watches how far the rejected log-probability has fallen below the reference (docs/algorithms.md,
// "Adaptive beta_rejected"). The 3D-properties paper's remedy lowers beta_rejected by hand to slow
// the rejected side's collapse; here the loss lowers it only when, and as much as, the measured
// drop says it must.
#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

#include <string>

namespace prefengine::plugins::losses {

struct AdaptiveDpoOptions {
  std::string control = "level";     // "level" (the rejected drop) or "ratio" (Corollary 1's gradient ratio)
  double beta_chosen = 0.1;           // beta_w on h_w, fixed; > 0
  double beta_rejected = 0.1;         // beta_l at the start; in [beta_min, beta_max]
  double beta_min = 0.001;            // lower bound of beta_l; > 0
  double beta_max = 0.1;              // upper bound of beta_l; >= beta_min
  double target_rejected_drop = 1.0;  // nats per token below the reference the controller holds; >= 0
  double gain = 0.01;                 // per step and per nat of error, in log(beta_l); >= 0 (level)
  double target_ratio_log10 = 1.0;    // log10 |dL/dpi_l| / |dL/dpi_w| to hold (ratio): grad/ratio_log10
  double ema = 0.9;                   // weight of the old value in the measurement's EMA; [0, 1)
};

// Per pair: z = beta_w*h_w - beta_l*h_l, L = -log sigma(z); the loss is the batch mean. After each
// optimizer step (on_step), with control "level":
//   d     = -(rejected_logps - ref_rejected_logps) / rejected_tokens   (the step's measured drop)
//   m     = d on the first step, else ema*m + (1 - ema)*d
//   beta_l = clip(beta_l * exp(-gain * (m - target_rejected_drop)), beta_min, beta_max)
// with control "ratio" (Corollary 1: |dL/dpi_l| / |dL/dpi_w| = (beta_l/beta_w) * pi_w/pi_l):
//   g     = chosen_logps - rejected_logps     (the step's mean log(pi_w/pi_l) over its pairs, in nats)
//   m     = g on the first step, else ema*m + (1 - ema)*g
//   beta_l = clip(beta_w * 10^target_ratio_log10 * exp(-m), beta_min, beta_max)
class AdaptiveDpoLoss : public PairwiseLoss, public PairwiseGradient {
 public:
  explicit AdaptiveDpoLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput pairwise(const PairwiseBatch& batch) override;
  // The same loss with its closed-form gradient (no autograd): the engine's direct step.
  LossOutput pairwise_with_gradient(const PairwiseBatch& batch, const at::Tensor& grad_output,
                                    at::Tensor& grad_chosen, at::Tensor& grad_rejected) override;

  NamedTensors state() const override;
  void load_state(const NamedTensors& state) override;
  bool wants_step_feedback() const override { return true; }
  void on_step(const StepFeedback& feedback) override;

  const AdaptiveDpoOptions& options() const { return options_; }
  double beta_chosen() const { return options_.beta_chosen; }
  double beta_rejected() const { return beta_rejected_; }
  // The smoothed measurement m (NaN before the first measured step): the drop under control
  // "level", the log ratio log(pi_w/pi_l) of whole responses under "ratio".
  double smoothed_drop() const { return smoothed_drop_; }
  int64_t measured_steps() const { return measured_steps_; }

 private:
  // pairwise() (grad_output null) or pairwise_with_gradient()
  LossOutput compute(const PairwiseBatch& batch, const at::Tensor* grad_output, at::Tensor* grad_chosen,
                     at::Tensor* grad_rejected);
  AdaptiveDpoOptions options_;
  double beta_rejected_;
  double smoothed_drop_;
  int64_t measured_steps_ = 0;
};

}  // namespace prefengine::plugins::losses
