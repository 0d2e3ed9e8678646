#include "engine/train/flat_optimizer.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <ATen/Parallel.h>
#include <torch/nn/module.h>

namespace prefengine {

FlatParameters::FlatParameters(torch::nn::Module& module) {
  std::vector<at::Tensor> params;
  int64_t total = 0;
  for (auto& p : module.parameters(/*recurse=*/true)) {
    if (!p.requires_grad()) continue;
    params.push_back(p);
    total += p.numel();
  }
  at::TensorOptions options = at::TensorOptions().dtype(at::kFloat);
  if (!params.empty()) options = options.device(params.front().device());
  values_ = at::empty({total}, options);
  grads_ = at::zeros({total}, options);
  int64_t offset = 0;
  for (auto& p : params) {
    if (p.scalar_type() != at::kFloat) {
      throw std::invalid_argument("the optimizer needs fp32 parameters");
    }
    const int64_t n = p.numel();
    at::Tensor value_view = values_.narrow(0, offset, n).view(p.sizes());
    {
      at::NoGradGuard no_grad;
      value_view.copy_(p.detach());
    }
    p.set_data(value_view);
    p.mutable_grad() = grads_.narrow(0, offset, n).view(p.sizes());
    offset += n;
  }
}

bool all_finite(const at::Tensor& t) {
  if (t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous()) {
    const float* v = t.data_ptr<float>();
    const int64_t n = t.numel();
    uint32_t non_finite = 0;  // an all-ones exponent marks Inf or NaN (an integer OR: vectorisable)
    for (int64_t i = 0; i < n; ++i) {
      uint32_t bits;
      std::memcpy(&bits, &v[i], sizeof bits);
      non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    return non_finite == 0;
  }
  return std::isfinite(t.sum(at::kDouble).item<double>());
}

FlatOptimizer::FlatOptimizer(FlatParameters& parameters, const OptimizerOptions& options,
                             int64_t total_steps)
    : parameters_(parameters), options_(options), total_steps_(total_steps) {
  // warmup_ratio (TRL's): ceil(ratio * updates), as transformers' get_warmup_steps.
  if (options_.warmup_ratio > 0) {
    options_.warmup_steps = static_cast<int64_t>(std::ceil(options_.warmup_ratio * static_cast<double>(total_steps)));
  }
  first_moment_ = at::zeros_like(parameters_.values());
  if (options_.name != "sgd") second_moment_ = at::zeros_like(parameters_.values());
}

double FlatOptimizer::current_lr() const {
  const double base = options_.lr;
  const int64_t step = step_ + 1;  // the step about to be taken
  if (options_.warmup_steps > 0 && step <= options_.warmup_steps) {
    return base * static_cast<double>(step) / static_cast<double>(options_.warmup_steps);
  }
  if (options_.schedule == "constant" || total_steps_ <= options_.warmup_steps) return base;
  const double progress = static_cast<double>(step - options_.warmup_steps) /
                          static_cast<double>(total_steps_ - options_.warmup_steps);
  if (options_.schedule == "linear") return base * std::max(0.0, 1.0 - progress);
  return base * 0.5 * (1.0 + std::cos(M_PI * std::min(1.0, progress)));
}

double FlatOptimizer::step(bool need_norm) {
  at::NoGradGuard no_grad;
  at::Tensor& p = parameters_.values();
  at::Tensor& g = parameters_.grads();
  const double norm = need_norm || options_.grad_clip > 0 ? g.norm().item<double>()
                                                          : std::numeric_limits<double>::quiet_NaN();
  if (options_.grad_clip > 0 && norm > options_.grad_clip) g.mul_(options_.grad_clip / (norm + 1e-12));
  const double lr = current_lr();
  ++step_;
  if (options_.name == "sgd") {
    if (options_.weight_decay > 0) g.add_(p, options_.weight_decay);
    if (options_.momentum > 0) {
      first_moment_.mul_(options_.momentum).add_(g);
      p.add_(first_moment_, -lr);
    } else {
      p.add_(g, -lr);
    }
    parameters_finite_ = std::isfinite(p.sum(at::kDouble).item<double>());
    return norm;
  }
  // Adam / AdamW as one pass over the flat buffers (the same formulas as eight whole-buffer ATen
  // operations, without their seven extra passes over memory and their dispatch cost).
  const bool decoupled = options_.name == "adamw";
  const float decay = static_cast<float>(options_.weight_decay);
  const float shrink = static_cast<float>(1.0 - lr * options_.weight_decay);
  const float b1 = static_cast<float>(options_.beta1);
  const float b2 = static_cast<float>(options_.beta2);
  const float one_minus_b1 = static_cast<float>(1.0 - options_.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - options_.beta2);
  const float inv_root_c2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(options_.beta2, static_cast<double>(step_))));
  const float eps = static_cast<float>(options_.eps);
  const float step_size = static_cast<float>(-lr / (1.0 - std::pow(options_.beta1, static_cast<double>(step_))));
  float* pv = p.data_ptr<float>();
  float* gv = g.data_ptr<float>();
  float* mv = first_moment_.data_ptr<float>();
  float* vv = second_moment_.data_ptr<float>();
  const bool with_decay = options_.weight_decay > 0;
  std::atomic<bool> finite{true};
  at::parallel_for(0, p.numel(), int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    uint32_t non_finite = 0;  // an all-ones exponent marks Inf or NaN (an integer OR: vectorisable)
    for (int64_t i = begin; i < end; ++i) {
      float grad = gv[i];
      float value = pv[i];
      if (with_decay) {
        if (decoupled) value *= shrink;
        else grad += decay * value;
      }
      const float m = b1 * mv[i] + one_minus_b1 * grad;
      const float v = b2 * vv[i] + one_minus_b2 * grad * grad;
      mv[i] = m;
      vv[i] = v;
      const float updated = value + step_size * (m / (std::sqrt(v) * inv_root_c2 + eps));
      pv[i] = updated;
      uint32_t bits;
      std::memcpy(&bits, &updated, sizeof bits);
      non_finite |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (non_finite != 0) finite.store(false, std::memory_order_relaxed);
  });
  parameters_finite_ = finite.load();
  return norm;
}

std::vector<std::pair<std::string, at::Tensor>> FlatOptimizer::state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  out.emplace_back("step", at::full({1}, step_, at::kLong));
  out.emplace_back("first_moment", first_moment_);
  if (second_moment_.defined()) out.emplace_back("second_moment", second_moment_);
  return out;
}

void FlatOptimizer::load_state(const std::vector<std::pair<std::string, at::Tensor>>& state) {
  at::NoGradGuard no_grad;
  for (const auto& [name, tensor] : state) {
    if (name == "step") {
      step_ = tensor.item<int64_t>();
    } else if (name == "first_moment") {
      first_moment_.copy_(tensor);
    } else if (name == "second_moment" && second_moment_.defined()) {
      second_moment_.copy_(tensor);
    }
  }
}

}  // namespace prefengine
