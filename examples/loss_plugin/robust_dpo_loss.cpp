#include "robust_dpo_loss.h"

#include <prefengine/pairwise_common.h>  // SDK helpers: batch checks, kMaxOption, reward metrics

namespace example {

RobustDpoLoss::RobustDpoLoss(prefengine::PluginOptions& options) {
  // The typed getters check the type and the range and throw std::invalid_argument naming the
  // config file, line, column and key. Read every key you accept: the engine rejects the rest.
  beta_ = options.get_double("beta", 0.1, /*min=*/0.0, prefengine::kMaxOption,
                            /*min_exclusive=*/true);
  label_noise_ = options.get_double("label_noise", 0.1, /*min=*/0.0, /*max=*/0.5);
  if (label_noise_ == 0.5) {
    options.fail("label_noise", "a number in [0, 0.5)", "0.5 (the loss divides by 1 - 2*eps)");
  }
}

prefengine::LossRequirements RobustDpoLoss::requirements() const {
  prefengine::LossRequirements r;  // defaults: pairs, policy and reference summed log-probs
  r.reference_logps = true;
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

prefengine::LossOutput RobustDpoLoss::pairwise(const prefengine::PairwiseBatch& batch) {
  // Each throws std::invalid_argument naming the field when it is unset or not [B].
  const int64_t n = prefengine::check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "robust_dpo");
  prefengine::check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "robust_dpo");
  prefengine::check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "robust_dpo");
  prefengine::check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "robust_dpo");
  const at::Tensor reward_w = beta_ * (batch.chosen_logps - batch.ref_chosen_logps);
  const at::Tensor reward_l = beta_ * (batch.rejected_logps - batch.ref_rejected_logps);
  const at::Tensor z = reward_w - reward_l;
  // log_sigmoid is finite for every finite z; log(sigmoid(z)) is not.
  const double eps = label_noise_;
  const at::Tensor per_pair =
      ((1.0 - eps) * -at::log_sigmoid(z) + eps * at::log_sigmoid(-z)) / (1.0 - 2.0 * eps);

  prefengine::LossOutput out;
  out.loss = per_pair.mean();
  if (!batch.want_metrics) return out;  // the engine will not log this step's metrics
  // Metrics are detached scalars; the engine averages them over a log step and adds loss,
  // logps/*, probs/* and grad/* itself. These are TRL's rewards/{chosen,rejected,margins,accuracies}.
  out.metrics = prefengine::reward_metrics(reward_w, reward_l);
  return out;
}

}  // namespace example

// The three exported symbols: ABI version, name/kind/description, and the factory.
PREFENGINE_PLUGIN("robust_dpo", prefengine::PluginKind::kLoss, example::RobustDpoLoss,
                  "robust DPO: DPO unbiased under a known label-flip rate (label_noise)")
