#include "dpo_sft_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

DpoSftLoss::DpoSftLoss(PluginOptions& options) {
  options_.beta = options.get_double("beta", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  options_.sft_weight = options.get_double("sft_weight", 1.0, /*min=*/0.0, kMaxOption);
}

LossRequirements DpoSftLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = true;
  r.policy_logps = true;
  r.token_logps = false;  // the mean token NLL is the summed logp over the (always set) length
  r.scalar_head = false;
  return r;
}

LossOutput DpoSftLoss::pairwise(const PairwiseBatch& batch) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "dpo_sft");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "dpo_sft");
  check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "dpo_sft");
  check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "dpo_sft");
  check_batch_tensor(batch.chosen_lengths, "chosen_lengths", n, "dpo_sft");
  if (batch.chosen_lengths.le(0).any().item<bool>()) {
    throw std::invalid_argument("dpo_sft loss: PairwiseBatch.chosen_lengths has an empty response");
  }
  const double beta = options_.beta;
  const at::Tensor reward_w = beta * (batch.chosen_logps - batch.ref_chosen_logps);
  const at::Tensor reward_l = beta * (batch.rejected_logps - batch.ref_rejected_logps);
  const at::Tensor dpo = -at::log_sigmoid(reward_w - reward_l);
  const at::Tensor nll = -batch.chosen_logps / batch.chosen_lengths;

  LossOutput out;
  out.loss = (dpo + options_.sft_weight * nll).mean();
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  out.metrics = reward_metrics(reward_w, reward_l);
  out.metrics.emplace_back("sft/nll", nll.detach().mean());
  return out;
}

}  // namespace prefengine::plugins::losses
