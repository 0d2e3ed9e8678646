#pragma once
// Helpers shared by the pairwise loss plugins (header-only; each plugin library compiles its own
// copy, so no extra shared library is involved).
#include <ATen/ATen.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "prefengine/loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::losses {

// Throws std::invalid_argument unless `tensor` is defined and one-dimensional with `batch`
// entries (batch < 0: any size, returned). `name` is the PairwiseBatch field, `loss` the plugin.
inline int64_t check_batch_tensor(const at::Tensor& tensor, const char* name, int64_t batch,
                                  const char* loss) {
  if (!tensor.defined()) {
    throw std::invalid_argument(
        std::string(loss) + " loss: PairwiseBatch." + name +
        " is not set (the engine did not compute what requirements() asks)");
  }
  if (tensor.dim() != 1 || (batch >= 0 && tensor.size(0) != batch)) {
    throw std::invalid_argument(std::string(loss) + " loss: PairwiseBatch." + name +
                                " must have shape [" + (batch >= 0 ? std::to_string(batch) : "B") +
                                "], got " + std::to_string(tensor.dim()) + "-d tensor with " +
                                std::to_string(tensor.numel()) + " entries");
  }
  return tensor.size(0);
}

// Upper bound of every numeric loss option: large enough for any sensible setting, and it keeps
// `inf` out (the getters' default bound of infinity would accept it). The same bound as the
// engine's first dpo, so error messages read alike: "expected a number in (0, 1e+06]".
inline constexpr double kMaxOption = 1e6;

// The peers' (TRL) reward metrics from the implicit rewards of a batch: rewards/chosen,
// rewards/rejected (batch means), rewards/margins (mean of chosen - rejected) and
// rewards/accuracies (fraction of pairs with chosen > rejected). Inputs need not be detached.
inline std::vector<Metric> reward_metrics(const at::Tensor& chosen_rewards,
                                          const at::Tensor& rejected_rewards) {
  const at::Tensor chosen = chosen_rewards.detach();
  const at::Tensor rejected = rejected_rewards.detach();
  std::vector<Metric> metrics;
  metrics.emplace_back("rewards/chosen", chosen.mean());
  metrics.emplace_back("rewards/rejected", rejected.mean());
  metrics.emplace_back("rewards/margins", (chosen - rejected).mean());
  metrics.emplace_back("rewards/accuracies", chosen.gt(rejected).to(chosen.scalar_type()).mean());
  return metrics;
}

}  // namespace prefengine::plugins::losses
