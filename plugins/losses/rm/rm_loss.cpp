#include "rm_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

RmLoss::RmLoss(PluginOptions& options) {
  options_.margin = options.get_double("margin", 0.0, /*min=*/0.0, kMaxOption);
  options_.center_rewards_coefficient =
      options.get_double("center_rewards_coefficient", 0.0, /*min=*/0.0, kMaxOption);
}

LossRequirements RmLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = false;
  r.policy_logps = false;
  r.token_logps = false;
  r.scalar_head = true;
  return r;
}

LossOutput RmLoss::pairwise(const PairwiseBatch& batch) {
  const int64_t n = check_batch_tensor(batch.chosen_rewards, "chosen_rewards", -1, "rm");
  check_batch_tensor(batch.rejected_rewards, "rejected_rewards", n, "rm");
  const at::Tensor& r_w = batch.chosen_rewards;
  const at::Tensor& r_l = batch.rejected_rewards;
  at::Tensor loss = (-at::log_sigmoid(r_w - r_l - options_.margin)).mean();
  if (options_.center_rewards_coefficient > 0) {
    const at::Tensor sum = r_w + r_l;
    loss = loss + options_.center_rewards_coefficient * (sum * sum).mean();
  }

  LossOutput out;
  out.loss = loss;
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  out.metrics = reward_metrics(r_w, r_l);
  const at::Tensor all = at::cat({r_w.detach(), r_l.detach()});
  out.metrics.emplace_back("rewards/mean", all.mean());
  // Population std over the 2B rewards (no Bessel correction: defined for any batch size).
  out.metrics.emplace_back("rewards/std", all.std(/*unbiased=*/false));
  return out;
}

}  // namespace prefengine::plugins::losses
