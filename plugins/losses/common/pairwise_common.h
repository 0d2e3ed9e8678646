#pragma once
// Helpers shared by the pairwise loss plugins (header-only; each plugin library compiles its own
// copy, so no extra shared library is involved).
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <sstream>
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

// A finite number read through the typed getter; `inf` is rejected too.
inline double get_finite_double(PluginOptions& options, const std::string& key, double fallback,
                                double min, bool min_exclusive = false,
                                double max = std::numeric_limits<double>::infinity()) {
  const double v = options.get_double(key, fallback, min, max, min_exclusive);
  if (!std::isfinite(v)) {
    std::ostringstream expected;
    expected << (min_exclusive ? "a finite number > " : "a finite number >= ") << min;
    options.fail(key, expected.str(), options.entries().at(key).scalar);
  }
  return v;
}

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
