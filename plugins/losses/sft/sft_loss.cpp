#include "sft_loss.h"

#include <stdexcept>
#include <string>

namespace prefengine::plugins::losses {
namespace {

void require(bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("sft loss: " + what);
}

// How many of the batch's rows have a target distribution. A contiguous CPU bool tensor (what the
// engine passes) is counted on the host: any().item() and all().item() are four dispatched
// operators a step, a visible share of a toy-model step.
int64_t count_true(const at::Tensor& flags) {
  if (flags.device().is_cpu() && flags.scalar_type() == at::kBool && flags.is_contiguous()) {
    const bool* v = flags.data_ptr<bool>();
    int64_t count = 0;
    for (int64_t i = 0; i < flags.numel(); ++i) count += v[i] ? 1 : 0;
    return count;
  }
  return flags.to(at::kBool).sum().item<int64_t>();
}

// The inputs of a batch with target distributions.
void check_distribution_inputs(const SftBatch& batch) {
  require(batch.next_token_logits.defined() && batch.next_token_logits.dim() == 2,
          "rows with a target distribution need next_token_logits [B, V]");
  require(batch.target_distribution.defined() && batch.target_distribution.sizes() == batch.next_token_logits.sizes(),
          "target_distribution must have the shape of next_token_logits");
}

}  // namespace

SftCrossEntropyLoss::SftCrossEntropyLoss(PluginOptions& /*options*/) {}

LossRequirements SftCrossEntropyLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = false;
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput SftCrossEntropyLoss::sft(const SftBatch& batch) {
  at::Tensor per_row;
  const int64_t with_distribution = batch.has_distribution.defined() ? count_true(batch.has_distribution) : 0;
  const bool any_distribution = with_distribution > 0;
  if (any_distribution) {
    check_distribution_inputs(batch);
    // at least fp32 (half-precision logits are widened), double stays double
    const at::ScalarType dtype = at::promote_types(batch.next_token_logits.scalar_type(), at::kFloat);
    const at::Tensor logits = batch.next_token_logits.to(dtype);
    per_row = -(batch.target_distribution.to(dtype) * logits.log_softmax(-1)).sum(-1);
  }
  const bool all_distribution = any_distribution && with_distribution == batch.has_distribution.numel();
  if (!all_distribution) {
    require(batch.logps.defined() && batch.logps.dim() == 1, "completion rows need logps [B]");
    require(batch.lengths.defined() && batch.lengths.sizes() == batch.logps.sizes(),
            "lengths must have the shape of logps");
    const at::Tensor nll = -batch.logps / batch.lengths.clamp_min(1);
    per_row = per_row.defined() ? at::where(batch.has_distribution, per_row, nll) : nll;
  }
  require(per_row.defined(), "an empty batch");
  LossOutput out;
  out.loss = per_row.mean();
  return out;
}

LossOutput SftCrossEntropyLoss::sft_with_gradient(const SftBatch& batch, const at::Tensor& grad_output,
                                                  at::Tensor& grad_next_token_logits, at::Tensor& grad_logps) {
  require(batch.has_distribution.defined(), "has_distribution is not set");
  const int64_t rows = batch.has_distribution.numel();
  const int64_t with_distribution = count_true(batch.has_distribution);
  require(rows > 0, "an empty batch");
  require(with_distribution == 0 || with_distribution == rows,
          "sft_with_gradient takes batches of distribution rows or of completion rows, not both");
  // autograd's backward of mean(): grad.expand(sizes) / numel; then each node's own formula
  const at::Tensor per_row_grad = grad_output.expand({rows}) / rows;
  LossOutput out;
  if (with_distribution == rows) {
    check_distribution_inputs(batch);
    const at::ScalarType dtype = at::promote_types(batch.next_token_logits.scalar_type(), at::kFloat);
    const at::Tensor log_probs = batch.next_token_logits.to(dtype).log_softmax(-1);
    const at::Tensor target = batch.target_distribution.to(dtype);
    out.loss = (-(target * log_probs).sum(-1)).mean();
    // neg, sum (expand), mul (by the target), log_softmax
    const at::Tensor summed = per_row_grad.neg().unsqueeze(-1).expand(log_probs.sizes());
    grad_next_token_logits = at::_log_softmax_backward_data(summed * target, log_probs, -1, dtype);
    if (dtype != batch.next_token_logits.scalar_type()) {
      grad_next_token_logits = grad_next_token_logits.to(batch.next_token_logits.scalar_type());
    }
    return out;
  }
  require(batch.logps.defined() && batch.logps.dim() == 1, "completion rows need logps [B]");
  require(batch.lengths.defined() && batch.lengths.sizes() == batch.logps.sizes(),
          "lengths must have the shape of logps");
  const at::Tensor lengths = batch.lengths.clamp_min(1);
  out.loss = (-batch.logps / lengths).mean();
  grad_logps = (per_row_grad / lengths).neg();  // div, then neg
  return out;
}

}  // namespace prefengine::plugins::losses
