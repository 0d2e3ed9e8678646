// The ppo loss plugin on hand-made rollouts: rewards, GAE and returns against a direct evaluation
// of the sums in docs/algorithms.md (not the recursion the plugin uses), whitening, the clipped losses
// against scalar re-computations, gradients against finite differences, and option validation.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "ppo_loss.h"

namespace prefengine::plugins::losses {
namespace {

// Two rows, T = 4. Row 0: prompt at t=0, response t=1..3. Row 1: prompt t=0..1, response t=2,
// padding t=3.
RolloutBatch hand_batch() {
  RolloutBatch b;
  b.mask = at::tensor({0.f, 1.f, 1.f, 1.f, 0.f, 0.f, 1.f, 0.f}).view({2, 4});
  b.old_logps = at::tensor({0.f, -0.5f, -1.2f, -0.3f, 0.f, 0.f, -2.0f, 0.f}).view({2, 4});
  b.ref_logps = at::tensor({0.f, -0.7f, -1.0f, -0.9f, 0.f, 0.f, -1.5f, 0.f}).view({2, 4});
  b.old_values = at::tensor({0.f, 0.4f, -0.2f, 0.1f, 0.f, 0.f, 0.3f, 0.f}).view({2, 4});
  b.scores = at::tensor({1.5f, -0.5f});
  return b;
}

double at2(const at::Tensor& t, int64_t i, int64_t j) { return t[i][j].item<double>(); }

TEST(PpoLossTest, RewardsAdvantagesAndReturnsMatchTheSums) {
  PpoOptions o;
  o.kl_coef = 0.05;
  o.gamma = 0.9;
  o.lam = 0.8;
  o.whiten = false;
  PpoLoss loss(o);
  RolloutBatch b = hand_batch();
  loss.prepare_rollout(b);
  const std::vector<std::vector<int>> response = {{1, 2, 3}, {2}};
  for (int row = 0; row < 2; ++row) {
    const auto& ts = response[row];
    std::vector<double> r, v;
    for (size_t k = 0; k < ts.size(); ++k) {
      double rk = -o.kl_coef * (at2(b.old_logps, row, ts[k]) - at2(b.ref_logps, row, ts[k]));
      if (k + 1 == ts.size()) rk += b.scores[row].item<double>();
      r.push_back(rk);
      v.push_back(at2(b.old_values, row, ts[k]));
    }
    for (size_t k = 0; k < ts.size(); ++k) {
      EXPECT_NEAR(at2(b.rewards, row, ts[k]), r[k], 1e-6);
      double a = 0;
      for (size_t j = k; j < ts.size(); ++j) {
        const double next_v = j + 1 < ts.size() ? v[j + 1] : 0.0;
        const double delta = r[j] + o.gamma * next_v - v[j];
        a += std::pow(o.gamma * o.lam, static_cast<double>(j - k)) * delta;
      }
      EXPECT_NEAR(at2(b.advantages, row, ts[k]), a, 1e-6) << row << "," << k;
      EXPECT_NEAR(at2(b.returns, row, ts[k]), a + v[k], 1e-6);
    }
  }
  // nothing outside the response
  const at::Tensor outside = 1 - b.mask;
  EXPECT_EQ((b.rewards * outside).abs().sum().item<double>(), 0.0);
  EXPECT_EQ((b.advantages * outside).abs().sum().item<double>(), 0.0);
  EXPECT_EQ((b.returns * outside).abs().sum().item<double>(), 0.0);
}

TEST(PpoLossTest, OneTokenResponseWithGammaOneIsScoreMinusKlMinusValue) {
  // The toy case: A = score - kl_coef*(logp - ref) - V.
  PpoOptions o;
  o.whiten = false;
  PpoLoss loss(o);
  RolloutBatch b;
  b.mask = at::tensor({0.f, 1.f}).view({1, 2});
  b.old_logps = at::tensor({0.f, -1.f}).view({1, 2});
  b.ref_logps = at::tensor({0.f, -2.f}).view({1, 2});
  b.old_values = at::tensor({0.f, 0.25f}).view({1, 2});
  b.scores = at::tensor({2.f});
  loss.prepare_rollout(b);
  EXPECT_NEAR(at2(b.advantages, 0, 1), 2.0 - 0.05 * 1.0 - 0.25, 1e-6);
  EXPECT_NEAR(at2(b.returns, 0, 1), 2.0 - 0.05 * 1.0, 1e-6);
}

TEST(PpoLossTest, WhitenedAdvantagesHaveZeroMeanAndUnitVarianceOnTheResponse) {
  PpoLoss loss{PpoOptions{}};
  RolloutBatch b = hand_batch();
  loss.prepare_rollout(b);
  const at::Tensor a = b.advantages.masked_select(b.mask > 0).to(at::kDouble);
  EXPECT_NEAR(a.mean().item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(a.var(/*unbiased=*/false).item<double>(), 1.0, 1e-5);
  EXPECT_EQ((b.advantages * (1 - b.mask)).abs().sum().item<double>(), 0.0);
}

// The loss recomputed token by token in doubles.
double scalar_loss(const RolloutBatch& b, const PpoOptions& o) {
  double pg = 0, vf = 0, n = 0;
  for (int64_t i = 0; i < b.mask.size(0); ++i) {
    for (int64_t t = 0; t < b.mask.size(1); ++t) {
      if (at2(b.mask, i, t) == 0) continue;
      const double a = at2(b.advantages, i, t);
      const double rho = std::exp(at2(b.logps, i, t) - at2(b.old_logps, i, t));
      const double rho_c = std::min(std::max(rho, 1 - o.cliprange), 1 + o.cliprange);
      pg += std::max(-a * rho, -a * rho_c);
      const double v = at2(b.values, i, t), v_old = at2(b.old_values, i, t), ret = at2(b.returns, i, t);
      const double v_c = std::min(std::max(v, v_old - o.cliprange_value), v_old + o.cliprange_value);
      vf += std::max((v - ret) * (v - ret), (v_c - ret) * (v_c - ret));
      n += 1;
    }
  }
  return pg / n + o.vf_coef * 0.5 * vf / n;
}

RolloutBatch prepared_batch(const PpoOptions& o, double logp_shift, double value_shift) {
  PpoLoss loss(o);
  RolloutBatch b = hand_batch();
  loss.prepare_rollout(b);
  // current numbers: some ratios inside the clip range, some outside (shift 0.5 > log 1.2)
  const at::Tensor shifts = at::tensor({0.f, 0.05f, -0.5f, 0.5f, 0.f, 0.f, 0.1f, 0.f}).view({2, 4});
  b.logps = (b.old_logps + logp_shift * shifts * b.mask).to(at::kDouble).requires_grad_(true);
  const at::Tensor vshift = at::tensor({0.f, 0.1f, 0.5f, -0.4f, 0.f, 0.f, -0.05f, 0.f}).view({2, 4});
  b.values = (b.old_values + value_shift * vshift * b.mask).to(at::kDouble).requires_grad_(true);
  for (at::Tensor* t : {&b.old_logps, &b.old_values, &b.advantages, &b.returns, &b.mask}) *t = t->to(at::kDouble);
  return b;
}

TEST(PpoLossTest, LossMatchesTheTokenByTokenFormula) {
  PpoOptions o;
  PpoLoss loss(o);
  for (double shift : {0.0, 1.0}) {
    RolloutBatch b = prepared_batch(o, shift, shift);
    LossOutput out = loss.rollout(b);
    EXPECT_NEAR(out.loss.item<double>(), scalar_loss(b, o), 1e-9) << shift;
  }
  // with shift 1 two of the four response tokens have a ratio outside [0.8, 1.2]
  RolloutBatch b = prepared_batch(o, 1.0, 1.0);
  LossOutput out = loss.rollout(b);
  bool found = false;
  for (const auto& [name, value] : out.metrics) {
    if (name == "ppo/clipfrac") {
      found = true;
      EXPECT_GE(value.item<double>(), 0.0);
      EXPECT_LE(value.item<double>(), 0.5);
    }
  }
  EXPECT_TRUE(found);
}

TEST(PpoLossTest, GradientsMatchFiniteDifferences) {
  PpoOptions o;
  PpoLoss loss(o);
  // 0.3: every ratio and value inside its clip range; 1.0: some outside (zero gradient there)
  for (double shift : {0.3, 1.0}) {
  RolloutBatch b = prepared_batch(o, shift, shift);
  LossOutput out = loss.rollout(b);
  out.loss.backward();
  const at::Tensor g_logp = b.logps.grad().clone();
  const at::Tensor g_value = b.values.grad().clone();
  const double h = 1e-6;
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t t = 0; t < 4; ++t) {
      for (int which = 0; which < 2; ++which) {
        RolloutBatch plus = b, minus = b;
        at::Tensor& target_p = which == 0 ? plus.logps : plus.values;
        at::Tensor& target_m = which == 0 ? minus.logps : minus.values;
        target_p = target_p.detach().clone();
        target_m = target_m.detach().clone();
        target_p[i][t] += h;
        target_m[i][t] -= h;
        const double fd = (scalar_loss(plus, o) - scalar_loss(minus, o)) / (2 * h);
        const double ad = which == 0 ? at2(g_logp, i, t) : at2(g_value, i, t);
        EXPECT_NEAR(ad, fd, 1e-6) << (which == 0 ? "logp" : "value") << " " << i << "," << t << " shift " << shift;
      }
    }
  }
  }
}

TEST(PpoLossTest, AtTheRolloutPointThePolicyGradientIsMinusAdvantageOverTokens) {
  PpoOptions o;
  PpoLoss loss(o);
  RolloutBatch b = prepared_batch(o, 0.0, 0.0);
  loss.rollout(b).loss.backward();
  const double n = b.mask.sum().item<double>();
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t t = 0; t < 4; ++t) {
      EXPECT_NEAR(at2(b.logps.grad(), i, t), -at2(b.advantages, i, t) * at2(b.mask, i, t) / n, 1e-9);
    }
  }
}

TEST(PpoLossTest, RequirementsAndOptions) {
  PluginOptions none;
  PpoLoss loss(none);
  EXPECT_NE(dynamic_cast<RolloutLoss*>(&loss), nullptr);  // takes rollouts, not pairs
  EXPECT_TRUE(loss.requirements().scalar_head);
  EXPECT_EQ(loss.rollout_epochs(), 4);
  EXPECT_DOUBLE_EQ(loss.options().kl_coef, 0.05);
  EXPECT_DOUBLE_EQ(loss.options().cliprange, 0.2);
  EXPECT_DOUBLE_EQ(loss.options().cliprange_value, 0.2);
  EXPECT_DOUBLE_EQ(loss.options().vf_coef, 0.1);
  EXPECT_DOUBLE_EQ(loss.options().gamma, 1.0);
  EXPECT_DOUBLE_EQ(loss.options().lam, 0.95);
  EXPECT_TRUE(loss.options().whiten);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"kl_coef", "-1"}, {"cliprange", "0"}, {"cliprange_value", "0"}, {"vf_coef", "-0.1"},
      {"gamma", "1.5"},  {"lam", "-0.1"},    {"ppo_epochs", "0"},      {"whiten", "maybe"}};
  for (const auto& [key, value] : bad) {
    PluginOptions o("stages[2].loss");
    o.set_scalar(key, value);
    EXPECT_THROW(PpoLoss{o}, std::invalid_argument) << key << "=" << value;
  }
}

TEST(PpoLossTest, RejectsMisshapenBatches) {
  PpoLoss loss{PpoOptions{}};
  RolloutBatch b = hand_batch();
  b.old_values = at::zeros({2, 3});
  EXPECT_THROW(loss.prepare_rollout(b), std::invalid_argument);
  RolloutBatch c = hand_batch();
  EXPECT_THROW(loss.rollout(c), std::invalid_argument);  // no logps, no advantages
}

}  // namespace
}  // namespace prefengine::plugins::losses
