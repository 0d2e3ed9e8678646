// rm: value, gradients w.r.t. the rewards (closed form and finite differences), extreme margins,
// metrics and options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "loss_test_util.h"
#include "rm_loss.h"

namespace prefengine {
namespace {

using plugins::losses::RmLoss;
using namespace prefengine::testing;

const std::vector<double> kRewardChosen{0.8, -1.3, 2.2, 0.1, -0.4};
const std::vector<double> kRewardRejected{-0.5, 0.7, 1.9, 0.1, -3.0};

PairwiseBatch make_batch() {
  PairwiseBatch b;  // a reward model gets only the scalar head's rewards
  b.chosen_rewards = vec(kRewardChosen);
  b.rejected_rewards = vec(kRewardRejected);
  b.chosen_lengths = vec({1, 1, 1, 1, 1});
  b.rejected_lengths = vec({1, 1, 1, 1, 1});
  return b;
}

void check_against_reference(const std::map<std::string, std::string>& values, double margin,
                             double c) {
  PluginOptions options = make_options(values);
  RmLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch();

  // Closed form: d_i = r_w - r_l - m, s_i = r_w + r_l, L = mean(-log sigma(d)) + c*mean(s^2),
  // dL/dr_w,i = (-sigma(-d_i) + 2 c s_i)/n, dL/dr_l,i = (sigma(-d_i) + 2 c s_i)/n.
  const double n = static_cast<double>(kRewardChosen.size());
  double expected = 0, accuracy = 0, sum = 0, sum_sq = 0;
  std::vector<double> grad_w, grad_l, margins;
  for (size_t i = 0; i < kRewardChosen.size(); ++i) {
    const double w = kRewardChosen[i], l = kRewardRejected[i];
    const double d = w - l - margin, s = w + l;
    expected += (-log_sigmoid_ref(d) + c * s * s) / n;
    grad_w.push_back((-sigmoid_ref(-d) + 2 * c * s) / n);
    grad_l.push_back((sigmoid_ref(-d) + 2 * c * s) / n);
    margins.push_back(w - l);
    accuracy += (w > l ? 1.0 : 0.0) / n;
    sum += w + l;
    sum_sq += w * w + l * l;
  }
  const double mean = sum / (2 * n);
  const double std_dev = std::sqrt(sum_sq / (2 * n) - mean * mean);

  const LossOutput out = loss.pairwise(batch);
  expect_close(to_double(out.loss), expected, 1e-12, "loss");
  const auto g_w = autograd_grad(loss, batch, &PairwiseBatch::chosen_rewards);
  const auto g_l = autograd_grad(loss, batch, &PairwiseBatch::rejected_rewards);
  expect_close(g_w, grad_w, 1e-12, "dL/dr_w (closed form)");
  expect_close(g_l, grad_l, 1e-12, "dL/dr_l (closed form)");
  expect_close(g_w, finite_difference_grad(loss, batch, &PairwiseBatch::chosen_rewards), 1e-7,
               "dL/dr_w (finite differences)");
  expect_close(g_l, finite_difference_grad(loss, batch, &PairwiseBatch::rejected_rewards), 1e-7,
               "dL/dr_l (finite differences)");
  // Pair 3 is a tie: not counted as accurate.
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
  expect_close(metric(out, "rewards/margins"), mean_ref(margins), 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/chosen"), mean_ref(kRewardChosen), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(kRewardRejected), 1e-12,
               "rewards/rejected");
  expect_close(metric(out, "rewards/mean"), mean, 1e-12, "rewards/mean");
  expect_close(metric(out, "rewards/std"), std_dev, 1e-12, "rewards/std");
}

TEST(LossRmTest, DefaultsMatchClosedForm) { check_against_reference({}, 0.0, 0.0); }

TEST(LossRmTest, MarginMatchesClosedForm) {
  check_against_reference({{"margin", "0.5"}}, 0.5, 0.0);
}

TEST(LossRmTest, CenteringMatchesClosedForm) {
  check_against_reference({{"margin", "1"}, {"center_rewards_coefficient", "0.01"}}, 1.0, 0.01);
}

TEST(LossRmTest, HandComputedValue) {
  // r_w - r_l = 0: L = log 2; dL/dr_w = -1/2 (balanced: dL/dr_l = +1/2).
  PluginOptions options = make_options({});
  RmLoss loss(options);
  PairwiseBatch b;
  b.chosen_rewards = vec({0.3});
  b.rejected_rewards = vec({0.3});
  EXPECT_NEAR(loss_value(loss, b), 0.69314718055994531, 1e-15);
  EXPECT_NEAR(autograd_grad(loss, b, &PairwiseBatch::chosen_rewards)[0], -0.5, 1e-15);
  EXPECT_NEAR(autograd_grad(loss, b, &PairwiseBatch::rejected_rewards)[0], 0.5, 1e-15);
}

TEST(LossRmTest, RequirementsAskForTheScalarHeadOnly) {
  PluginOptions options = make_options({});
  const LossRequirements r = RmLoss(options).requirements();
  EXPECT_FALSE(r.reference_logps);
  EXPECT_FALSE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_TRUE(r.scalar_head);
}

TEST(LossRmTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const char* c : {"0", "0.001"}) {
      PluginOptions options = make_options({{"center_rewards_coefficient", c}});
      RmLoss loss(options);
      const double cc = std::stod(c);
      PairwiseBatch b;
      b.chosen_rewards = vec({1e4, -1e4, 5e3}, dtype);
      b.rejected_rewards = vec({-1e4, 1e4, -5e3}, dtype);
      const std::vector<double> d{2e4, -2e4, 1e4};
      double expected = 0;
      std::vector<double> expected_w;
      for (double di : d) {
        expected += -log_sigmoid_ref(di) / 3;  // s = 0 for every pair
        expected_w.push_back(-sigmoid_ref(-di) / 3);
      }
      const LossOutput out = loss.pairwise(b);
      const auto g_w = autograd_grad(loss, b, &PairwiseBatch::chosen_rewards);
      const auto g_l = autograd_grad(loss, b, &PairwiseBatch::rejected_rewards);
      ASSERT_TRUE(std::isfinite(to_double(out.loss)));
      expect_all_finite(g_w, "dL/dr_w");
      expect_all_finite(g_l, "dL/dr_l");
      for (const auto& [name, m] : out.metrics) EXPECT_TRUE(std::isfinite(to_double(m))) << name;
      const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
      expect_close(to_double(out.loss), expected + cc * 0.0, tol, "extreme loss");
      expect_close(g_w, expected_w, tol, "extreme dL/dr_w");
    }
  }
}

TEST(LossRmTest, OptionErrorsNameTheKey) {
  for (const char* key : {"margin", "center_rewards_coefficient"}) {
    for (const char* bad : {"-0.1", "abc", "inf"}) {
      expect_option_error(
          [&] {
            PluginOptions o = make_options({{key, bad}});
            RmLoss l(o);
          },
          key);
    }
  }
}

TEST(LossRmTest, MissingRewardsIsAnError) {
  PluginOptions options = make_options({});
  RmLoss loss(options);
  PairwiseBatch b;
  b.chosen_logps = vec({-1.0});
  b.rejected_logps = vec({-2.0});
  try {
    loss.pairwise(b);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("chosen_rewards"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace prefengine
