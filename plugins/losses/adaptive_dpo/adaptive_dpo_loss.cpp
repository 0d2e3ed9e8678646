#include "adaptive_dpo_loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

#include "prefengine/pairwise_common.h"

namespace prefengine::plugins::losses {

namespace {
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();

std::string number(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}
}  // namespace

AdaptiveDpoLoss::AdaptiveDpoLoss(PluginOptions& options) {
  AdaptiveDpoOptions& o = options_;
  o.control = options.get_choice("control", "level", {"level", "ratio"});
  o.beta_chosen = options.get_double("beta_chosen", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  o.beta_rejected = options.get_double("beta_rejected", 0.1, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  o.beta_min = options.get_double("beta_min", std::min(0.001, o.beta_rejected), /*min=*/0.0, kMaxOption,
                                  /*min_exclusive=*/true);
  // By default the start is the ceiling: the controller may ease the push on the rejected side and
  // restore it, but never push harder than the configured beta_rejected.
  o.beta_max = options.get_double("beta_max", o.beta_rejected, /*min=*/0.0, kMaxOption, /*min_exclusive=*/true);
  o.target_rejected_drop = options.get_double("target_rejected_drop", 1.0, /*min=*/0.0, kMaxOption);
  o.gain = options.get_double("gain", 0.01, /*min=*/0.0, kMaxOption);
  o.target_ratio_log10 = options.get_double("target_ratio_log10", 1.0, -kMaxOption, kMaxOption);
  o.ema = options.get_double("ema", 0.9, /*min=*/0.0, /*max=*/1.0);
  // ema = 1 would freeze the first measurement for ever: the controller would never see a change.
  if (o.ema >= 1.0) options.fail("ema", "a number in [0, 1)", number(o.ema));
  if (o.beta_max < o.beta_min) {
    options.fail("beta_max", "at least beta_min (" + number(o.beta_min) + ")", number(o.beta_max));
  }
  if (o.beta_rejected < o.beta_min || o.beta_rejected > o.beta_max) {
    options.fail("beta_rejected",
                 "a start within [beta_min, beta_max] = [" + number(o.beta_min) + ", " + number(o.beta_max) + "]",
                 number(o.beta_rejected));
  }
  beta_rejected_ = o.beta_rejected;
  smoothed_drop_ = kNan;
}

LossRequirements AdaptiveDpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = true;  // the loss and the controller's measurement both need h_l
  r.policy_logps = true;
  r.token_logps = false;
  r.scalar_head = false;
  return r;
}

LossOutput AdaptiveDpoLoss::pairwise(const PairwiseBatch& batch) { return compute(batch, nullptr, nullptr, nullptr); }

LossOutput AdaptiveDpoLoss::pairwise_with_gradient(const PairwiseBatch& batch, const at::Tensor& grad_output,
                                                   at::Tensor& grad_chosen, at::Tensor& grad_rejected) {
  return compute(batch, &grad_output, &grad_chosen, &grad_rejected);
}

LossOutput AdaptiveDpoLoss::compute(const PairwiseBatch& batch, const at::Tensor* grad_output,
                                    at::Tensor* grad_chosen, at::Tensor* grad_rejected) {
  const int64_t n = check_batch_tensor(batch.chosen_logps, "chosen_logps", -1, "adaptive_dpo");
  check_batch_tensor(batch.rejected_logps, "rejected_logps", n, "adaptive_dpo");
  check_batch_tensor(batch.ref_chosen_logps, "ref_chosen_logps", n, "adaptive_dpo");
  check_batch_tensor(batch.ref_rejected_logps, "ref_rejected_logps", n, "adaptive_dpo");
  const double beta_w = options_.beta_chosen;
  const double beta_l = beta_rejected_;
  // The same node as flex_dpo, at the betas of this step (the controller moves them between steps).
  LossOutput out;
  if (grad_output == nullptr) {
    out.loss = sigmoid_pair_loss(batch.chosen_logps, batch.rejected_logps, batch.ref_chosen_logps,
                                 batch.ref_rejected_logps, beta_w, beta_l);
  } else {  // the same value with its closed-form gradient (the engine's direct step)
    out.loss = sigmoid_pair_loss_with_gradient(batch.chosen_logps, batch.rejected_logps, batch.ref_chosen_logps,
                                               batch.ref_rejected_logps, beta_w, beta_l, 0.0, *grad_output,
                                               *grad_chosen, *grad_rejected);
  }
  // A step whose metrics are not logged skips them all (the engine drops them anyway), betas too:
  // every logged row carries the betas its step used.
  if (!batch.want_metrics) return out;
  const at::Tensor reward_w = beta_w * (batch.chosen_logps - batch.ref_chosen_logps);
  const at::Tensor reward_l = beta_l * (batch.rejected_logps - batch.ref_rejected_logps);
  out.metrics = reward_metrics(reward_w, reward_l);
  const at::TensorOptions scalar = at::TensorOptions().dtype(at::kDouble);
  out.metrics.emplace_back("beta/chosen", at::scalar_tensor(beta_w, scalar));
  out.metrics.emplace_back("beta/rejected", at::scalar_tensor(beta_l, scalar));
  return out;
}

void AdaptiveDpoLoss::on_step(const StepFeedback& feedback) {
  const bool ratio = options_.control == "ratio";
  // "ratio" measures Corollary 1's pi_w/pi_l on whole responses, as grad/ratio_log10 does (the
  // mean over pairs of the log ratio); "level" the drop per token.
  const double measured = ratio ? feedback.chosen_logps - feedback.rejected_logps
                                : -(feedback.rejected_logps - feedback.ref_rejected_logps) / feedback.rejected_tokens;
  // A step that measured nothing (no pairs, no reference) leaves the controller where it was
  // rather than steering on a NaN.
  if (!std::isfinite(measured) || (!ratio && !(feedback.rejected_tokens > 0))) return;
  smoothed_drop_ =
      measured_steps_ == 0 ? measured : options_.ema * smoothed_drop_ + (1.0 - options_.ema) * measured;
  ++measured_steps_;
  // "ratio" sets beta_l outright from the measurement (no integral term, nothing to wind up);
  // "level" moves it by a factor. Either way the bounds hold.
  const double moved =
      ratio ? options_.beta_chosen * std::pow(10.0, options_.target_ratio_log10) * std::exp(-smoothed_drop_)
            : beta_rejected_ * std::exp(-options_.gain * (smoothed_drop_ - options_.target_rejected_drop));
  beta_rejected_ = std::clamp(moved, options_.beta_min, options_.beta_max);
}

NamedTensors AdaptiveDpoLoss::state() const {
  // Doubles, so a resume continues from the same bits; beta_chosen is fixed but saved so a
  // checkpoint says which betas the next step uses.
  const at::TensorOptions d = at::TensorOptions().dtype(at::kDouble);
  return {{"beta_chosen", at::scalar_tensor(options_.beta_chosen, d)},
          {"beta_rejected", at::scalar_tensor(beta_rejected_, d)},
          {"smoothed_drop", at::scalar_tensor(smoothed_drop_, d)},
          {"measured_steps", at::scalar_tensor(measured_steps_, at::TensorOptions().dtype(at::kLong))},
          // 0 = level, 1 = ratio: the smoothed value means a different thing under each.
          {"control", at::scalar_tensor(options_.control == "ratio" ? 1 : 0, at::TensorOptions().dtype(at::kLong))}};
}

void AdaptiveDpoLoss::load_state(const NamedTensors& state) {
  bool seen[4] = {false, false, false, false};
  bool seen_control = false;
  for (const auto& [name, tensor] : state) {
    if (!tensor.defined() || tensor.numel() != 1) {
      throw std::invalid_argument("adaptive_dpo: state tensor '" + name + "' is not a scalar");
    }
    if (name == "beta_chosen") {
      seen[0] = true;
      const double saved = tensor.item<double>();
      // The config may not change beta_chosen under a resume: the run would no longer be the one saved.
      if (saved != options_.beta_chosen) {
        throw std::invalid_argument("adaptive_dpo: the checkpoint's beta_chosen " + number(saved) +
                                    " differs from the config's " + number(options_.beta_chosen));
      }
    } else if (name == "beta_rejected") {
      seen[1] = true;
      beta_rejected_ = tensor.item<double>();
    } else if (name == "smoothed_drop") {
      seen[2] = true;
      smoothed_drop_ = tensor.item<double>();
    } else if (name == "measured_steps") {
      seen[3] = true;
      measured_steps_ = tensor.item<int64_t>();
    } else if (name == "control") {
      seen_control = true;
      // Absent in checkpoints written before "ratio" existed: those were "level".
      const std::string saved = tensor.item<int64_t>() == 1 ? "ratio" : "level";
      if (saved != options_.control) {
        throw std::invalid_argument("adaptive_dpo: the checkpoint's control '" + saved + "' differs from the config's '" +
                                    options_.control + "'");
      }
    }
  }
  if (!seen_control && options_.control != "level") {
    throw std::invalid_argument("adaptive_dpo: the checkpoint has no 'control' (it was written under control 'level'), "
                                "the config asks for '" + options_.control + "'");
  }
  for (int k = 0; k < 4; ++k) {
    if (!seen[k]) {
      static const char* names[4] = {"beta_chosen", "beta_rejected", "smoothed_drop", "measured_steps"};
      throw std::invalid_argument(std::string("adaptive_dpo: state tensor '") + names[k] + "' is missing");
    }
  }
}

}  // namespace prefengine::plugins::losses
