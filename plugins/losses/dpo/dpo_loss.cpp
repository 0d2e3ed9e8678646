#include "dpo_loss.h"

#include "../common/pairwise_common.h"

namespace prefengine::plugins::losses {

DpoLoss::DpoLoss(PluginOptions& options) {
  options_.beta = options.get_double("beta", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  options_.label_smoothing = options.get_double("label_smoothing", 0.0, /*min=*/0.0, /*max=*/0.5);
  options_.reference_free = options.get_bool("reference_free", false);
}

LossRequirements DpoLoss::requirements() const {
  LossRequirements r;
  r.pairwise = true;
  r.reference_logps = !options_.reference_free;
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput DpoLoss::pairwise(const PairwiseBatch& batch) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "dpo");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "dpo");
  at::Tensor h_w = batch.chosen_logps;
  at::Tensor h_l = batch.rejected_logps;
  if (!options_.reference_free) {
    check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "dpo");
    check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "dpo");
    h_w = h_w - batch.ref_chosen_logps;
    h_l = h_l - batch.ref_rejected_logps;
  }
  const double beta = options_.beta;
  const double eps = options_.label_smoothing;
  const at::Tensor z = beta * (h_w - h_l);
  // -log sigma(z) through log_sigmoid: finite for any finite z.
  at::Tensor per_pair = -at::log_sigmoid(z);
  if (eps > 0) per_pair = (1.0 - eps) * per_pair - eps * at::log_sigmoid(-z);

  LossOutput out;
  out.loss = per_pair.mean();
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  out.metrics = reward_metrics(beta * h_w, beta * h_l);
  return out;
}

}  // namespace prefengine::plugins::losses
