#include "ppo_loss.h"

#include <stdexcept>
#include <string>

namespace prefengine::plugins::losses {
namespace {

void check_shape(const at::Tensor& t, const at::Tensor& like, const char* name) {
  if (!t.defined()) throw std::invalid_argument(std::string("ppo: ") + name + " is missing");
  if (t.sizes() != like.sizes()) {
    throw std::invalid_argument(std::string("ppo: ") + name + " has shape " + c10::str(t.sizes()) +
                                ", expected " + c10::str(like.sizes()) + " (the mask's)");
  }
}

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask) {
  return (x * mask).sum() / mask.sum().clamp_min(1);
}

}  // namespace

PpoLoss::PpoLoss(PluginOptions& o) {
  options_.kl_coef = o.get_double("kl_coef", options_.kl_coef, 0, 1e6);
  options_.cliprange = o.get_double("cliprange", options_.cliprange, 0, 1e6, /*min_exclusive=*/true);
  options_.cliprange_value =
      o.get_double("cliprange_value", options_.cliprange_value, 0, 1e6, /*min_exclusive=*/true);
  options_.vf_coef = o.get_double("vf_coef", options_.vf_coef, 0, 1e6);
  options_.gamma = o.get_double("gamma", options_.gamma, 0, 1);
  options_.lam = o.get_double("lam", options_.lam, 0, 1);
  options_.ppo_epochs = o.get_int("ppo_epochs", options_.ppo_epochs, 1, 1000);
  options_.whiten = o.get_bool("whiten", options_.whiten);
}

LossRequirements PpoLoss::requirements() const {
  LossRequirements r;
  r.reference_logps = true;
  r.policy_logps = true;
  r.token_logps = true;
  r.scalar_head = true;
  return r;
}

void PpoLoss::prepare_rollout(RolloutBatch& batch) {
  const at::Tensor& mask = batch.mask;
  if (!mask.defined() || mask.dim() != 2) throw std::invalid_argument("ppo: mask must be [B, T]");
  check_shape(batch.old_logps, mask, "old_logps");
  check_shape(batch.ref_logps, mask, "ref_logps");
  check_shape(batch.old_values, mask, "old_values");
  if (!batch.scores.defined() || batch.scores.dim() != 1 || batch.scores.size(0) != mask.size(0)) {
    throw std::invalid_argument("ppo: scores must be [B]");
  }
  at::NoGradGuard no_grad;
  const int64_t b = mask.size(0), t_len = mask.size(1);
  const at::Tensor m = mask.to(at::kDouble);
  const at::Tensor values = batch.old_values.to(at::kDouble) * m;
  // per-token KL penalty; the score goes to the last response token of each row
  at::Tensor rewards = -options_.kl_coef * (batch.old_logps.to(at::kDouble) - batch.ref_logps.to(at::kDouble)) * m;
  const at::Tensor positions = at::arange(t_len, at::kDouble).unsqueeze(0).expand({b, t_len});
  const at::Tensor last = (positions * m).argmax(1);  // response tokens are contiguous
  const at::Tensor has_response = m.sum(1) > 0;
  rewards.scatter_add_(1, last.unsqueeze(1),
                       (batch.scores.to(at::kDouble) * has_response.to(at::kDouble)).unsqueeze(1));
  // GAE, backwards; V beyond the response is 0
  at::Tensor advantages = at::zeros({b, t_len}, at::kDouble);
  at::Tensor next_gae = at::zeros({b}, at::kDouble);
  at::Tensor next_value = at::zeros({b}, at::kDouble);
  for (int64_t t = t_len - 1; t >= 0; --t) {
    const at::Tensor mt = m.select(1, t);
    const at::Tensor delta = rewards.select(1, t) + options_.gamma * next_value - values.select(1, t);
    const at::Tensor gae = (delta + options_.gamma * options_.lam * next_gae) * mt;
    advantages.select(1, t).copy_(gae);
    next_gae = gae;
    next_value = values.select(1, t) * mt;
  }
  const at::Tensor returns = (advantages + values) * m;
  if (options_.whiten) {
    const at::Tensor mean = masked_mean(advantages, m);
    const at::Tensor var = masked_mean((advantages - mean).pow(2), m);
    advantages = (advantages - mean) * at::rsqrt(var + 1e-8) * m;
  }
  const auto dtype = mask.scalar_type();
  batch.rewards = rewards.to(dtype);
  batch.advantages = advantages.to(dtype);
  batch.returns = returns.to(dtype);
}

LossOutput PpoLoss::rollout(const RolloutBatch& batch) {
  const at::Tensor& mask = batch.mask;
  if (!mask.defined() || mask.dim() != 2) throw std::invalid_argument("ppo: mask must be [B, T]");
  check_shape(batch.logps, mask, "logps");
  check_shape(batch.old_logps, mask, "old_logps");
  check_shape(batch.values, mask, "values");
  check_shape(batch.old_values, mask, "old_values");
  check_shape(batch.advantages, mask, "advantages (call prepare_rollout first)");
  check_shape(batch.returns, mask, "returns (call prepare_rollout first)");
  const double eps = options_.cliprange;
  const double eps_v = options_.cliprange_value;
  const at::Tensor& adv = batch.advantages;
  const at::Tensor ratio = at::exp(batch.logps - batch.old_logps);
  const at::Tensor pg1 = -adv * ratio;
  const at::Tensor pg2 = -adv * ratio.clamp(1 - eps, 1 + eps);
  const at::Tensor pg_loss = masked_mean(at::max(pg1, pg2), mask);
  const at::Tensor v_clipped = at::max(at::min(batch.values, batch.old_values + eps_v), batch.old_values - eps_v);
  const at::Tensor vf1 = (batch.values - batch.returns).pow(2);
  const at::Tensor vf2 = (v_clipped - batch.returns).pow(2);
  const at::Tensor vf_loss = 0.5 * masked_mean(at::max(vf1, vf2), mask);
  LossOutput out;
  out.loss = pg_loss + options_.vf_coef * vf_loss;
  const at::Tensor log_ratio = (batch.logps - batch.old_logps).detach();
  out.metrics = {{"ppo/policy_loss", pg_loss.detach()},
                 {"ppo/value_loss", vf_loss.detach()},
                 {"ppo/clipfrac", masked_mean((pg2 > pg1).to(at::kFloat).detach(), mask)},
                 {"ppo/value_clipfrac", masked_mean((vf2 > vf1).to(at::kFloat).detach(), mask)},
                 {"ppo/approx_kl", masked_mean(0.5 * log_ratio.pow(2), mask)},
                 {"ppo/mean_advantage", masked_mean(adv, mask)}};
  return out;
}

}  // namespace prefengine::plugins::losses
