#include "flex_dpo_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

FlexDpoLoss::FlexDpoLoss(PluginOptions& options) {
  options_.beta_chosen =
      options.get_double("beta_chosen", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  options_.beta_rejected =
      options.get_double("beta_rejected", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
}

LossRequirements FlexDpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = true;
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput FlexDpoLoss::pairwise(const PairwiseBatch& batch) {
  return compute(batch, nullptr, nullptr, nullptr);
}

LossOutput FlexDpoLoss::pairwise_with_gradient(const PairwiseBatch& batch,
                                               const at::Tensor& grad_output,
                                               at::Tensor& grad_chosen, at::Tensor& grad_rejected) {
  return compute(batch, &grad_output, &grad_chosen, &grad_rejected);
}

LossOutput FlexDpoLoss::compute(const PairwiseBatch& batch, const at::Tensor* grad_output,
                                at::Tensor* grad_chosen, at::Tensor* grad_rejected) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "flex_dpo");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "flex_dpo");
  check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "flex_dpo");
  check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "flex_dpo");
  // -log sigma(beta_w h_w - beta_l h_l) in one autograd node with its closed-form gradient
  LossOutput out;
  if (grad_output == nullptr) {
    out.loss = sigmoid_pair_loss(batch.chosen_logps, batch.rejected_logps, batch.ref_chosen_logps,
                                 batch.ref_rejected_logps, options_.beta_chosen,
                                 options_.beta_rejected, 0.0);
  } else {  // the same value with its closed-form gradient (the engine's direct step)
    out.loss = sigmoid_pair_loss_with_gradient(batch.chosen_logps, batch.rejected_logps,
                                               batch.ref_chosen_logps, batch.ref_rejected_logps,
                                               options_.beta_chosen, options_.beta_rejected, 0.0,
                                               *grad_output, *grad_chosen, *grad_rejected);
  }
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  const at::Tensor reward_w = options_.beta_chosen * (batch.chosen_logps - batch.ref_chosen_logps);
  const at::Tensor reward_l =
      options_.beta_rejected * (batch.rejected_logps - batch.ref_rejected_logps);
  out.metrics = reward_metrics(reward_w, reward_l);
  return out;
}

}  // namespace prefengine::plugins::losses
