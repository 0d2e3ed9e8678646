#include "toy_mlp_model.h"

#include "cpu_blas.h"

#include <algorithm>
#include <stdexcept>

#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/functional/activation.h>
#include <torch/nn/modules/activation.h>

namespace prefengine::plugins::models {

void ToyMlpOptions::validate() const {
  if (prompts < 1) throw std::invalid_argument("prompts: expected >= 1, got " + std::to_string(prompts));
  if (responses < 2) throw std::invalid_argument("responses: expected >= 2, got " + std::to_string(responses));
  if (hidden < 1) throw std::invalid_argument("hidden: expected >= 1, got " + std::to_string(hidden));
  if (layers < 2) throw std::invalid_argument("layers: expected >= 2, got " + std::to_string(layers));
}

namespace {
ToyMlpOptions read_options(PluginOptions& o) {
  ToyMlpOptions opt;
  opt.prompts = o.get_int("prompts", opt.prompts, 1, 1 << 20);
  opt.responses = o.get_int("responses", opt.responses, 2, 1 << 20);
  opt.hidden = o.get_int("hidden", opt.hidden, 1, 1 << 16);
  opt.layers = o.get_int("layers", opt.layers, 2, 64);
  return opt;
}
// The toy's matrix products, straight to the BLAS call ATen's addmm / addmm_ / mm make for these
// layouts (its sgemm_, with the same arguments: the same bits; tests/direct_backward_test.cpp
// holds them to ATen's), without the dispatcher and its transposes, views and checks: a toy step
// spends most of its time in such per-operator overhead. sgemm_ is the BLAS LibTorch itself
// loaded (looked up at run time, not linked). Anything but contiguous fp32 CPU matrices, or a
// process without sgemm_, takes the ATen operator.
bool plain(const at::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && !t.is_conj() && t.numel() > 0 &&
         t.numel() < (int64_t{1} << 30);
}

using cpu_blas::gemm;

}  // namespace

at::Tensor toy_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (cpu_blas::sgemm() == nullptr ||
      !(plain(x) && plain(weight) && plain(bias) && x.dim() == 2 && weight.dim() == 2 && bias.dim() == 1 &&
        x.size(1) == weight.size(1) && bias.size(0) == weight.size(0))) {
    return at::addmm(bias, x, weight.t());
  }
  const int rows = static_cast<int>(x.size(0)), out = static_cast<int>(weight.size(0)),
            in = static_cast<int>(weight.size(1));
  at::Tensor y = at::empty({rows, out}, x.options());
  float* dst = y.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  for (int r = 0; r < rows; ++r) std::copy(b, b + out, dst + static_cast<int64_t>(r) * out);  // addmm copies the bias
  gemm('t', 'n', out, rows, in, weight.data_ptr<float>(), in, x.data_ptr<float>(), in, 1.0f, dst, out);
  return y;
}

void toy_add_weight_grad(at::Tensor& grad, const at::Tensor& g, const at::Tensor& a) {
  if (cpu_blas::sgemm() == nullptr || !(plain(grad) && plain(g) && plain(a) && g.dim() == 2 && a.dim() == 2 &&
                                   g.size(0) == a.size(0) && grad.size(0) == g.size(1) && grad.size(1) == a.size(1))) {
    grad.addmm_(g.t(), a);
    return;
  }
  const int rows = static_cast<int>(g.size(0)), out = static_cast<int>(g.size(1)), in = static_cast<int>(a.size(1));
  gemm('n', 't', in, out, rows, a.data_ptr<float>(), in, g.data_ptr<float>(), out, 1.0f, grad.data_ptr<float>(), in);
}

at::Tensor toy_input_grad(const at::Tensor& g, const at::Tensor& weight) {
  if (cpu_blas::sgemm() == nullptr ||
      !(plain(g) && plain(weight) && g.dim() == 2 && weight.dim() == 2 && g.size(1) == weight.size(0))) {
    return at::mm(g, weight);
  }
  const int rows = static_cast<int>(g.size(0)), out = static_cast<int>(weight.size(0)),
            in = static_cast<int>(weight.size(1));
  at::Tensor dx = at::empty({rows, in}, g.options());
  gemm('n', 'n', in, rows, out, weight.data_ptr<float>(), in, g.data_ptr<float>(), out, 0.0f, dx.data_ptr<float>(), in);
  return dx;
}

namespace {

// The MLP (linear + ReLU layers, then the output layer) on 2-D rows x: the logits [B, R] and the
// activations its backward needs: x, h_1 .. h_{layers-1} (the last is the hidden output, which the
// scalar head reads). params = {W_0, b_0, W_1, b_1, ..., W_out, b_out}.
struct MlpForward {
  at::Tensor logits;
  std::vector<at::Tensor> activations;
};

MlpForward mlp_forward(const at::Tensor& x, at::TensorList params) {
  const size_t layers = params.size() / 2;
  MlpForward out;
  out.activations.push_back(x);
  at::Tensor h = x;
  for (size_t i = 0; i + 1 < layers; ++i) {
    h = toy_linear(h, params[2 * i], params[2 * i + 1]).relu_();
    out.activations.push_back(h);
  }
  out.logits = toy_linear(h, params[2 * layers - 2], params[2 * layers - 1]);
  return out;
}

// The textbook chain rule through the MLP (two matmuls, a bias sum and a ReLU mask per layer),
// from g = dL/dlogits [B, R] and dL/dh of the hidden output (`g_hidden`, may be undefined). Each
// parameter's gradient goes to `accumulate(k, parameter, compute, add_into)` (k: its index in
// params), which either adds it into an existing buffer (add_into: addmm_, C + A B with one
// rounding of the same product, or add_) or takes compute()'s new tensor. Returns dL/dx when
// `want_input_grad`. Autograd's node (FusedMlp) and the direct backward (ToyMlpModel::
// backward_direct) both run this: the same kernels in the same order.
template <typename Accumulate>
at::Tensor mlp_backward(const std::vector<at::Tensor>& activations, at::TensorList params, at::Tensor g,
                        const at::Tensor& g_hidden, bool want_input_grad, Accumulate&& accumulate) {
  const size_t layers = params.size() / 2;
  for (size_t i = layers; i-- > 0;) {
    if (i + 1 < layers) g = at::threshold_backward(g, activations[i + 1], 0);
    const at::Tensor& a = activations[i];
    accumulate(
        2 * i, params[2 * i], [&] { return at::mm(g.t(), a); }, [&](at::Tensor& grad) { toy_add_weight_grad(grad, g, a); });
    accumulate(
        2 * i + 1, params[2 * i + 1], [&] { return g.sum(0); }, [&](at::Tensor& grad) { grad.add_(g.sum(0)); });
    if (i > 0 || want_input_grad) {
      g = toy_input_grad(g, params[2 * i]);
      // the hidden output feeds the scalar head: its gradient joins before the last ReLU mask
      if (i + 1 == layers && g_hidden.defined()) g = g + g_hidden;
    }
  }
  return want_input_grad ? g : at::Tensor();
}

// True when `grad` is a buffer the backward can add into in place (the engine's flat gradient).
bool accumulates_in_place(const at::Tensor& grad, const at::Tensor& parameter) {
  return grad.defined() && !grad.requires_grad() && grad.is_contiguous() &&
         grad.scalar_type() == parameter.scalar_type() && grad.sizes() == parameter.sizes();
}

// The whole MLP as ONE autograd node. The toy model is tiny (a few thousand weights), so a step
// costs what its operators and autograd nodes cost, not what its arithmetic costs: this replaces 3
// Linear + 2 ReLU (8 nodes with the transposes) by one node. Outputs: logits (already in the
// model's [B, T, R] shape, `logits_shape`: no view node after this one) and the last hidden
// activation [B, H] (for the scalar head). An output that is not used gets no gradient (not a
// materialised zero tensor, nor the add of it).
struct FusedMlp : public torch::autograd::Function<FusedMlp> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                at::TensorList params, at::IntArrayRef logits_shape) {
    ctx->set_materialize_grads(false);
    MlpForward f = mlp_forward(x, params);
    const at::Tensor hidden = f.activations.back();
    std::vector<at::Tensor> saved = std::move(f.activations);
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["layers"] = static_cast<int64_t>(params.size() / 2);
    return {f.logits.view(logits_shape), hidden};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const auto layers = static_cast<size_t>(ctx->saved_data["layers"].toInt());
    // saved: x, h_1 .. h_{layers-1}, then the parameters
    const std::vector<at::Tensor> params(saved.begin() + static_cast<std::ptrdiff_t>(layers), saved.end());
    saved.resize(layers);
    torch::autograd::variable_list grads(1 + 2 * layers + 1);  // x, the parameters, logits_shape
    const int64_t outputs = params.back().size(0);
    const at::Tensor g = grad_outputs[0].defined() ? grad_outputs[0].reshape({-1, outputs})
                                                   : at::zeros({saved[0].size(0), outputs}, saved[0].options());
    // A parameter whose .grad() already exists (the engine's flat gradient buffer) gets its
    // gradient added in place (what AccumulateGrad would do), and no gradient goes back to
    // autograd for it: its AccumulateGrad node has nothing to add (six add_ and three
    // weight-gradient temporaries fewer per step). Elsewhere (no .grad() yet, a double backward)
    // the gradients are returned as usual.
    const bool direct = !torch::autograd::GradMode::is_enabled();
    const at::Tensor dx = mlp_backward(
        saved, params, g, grad_outputs[1], ctx->needs_input_grad(0),
        [&](size_t k, const at::Tensor& parameter, auto&& compute, auto&& add_into) {
          if (!ctx->needs_input_grad(1 + k)) return;
          at::Tensor& grad = const_cast<at::Tensor&>(parameter).mutable_grad();
          if (direct && accumulates_in_place(grad, parameter)) {
            add_into(grad);
          } else {
            grads[1 + k] = compute();
          }
        });
    if (dx.defined()) grads[0] = dx;
    return grads;
  }
};

}  // namespace

ToyMlpModel::ToyMlpModel(PluginOptions& options) : options_(read_options(options)) { build(); }

ToyMlpModel::ToyMlpModel(const ToyMlpOptions& options) : options_(options) {
  options_.validate();
  build();
}

void ToyMlpModel::build() {
  trunk_ = torch::nn::Sequential();
  int64_t width = options_.prompts + options_.responses;
  for (int64_t i = 0; i + 1 < options_.layers; ++i) {
    trunk_->push_back(torch::nn::Linear(width, options_.hidden));
    trunk_->push_back(torch::nn::ReLU());
    width = options_.hidden;
  }
  output_ = torch::nn::Linear(width, options_.responses);
  prompt_rows_ = at::cat({at::eye(options_.prompts, at::kFloat),
                          at::zeros({options_.prompts, options_.responses}, at::kFloat)}, 1);
  response_rows_ = at::cat({at::zeros({options_.responses, options_.prompts}, at::kFloat),
                            at::eye(options_.responses, at::kFloat)}, 1);
  register_module("trunk", trunk_);
  register_module("output", output_);
}

std::vector<at::Tensor> ToyMlpModel::layer_parameters() const {
  std::vector<at::Tensor> params;
  for (const auto& module : trunk_->children()) {
    if (const auto* linear = module->as<torch::nn::Linear>()) {
      params.push_back(linear->weight);
      params.push_back(linear->bias);
    }
  }
  params.push_back(output_->weight);
  params.push_back(output_->bias);
  return params;
}

void ToyMlpModel::add_scalar_head() {
  if (has_scalar_head()) return;
  scalar_head_ = register_module("scalar_head", torch::nn::Linear(options_.hidden, 1));
}

at::Tensor ToyMlpModel::input_rows(const ModelInput& input) const {
  const at::Tensor& ids = input.input_ids;
  if (ids.dim() != 2 || ids.size(1) < 1) {
    throw std::invalid_argument("toy_mlp: expected input_ids of shape [batch, tokens >= 1]");
  }
  if (input.cache != nullptr) throw std::invalid_argument("toy_mlp: has no KV cache");
  if (input.want_scalar && !has_scalar_head()) {
    throw std::invalid_argument("toy_mlp: the scalar head was not added");
  }
  const int64_t batch = ids.size(0);
  const int64_t length = ids.size(1);
  // Rows of an identity matrix instead of one_hot: index_select checks the range without an
  // extra min/max pass (this model is bound by per-op overhead).
  // prompt_rows_ is [I_P, 0]: the input at a prompt-only position.
  at::Tensor features = prompt_rows_.index_select(0, ids.select(1, 0));
  if (length == 1) return features;  // the paper's case: prompt -> response distribution, one row each
  features = features.unsqueeze(1);
  at::Tensor responses = ids.slice(1, 1);
  const int64_t width = options_.prompts + options_.responses;
  at::Tensor bag = response_rows_.index_select(0, responses.reshape({-1})).view({batch, length - 1, width});
  if (input.attention_mask.defined()) {
    bag = bag * input.attention_mask.slice(1, 1).unsqueeze(-1).to(at::kFloat);
  }
  bag = at::cat({at::zeros({batch, 1, width}, bag.options()), bag.cumsum(1)}, 1);
  return (features.expand({batch, length, width}) + bag).reshape({batch * length, width});
}

ModelOutput ToyMlpModel::forward(const ModelInput& input) {
  const at::Tensor rows = input_rows(input);
  const int64_t batch = input.input_ids.size(0);
  const int64_t length = input.input_ids.size(1);
  const std::vector<at::Tensor> params = layer_parameters();
  const auto outputs = FusedMlp::apply(rows, at::TensorList(params), at::IntArrayRef({batch, length, options_.responses}));
  ModelOutput out;
  if (input.want_logits) out.logits = outputs[0];
  if (input.want_scalar) {
    out.scalar = scalar_head_->forward(outputs[1]);
    out.scalar = length == 1 ? out.scalar : out.scalar.view({batch, length});
  }
  return out;
}

at::Tensor ToyMlpModel::forward_direct(const ModelInput& input) {
  if (input.want_scalar) throw std::invalid_argument("toy_mlp: forward_direct computes no scalar head");
  at::NoGradGuard no_grad;
  const at::Tensor rows = input_rows(input);
  direct_params_ = layer_parameters();
  MlpForward f = mlp_forward(rows, direct_params_);
  direct_activations_ = std::move(f.activations);
  return f.logits.view({input.input_ids.size(0), input.input_ids.size(1), options_.responses});
}

void ToyMlpModel::backward_direct(const at::Tensor& grad_logits) {
  if (direct_activations_.empty()) throw std::logic_error("toy_mlp: backward_direct without a forward_direct before it");
  at::NoGradGuard no_grad;
  // What the FusedMlp node does (the same kernels in the same order), with the in-place adds of
  // its engine-buffer case; a parameter without a suitable buffer gets the gradient as
  // AccumulateGrad would give it (stored when there is none, added otherwise).
  (void)mlp_backward(direct_activations_, direct_params_, grad_logits.reshape({-1, options_.responses}), at::Tensor(),
                     /*want_input_grad=*/false,
                     [](size_t /*k*/, const at::Tensor& parameter, auto&& compute, auto&& add_into) {
                       if (!parameter.requires_grad()) return;
                       at::Tensor& grad = const_cast<at::Tensor&>(parameter).mutable_grad();
                       if (accumulates_in_place(grad, parameter)) {
                         add_into(grad);
                       } else if (!grad.defined()) {
                         grad = compute();
                       } else {
                         grad = grad + compute();
                       }
                     });
  direct_activations_.clear();
  direct_params_.clear();
}

}  // namespace prefengine::plugins::models
