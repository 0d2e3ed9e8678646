#include "ipo_loss.h"

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

IpoLoss::IpoLoss(PluginOptions& options) {
  options_.tau = options.get_double("tau", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
}

LossRequirements IpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = true;
  r.policy_logps = true;
  r.token_logps = false;  // per-token means are the sums over the (always set) lengths
  r.scalar_head = false;
  return r;
}

LossOutput IpoLoss::pairwise(const PairwiseBatch& batch) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "ipo");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "ipo");
  check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "ipo");
  check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "ipo");
  check_batch_tensor(batch.chosen_lengths, "chosen_lengths", n, "ipo");
  check_batch_tensor(batch.rejected_lengths, "rejected_lengths", n, "ipo");
  if (batch.chosen_lengths.le(0).any().item<bool>() ||
      batch.rejected_lengths.le(0).any().item<bool>()) {
    throw std::invalid_argument("ipo loss: PairwiseBatch lengths must be > 0 (an empty response)");
  }
  const at::Tensor h_w = (batch.chosen_logps - batch.ref_chosen_logps) / batch.chosen_lengths;
  const at::Tensor h_l = (batch.rejected_logps - batch.ref_rejected_logps) / batch.rejected_lengths;
  const at::Tensor gap = h_w - h_l - 1.0 / (2.0 * options_.tau);

  LossOutput out;
  out.loss = (gap * gap).mean();
  if (!batch.want_metrics) return out;  // a step whose metrics are not logged
  // TRL's IPO reports beta*h with beta = tau on the per-token log-ratios.
  out.metrics = reward_metrics(options_.tau * h_w, options_.tau * h_l);
  return out;
}

}  // namespace prefengine::plugins::losses
