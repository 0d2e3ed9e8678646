#include "toy_mlp_model.h"

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
// The whole MLP (linear + ReLU layers, then the output layer) as ONE autograd node, on 2-D rows.
// The toy model is tiny (a few thousand weights), so a step costs what its operators and autograd
// nodes cost, not what its arithmetic costs: this replaces 3 Linear + 2 ReLU (8 nodes with the
// transposes) by one node whose backward is the textbook chain rule (two matmuls, a bias sum and
// a ReLU mask per layer). Outputs: logits [B, R] and the last hidden activation [B, H] (for the
// scalar head). params = {W_0, b_0, W_1, b_1, ..., W_out, b_out}. The logits come out already in
// the model's [B, T, R] shape (`logits_shape`): no view node after this one. An output that is not
// used gets no gradient (not a materialised zero tensor, nor the add of it).
struct FusedMlp : public torch::autograd::Function<FusedMlp> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                at::TensorList params, at::IntArrayRef logits_shape) {
    ctx->set_materialize_grads(false);
    const size_t layers = params.size() / 2;
    std::vector<at::Tensor> saved = {x};
    at::Tensor h = x;
    for (size_t i = 0; i + 1 < layers; ++i) {
      h = at::addmm(params[2 * i + 1], h, params[2 * i].t()).relu_();
      saved.push_back(h);
    }
    const at::Tensor logits = at::addmm(params[2 * layers - 1], h, params[2 * layers - 2].t());
    saved.insert(saved.end(), params.begin(), params.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["layers"] = static_cast<int64_t>(layers);
    return {logits.view(logits_shape), h};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto layers = static_cast<size_t>(ctx->saved_data["layers"].toInt());
    // saved: x, h_1 .. h_{layers-1}, then the parameters
    const auto activation = [&](size_t i) -> const at::Tensor& { return saved[i]; };
    const auto weight = [&](size_t i) -> const at::Tensor& { return saved[layers + 2 * i]; };
    torch::autograd::variable_list grads(1 + 2 * layers + 1);  // x, the parameters, logits_shape
    at::Tensor g = grad_outputs[0].defined() ? grad_outputs[0].reshape({-1, weight(layers - 1).size(0)})
                                             : at::zeros({activation(0).size(0), weight(layers - 1).size(0)},
                                                         activation(0).options());
    // A parameter whose .grad() already exists (the engine's flat gradient buffer) gets its
    // gradient added in place here: addmm_ (C += A B, one rounding of the same product) and add_
    // (what AccumulateGrad does), and no gradient goes back to autograd for it: its
    // AccumulateGrad node has nothing to add (six add_ and three weight-gradient temporaries fewer
    // per step). Elsewhere (no .grad() yet, a double backward) the gradients are returned as usual.
    const bool direct = !torch::autograd::GradMode::is_enabled();
    const auto accumulate = [&](size_t edge, const at::Tensor& parameter, auto&& compute, auto&& add_into) {
      if (!ctx->needs_input_grad(edge)) return;
      at::Tensor& grad = const_cast<at::Tensor&>(parameter).mutable_grad();
      if (direct && grad.defined() && !grad.requires_grad() && grad.is_contiguous() &&
          grad.scalar_type() == parameter.scalar_type() && grad.sizes() == parameter.sizes()) {
        add_into(grad);
      } else {
        grads[edge] = compute();
      }
    };
    for (size_t i = layers; i-- > 0;) {
      if (i + 1 < layers) g = at::threshold_backward(g, activation(i + 1), 0);
      const at::Tensor& a = activation(i);
      accumulate(
          1 + 2 * i, weight(i), [&] { return at::mm(g.t(), a); }, [&](at::Tensor& grad) { grad.addmm_(g.t(), a); });
      accumulate(
          2 + 2 * i, saved[layers + 2 * i + 1], [&] { return g.sum(0); }, [&](at::Tensor& grad) { grad.add_(g.sum(0)); });
      if (i > 0 || ctx->needs_input_grad(0)) {
        g = at::mm(g, weight(i));
        // the hidden output feeds the scalar head: its gradient joins before the last ReLU mask
        if (i + 1 == layers && grad_outputs[1].defined()) g = g + grad_outputs[1];
      }
    }
    if (ctx->needs_input_grad(0)) grads[0] = g;
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

ModelOutput ToyMlpModel::forward(const ModelInput& input) {
  const at::Tensor& ids = input.input_ids;
  if (ids.dim() != 2 || ids.size(1) < 1) {
    throw std::invalid_argument("toy_mlp: expected input_ids of shape [batch, tokens >= 1]");
  }
  if (input.cache != nullptr) throw std::invalid_argument("toy_mlp: has no KV cache");
  const int64_t batch = ids.size(0);
  const int64_t length = ids.size(1);
  // Rows of an identity matrix instead of one_hot: index_select checks the range without an
  // extra min/max pass (this model is bound by per-op overhead).
  // prompt_rows_ is [I_P, 0]: the input at a prompt-only position.
  at::Tensor features = prompt_rows_.index_select(0, ids.select(1, 0));
  if (input.want_scalar && !has_scalar_head()) {
    throw std::invalid_argument("toy_mlp: the scalar head was not added");
  }
  const std::vector<at::Tensor> params = layer_parameters();
  if (length == 1) {
    // The paper's case: prompt -> response distribution, one row each (2-D, fewer ops).
    const auto outputs = FusedMlp::apply(features, at::TensorList(params), at::IntArrayRef({batch, 1, options_.responses}));
    ModelOutput out;
    if (input.want_logits) out.logits = outputs[0];
    if (input.want_scalar) out.scalar = scalar_head_->forward(outputs[1]);
    return out;
  }
  features = features.unsqueeze(1);
  {
    at::Tensor responses = ids.slice(1, 1);
    at::Tensor bag = response_rows_.index_select(0, responses.reshape({-1})).view({batch, length - 1, options_.prompts + options_.responses});
    if (input.attention_mask.defined()) {
      bag = bag * input.attention_mask.slice(1, 1).unsqueeze(-1).to(at::kFloat);
    }
    bag = at::cat({at::zeros({batch, 1, options_.prompts + options_.responses}, bag.options()), bag.cumsum(1)}, 1);
    features = features.expand({batch, length, options_.prompts + options_.responses}) + bag;
  }
  const int64_t width = features.size(2);
  const auto outputs = FusedMlp::apply(features.reshape({batch * length, width}), at::TensorList(params),
                                       at::IntArrayRef({batch, length, options_.responses}));
  ModelOutput out;
  if (input.want_logits) out.logits = outputs[0];
  if (input.want_scalar) out.scalar = scalar_head_->forward(outputs[1]).view({batch, length});
  return out;
}

}  // namespace prefengine::plugins::models
