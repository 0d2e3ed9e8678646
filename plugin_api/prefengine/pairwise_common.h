#pragma once
// Helpers for pairwise loss plugins, part of the SDK: batch checks, the option bound, the TRL
// reward metrics and the Bradley-Terry loss as one autograd node. Header-only: each plugin library
// compiles its own copy, so a plugin needs no library beyond libprefengine_plugin_api.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "prefengine/pairwise_loss.h"
#include "prefengine/plugin_options.h"

namespace prefengine {

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
// `inf` out (the getters' default bound of infinity would accept it). Every shipped loss uses it,
// so their error messages read alike: "expected a number in (0, 1e+06]".
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

namespace pairwise_detail {

// mean_i -[(1 - eps) log sigma(z_i) + eps log sigma(-z_i)],
// z = beta_w (pi_w - ref_w) - beta_l (pi_l - ref_l); `z` receives z. Undefined references count as 0.
inline at::Tensor sigmoid_pair_value(const at::Tensor& chosen, const at::Tensor& rejected, const at::Tensor& ref_chosen,
                                     const at::Tensor& ref_rejected, double beta_w, double beta_l, double eps,
                                     at::Tensor& z) {
  at::Tensor h_w = ref_chosen.defined() ? chosen - ref_chosen : chosen;
  at::Tensor h_l = ref_rejected.defined() ? rejected - ref_rejected : rejected;
  z = beta_w == beta_l ? (h_w - h_l).mul_(beta_w) : h_w.mul(beta_w).sub_(h_l, beta_l);
  at::Tensor per_pair = at::log_sigmoid(z).neg_();
  if (eps > 0) per_pair = per_pair.mul_(1.0 - eps).sub_(at::log_sigmoid(-z), eps);
  return per_pair.mean();
}

// The closed-form dL/dz_i = [-(1 - eps) sigma(-z_i) + eps sigma(z_i)] * grad_output / B.
inline at::Tensor sigmoid_pair_dz(const at::Tensor& z, double eps, const at::Tensor& grad_output) {
  at::Tensor dz = at::sigmoid(-z).mul_(-(1.0 - eps));
  if (eps > 0) dz.add_(at::sigmoid(z), eps);
  dz.mul_(grad_output / static_cast<double>(z.numel()));
  return dz;
}

// sigmoid_pair_value as one autograd node with the closed-form gradient (then times +-beta per
// input): the same value as log_sigmoid on autograd ops, without their seven backward nodes.
struct SigmoidPairLoss : public torch::autograd::Function<SigmoidPairLoss> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& chosen,
                            const at::Tensor& rejected, const c10::optional<at::Tensor>& ref_chosen,
                            const c10::optional<at::Tensor>& ref_rejected, double beta_w, double beta_l,
                            double eps) {
    at::Tensor z;
    at::Tensor loss = sigmoid_pair_value(chosen, rejected, ref_chosen ? *ref_chosen : at::Tensor(),
                                         ref_rejected ? *ref_rejected : at::Tensor(), beta_w, beta_l, eps, z);
    ctx->save_for_backward({z});
    ctx->saved_data["beta_w"] = beta_w;
    ctx->saved_data["beta_l"] = beta_l;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["has_ref_w"] = ref_chosen.has_value();
    ctx->saved_data["has_ref_l"] = ref_rejected.has_value();
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const at::Tensor z = ctx->get_saved_variables()[0];
    const double beta_w = ctx->saved_data["beta_w"].toDouble();
    const double beta_l = ctx->saved_data["beta_l"].toDouble();
    const at::Tensor dz = sigmoid_pair_dz(z, ctx->saved_data["eps"].toDouble(), grad_outputs[0]);
    // needs_input_grad counts the tensor inputs that are present: chosen, rejected, then the refs
    const bool has_ref_w = ctx->saved_data["has_ref_w"].toBool();
    const bool has_ref_l = ctx->saved_data["has_ref_l"].toBool();
    const auto scaled = [&](double factor, bool present, size_t edge) {
      return present && ctx->needs_input_grad(edge) ? dz * factor : at::Tensor();
    };
    return {scaled(beta_w, true, 0),
            scaled(-beta_l, true, 1),
            scaled(-beta_w, has_ref_w, 2),
            scaled(beta_l, has_ref_l, has_ref_w ? 3 : 2),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace pairwise_detail

// The Bradley-Terry family's loss on a batch: mean of -log sigma(z) (label smoothing eps mixes in
// -log sigma(-z)), z = beta_w (chosen - ref_chosen) - beta_l (rejected - ref_rejected); undefined
// references count as 0 (reference-free). A scalar, differentiable in every defined input through
// one autograd node.
inline at::Tensor sigmoid_pair_loss(const at::Tensor& chosen, const at::Tensor& rejected,
                                    const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                                    double beta_w, double beta_l, double label_smoothing = 0.0) {
  // undefined references go in as empty optionals: autograd takes them for non-tensor arguments
  const auto optional = [](const at::Tensor& t) { return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt; };
  return pairwise_detail::SigmoidPairLoss::apply(chosen, rejected, optional(ref_chosen), optional(ref_rejected), beta_w,
                                        beta_l, label_smoothing);
}

// sigmoid_pair_loss without autograd, for PairwiseGradient::pairwise_with_gradient: the same
// value, and grad_output times its gradient in chosen and rejected (the same bits as autograd's
// through sigmoid_pair_loss).
inline at::Tensor sigmoid_pair_loss_with_gradient(const at::Tensor& chosen, const at::Tensor& rejected,
                                                  const at::Tensor& ref_chosen, const at::Tensor& ref_rejected,
                                                  double beta_w, double beta_l, double label_smoothing,
                                                  const at::Tensor& grad_output, at::Tensor& grad_chosen,
                                                  at::Tensor& grad_rejected) {
  at::Tensor z;
  at::Tensor loss = pairwise_detail::sigmoid_pair_value(chosen, rejected, ref_chosen, ref_rejected, beta_w, beta_l,
                                                        label_smoothing, z);
  const at::Tensor dz = pairwise_detail::sigmoid_pair_dz(z, label_smoothing, grad_output);
  grad_chosen = dz * beta_w;
  grad_rejected = dz * -beta_l;
  return loss;
}

}  // namespace prefengine
