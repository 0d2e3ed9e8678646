#pragma once
// Helpers shared by the transformer plugin's tests: random non-trivial weights, and the weights
// as doubles for the tests' own reference forwards.
#include <cstdint>
#include <map>
#include <string>

#include <ATen/ATen.h>

#include "transformer.h"

namespace prefengine::testing {

// Gives every parameter (norm gains and biases included) a random non-trivial value: norm gains
// uniform in [0.5, 1.5], everything else normal with standard deviation `sd`.
inline void randomize(plugins::model::TransformerModel& model, uint64_t seed, double sd = 0.3) {
  at::manual_seed(seed);
  at::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    if (p.key().find("norm") != std::string::npos) {
      p.value().uniform_(0.5, 1.5);
    } else {
      p.value().normal_(0.0, sd);
    }
  }
}

// Every parameter by name, as a double copy.
inline std::map<std::string, at::Tensor> weights_of(const plugins::model::TransformerModel& model) {
  std::map<std::string, at::Tensor> w;
  for (const auto& p : model.named_parameters()) w[p.key()] = p.value().detach().to(at::kDouble);
  return w;
}

}  // namespace prefengine::testing
