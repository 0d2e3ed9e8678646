#include "slic_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

SlicLoss::SlicLoss(PluginOptions& options) {
  options_.delta = options.get_double("delta", 1.0, /*min=*/0.0, kMaxOption);
  options_.lambda = options.get_double("lambda", 0.1, /*min=*/0.0, kMaxOption);
}

LossRequirements SlicLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = false;  // SLiC has no reference model: the engine builds none
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput SlicLoss::pairwise(const PairwiseBatch& batch) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "slic");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "slic");
  const at::Tensor& logp_w = batch.chosen_logps;
  const at::Tensor& logp_l = batch.rejected_logps;
  // relu's gradient at the kink is 0: a hinge met exactly exerts no pull.
  const at::Tensor hinge = at::relu(options_.delta - logp_w + logp_l);

  LossOutput out;
  out.loss = (hinge - options_.lambda * logp_w).mean();
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  // Without a reference the implicit reward is the policy log-prob itself.
  out.metrics = reward_metrics(logp_w, logp_l);
  out.metrics.emplace_back("slic/hinge_active",
                           hinge.detach().gt(0).to(logp_w.scalar_type()).mean());
  return out;
}

}  // namespace prefengine::plugins::losses
