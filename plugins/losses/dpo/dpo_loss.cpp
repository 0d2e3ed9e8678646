#include "dpo_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

DpoLoss::DpoLoss(PluginOptions& options) {
  options_.beta = options.get_double("beta", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  options_.label_smoothing = options.get_double("label_smoothing", 0.0, /*min=*/0.0, /*max=*/0.5);
  options_.reference_free = options.get_bool("reference_free", false);
}

LossRequirements DpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = !options_.reference_free;
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput DpoLoss::pairwise(const PairwiseBatch& batch) {
  return compute(batch, nullptr, nullptr, nullptr);
}

LossOutput DpoLoss::pairwise_with_gradient(const PairwiseBatch& batch,
                                           const at::Tensor& grad_output, at::Tensor& grad_chosen,
                                           at::Tensor& grad_rejected) {
  return compute(batch, &grad_output, &grad_chosen, &grad_rejected);
}

LossOutput DpoLoss::compute(const PairwiseBatch& batch, const at::Tensor* grad_output,
                            at::Tensor* grad_chosen, at::Tensor* grad_rejected) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "dpo");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "dpo");
  at::Tensor ref_w, ref_l;
  if (!options_.reference_free) {
    check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "dpo");
    check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "dpo");
    ref_w = batch.ref_chosen_logps;
    ref_l = batch.ref_rejected_logps;
  }
  const double beta = options_.beta;
  // -log sigma(beta (h_w - h_l)) (cDPO: label smoothing), h = logp - ref_logp, in one autograd node
  // with its closed-form gradient; log_sigmoid keeps it finite for any finite margin.
  LossOutput out;
  if (grad_output == nullptr) {
    out.loss = sigmoid_pair_loss(batch.chosen_logps, batch.rejected_logps, ref_w, ref_l, beta, beta,
                                 options_.label_smoothing);
  } else {  // the same value with its closed-form gradient (the engine's direct step)
    out.loss = sigmoid_pair_loss_with_gradient(batch.chosen_logps, batch.rejected_logps, ref_w,
                                               ref_l, beta, beta, options_.label_smoothing,
                                               *grad_output, *grad_chosen, *grad_rejected);
  }
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  const at::Tensor h_w = ref_w.defined() ? batch.chosen_logps - ref_w : batch.chosen_logps;
  const at::Tensor h_l = ref_l.defined() ? batch.rejected_logps - ref_l : batch.rejected_logps;
  out.metrics = reward_metrics(beta * h_w, beta * h_l);
  return out;
}

}  // namespace prefengine::plugins::losses
