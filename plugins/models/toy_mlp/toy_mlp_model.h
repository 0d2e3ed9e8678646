#pragma once
// The paper's toy model (section 3.2) as a sequence model. Token 0 of a row is a prompt id in
// [0, prompts); every later token is a response id in [0, responses). The input at position t is
// the one-hot prompt concatenated with the bag of response tokens up to t, so the logits at
// position 0 are the paper's MLP(one-hot prompt) -> categorical distribution over responses, and
// the scalar head at the last position sees both prompt and response (a reward r(x, y)).
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>

#include "prefengine/model.h"

namespace prefengine::plugins::models {

struct ToyMlpOptions {
  int64_t prompts = 4;     // number of prompts (one-hot inputs)
  int64_t responses = 10;  // number of responses: the output vocabulary
  int64_t hidden = 64;     // width of the hidden layers
  int64_t layers = 3;      // number of linear layers, >= 2 (the paper's MLP has 3)

  void validate() const;
};

// The toy's matrix products without the dispatcher (toy_mlp_model.cpp), exposed for the tests
// that hold them to ATen's bit for bit:
//   toy_linear(x, W, b)            = at::addmm(b, x, W.t())
//   toy_add_weight_grad(G, g, a):   G.addmm_(g.t(), a)
//   toy_input_grad(g, W)           = at::mm(g, W)
at::Tensor toy_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);
void toy_add_weight_grad(at::Tensor& grad, const at::Tensor& g, const at::Tensor& a);
at::Tensor toy_input_grad(const at::Tensor& g, const at::Tensor& weight);

class ToyMlpModel : public Model, public SingleTokenResponses, public DirectBackward {
 public:
  explicit ToyMlpModel(PluginOptions& options);
  explicit ToyMlpModel(const ToyMlpOptions& options);

  ModelOutput forward(const ModelInput& input) override;
  int64_t vocab_size() const override { return options_.responses; }
  bool supports_scalar_head() const override { return true; }
  void add_scalar_head() override;
  bool has_scalar_head() const override { return !scalar_head_.is_empty(); }
  at::Tensor forward_direct(const ModelInput& input) override;
  void backward_direct(const at::Tensor& grad_logits) override;

 private:
  void build();
  std::vector<at::Tensor> layer_parameters() const;
  // The MLP's input rows [B * T, P + R] of `input` (checked).
  at::Tensor input_rows(const ModelInput& input) const;  // W, b of each trunk layer, then the output layer

  ToyMlpOptions options_;
  torch::nn::Sequential trunk_{nullptr};
  torch::nn::Linear output_{nullptr};
  torch::nn::Linear scalar_head_{nullptr};
  at::Tensor prompt_rows_;    // [P, P+R]: one-hot prompt inputs, response part zero
  at::Tensor response_rows_;  // [R, P+R]: one-hot response inputs, prompt part zero
  // forward_direct's activations and parameters, for backward_direct
  std::vector<at::Tensor> direct_activations_;
  std::vector<at::Tensor> direct_params_;
};

}  // namespace prefengine::plugins::models
