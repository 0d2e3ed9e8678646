#pragma once
// Parameters and gradients as views into one flat buffer each, updated by one fused optimizer
// step on the whole buffer. Small models are bound by per-op overhead, so one Adam step over one
// buffer beats a step per parameter tensor; the flat gradient is also the all-reduce bucket.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/config/experiment_config.h"

namespace torch::nn {
class Module;
}

namespace prefengine {

class FlatParameters {
 public:
  // Rebinds every parameter of `module` that requires grad as a view into one buffer, and its
  // gradient as a view into another. The module keeps working as before.
  explicit FlatParameters(torch::nn::Module& module);

  at::Tensor& values() { return values_; }
  at::Tensor& grads() { return grads_; }
  int64_t numel() const { return values_.numel(); }
  void zero_grad() { grads_.zero_(); }

 private:
  at::Tensor values_;
  at::Tensor grads_;
};

// Whether every element of `t` is finite (no Inf, no NaN). A contiguous CPU fp32 tensor (the flat
// gradient, checked every update) is tested by one integer pass over the exponent bits, with no
// ATen operator; others by a reduction in double. The same answer either way: a double sum of
// finite fp32 values cannot overflow, so it is non-finite exactly when an element is.
bool all_finite(const at::Tensor& t);

class FlatOptimizer {
 public:
  FlatOptimizer(FlatParameters& parameters, const OptimizerOptions& options, int64_t total_steps);

  // Clips (when asked), applies the update for this step and returns the gradient norm before
  // clipping; without clipping the norm is computed only when `need_norm` (NaN otherwise).
  double step(bool need_norm = true);
  // Whether every parameter was finite after the last step (checked within the update's own pass).
  bool parameters_finite() const { return parameters_finite_; }
  double current_lr() const;
  int64_t steps_taken() const { return step_; }

  // State for checkpoints: moments and the step count.
  std::vector<std::pair<std::string, at::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, at::Tensor>>& state);

 private:
  FlatParameters& parameters_;
  OptimizerOptions options_;
  int64_t total_steps_;
  int64_t step_ = 0;
  bool parameters_finite_ = true;
  at::Tensor first_moment_;   // Adam m, or the SGD momentum buffer
  at::Tensor second_moment_;  // Adam v
};

}  // namespace prefengine
