#include "dpo_loss.h"

namespace prefengine::plugins::losses {

DpoLoss::DpoLoss(PluginOptions& options) {
  options_.beta = options.get_double("beta", options_.beta, 0, 1e6, /*min_exclusive=*/true);
  options_.label_smoothing = options.get_double("label_smoothing", 0, 0, 0.5);
  options_.reference_free = options.get_bool("reference_free", false);
}

LossRequirements DpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = !options_.reference_free;
  return r;
}

LossOutput DpoLoss::pairwise(const PairwiseBatch& batch) {
  at::Tensor h_w = batch.chosen_logps;
  at::Tensor h_l = batch.rejected_logps;
  if (!options_.reference_free) {
    h_w = h_w - batch.ref_chosen_logps;
    h_l = h_l - batch.ref_rejected_logps;
  }
  const double beta = options_.beta;
  const double eps = options_.label_smoothing;
  at::Tensor z = beta * (h_w - h_l);
  at::Tensor losses = eps == 0 ? -at::log_sigmoid(z)
                               : -(1 - eps) * at::log_sigmoid(z) - eps * at::log_sigmoid(-z);
  LossOutput out;
  out.loss = losses.mean();
  if (!batch.want_metrics) return out;
  at::Tensor chosen_rewards = (beta * h_w).detach();
  at::Tensor rejected_rewards = (beta * h_l).detach();
  out.metrics = {{"rewards/chosen", chosen_rewards.mean()},
                 {"rewards/rejected", rejected_rewards.mean()},
                 {"rewards/margins", (chosen_rewards - rejected_rewards).mean()},
                 {"rewards/accuracies", (chosen_rewards > rejected_rewards).to(at::kFloat).mean()}};
  return out;
}

}  // namespace prefengine::plugins::losses
