// ipo: value, gradients (closed form and finite differences), extreme margins, options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "ipo_loss.h"
#include "loss_test_util.h"

namespace prefengine {
namespace {

using plugins::losses::IpoLoss;
using namespace prefengine::testing;

const std::vector<double> kChosen{-1.2, -13.5, -2.3, -17.0};
const std::vector<double> kRejected{-2.0, -11.1, -4.4, -6.5};
const std::vector<double> kRefChosen{-1.5, -13.0, -2.9, -17.2};
const std::vector<double> kRefRejected{-1.9, -11.5, -3.0, -6.0};
const std::vector<double> kChosenLengths{1, 7, 2, 12};
const std::vector<double> kRejectedLengths{1, 5, 3, 4};

PairwiseBatch make_batch() {
  PairwiseBatch b;
  b.chosen_logps = vec(kChosen);
  b.rejected_logps = vec(kRejected);
  b.ref_chosen_logps = vec(kRefChosen);
  b.ref_rejected_logps = vec(kRefRejected);
  b.chosen_lengths = vec(kChosenLengths);
  b.rejected_lengths = vec(kRejectedLengths);
  return b;
}

void check_against_reference(const std::map<std::string, std::string>& values, double tau) {
  PluginOptions options = make_options(values);
  IpoLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch();

  // Closed form with per-token means: h = (logp - ref)/|y|, g = h_w - h_l - 1/(2 tau),
  // L = mean g^2, dL/dlogp_w,i = 2 g_i/(|y_w,i| n), dL/dlogp_l,i = -2 g_i/(|y_l,i| n).
  const double n = static_cast<double>(kChosen.size());
  double expected = 0, accuracy = 0;
  std::vector<double> grad_w, grad_l, reward_w, reward_l, margins;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    const double h_w = (kChosen[i] - kRefChosen[i]) / kChosenLengths[i];
    const double h_l = (kRejected[i] - kRefRejected[i]) / kRejectedLengths[i];
    const double g = h_w - h_l - 1.0 / (2.0 * tau);
    expected += g * g / n;
    grad_w.push_back(2 * g / kChosenLengths[i] / n);
    grad_l.push_back(-2 * g / kRejectedLengths[i] / n);
    reward_w.push_back(tau * h_w);
    reward_l.push_back(tau * h_l);
    margins.push_back(tau * (h_w - h_l));
    accuracy += (h_w > h_l ? 1.0 : 0.0) / n;
  }

  const LossOutput out = loss.pairwise(batch);
  expect_close(to_double(out.loss), expected, 1e-12, "loss");
  const auto g_w = autograd_grad(loss, batch, &PairwiseBatch::chosen_logps);
  const auto g_l = autograd_grad(loss, batch, &PairwiseBatch::rejected_logps);
  expect_close(g_w, grad_w, 1e-12, "dL/dchosen (closed form)");
  expect_close(g_l, grad_l, 1e-12, "dL/drejected (closed form)");
  expect_close(g_w, finite_difference_grad(loss, batch, &PairwiseBatch::chosen_logps), 1e-7,
               "dL/dchosen (finite differences)");
  expect_close(g_l, finite_difference_grad(loss, batch, &PairwiseBatch::rejected_logps), 1e-7,
               "dL/drejected (finite differences)");
  expect_close(metric(out, "rewards/chosen"), mean_ref(reward_w), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(reward_l), 1e-12, "rewards/rejected");
  expect_close(metric(out, "rewards/margins"), mean_ref(margins), 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
}

TEST(LossIpoTest, DefaultsMatchClosedForm) { check_against_reference({}, 0.1); }

TEST(LossIpoTest, TauMatchesClosedForm) { check_against_reference({{"tau", "0.75"}}, 0.75); }

TEST(LossIpoTest, HandComputedValue) {
  // tau = 0.25: target margin 1/(2 tau) = 2. Pair 0: h_w = (-2 - -4)/2 = 1, h_l = 0: g = -1,
  // L = 1. Pair 1: h_w = (0 - -4)/2 = 2, h_l = 0: g = 0, L = 0.
  PluginOptions options = make_options({{"tau", "0.25"}});
  IpoLoss loss(options);
  PairwiseBatch b;
  b.chosen_logps = vec({-2.0, 0.0});
  b.rejected_logps = vec({-3.0, -3.0});
  b.ref_chosen_logps = vec({-4.0, -4.0});
  b.ref_rejected_logps = vec({-3.0, -3.0});
  b.chosen_lengths = vec({2, 2});
  b.rejected_lengths = vec({3, 3});
  EXPECT_NEAR(loss_value(loss, b), 0.5, 1e-15);  // (0 + 1)/2
}

TEST(LossIpoTest, Requirements) {
  PluginOptions options = make_options({});
  const LossRequirements r = IpoLoss(options).requirements();
  EXPECT_TRUE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
}

TEST(LossIpoTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    PluginOptions options = make_options({{"tau", "0.1"}});
    IpoLoss loss(options);
    PairwiseBatch b;
    b.chosen_logps = vec({0.0, -1e4, -5.0}, dtype);
    b.rejected_logps = vec({-1e4, 0.0, -5.0}, dtype);
    b.ref_chosen_logps = vec({0.0, 0.0, 0.0}, dtype);
    b.ref_rejected_logps = vec({0.0, 0.0, 0.0}, dtype);
    b.chosen_lengths = vec({1, 1, 1}, dtype);
    b.rejected_lengths = vec({1, 1, 1}, dtype);
    // g = {1e4 - 5, -1e4 - 5, -5}.
    const std::vector<double> g{1e4 - 5, -1e4 - 5, -5};
    double expected = 0;
    std::vector<double> expected_w;
    for (double gi : g) {
      expected += gi * gi / 3;
      expected_w.push_back(2 * gi / 3);
    }
    const double value = loss_value(loss, b);
    const auto g_w = autograd_grad(loss, b, &PairwiseBatch::chosen_logps);
    const auto g_l = autograd_grad(loss, b, &PairwiseBatch::rejected_logps);
    ASSERT_TRUE(std::isfinite(value));
    expect_all_finite(g_w, "dL/dchosen");
    expect_all_finite(g_l, "dL/drejected");
    const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
    expect_close(value, expected, tol, "extreme loss");
    expect_close(g_w, expected_w, tol, "extreme dL/dchosen");
  }
}

TEST(LossIpoTest, OptionErrorsNameTheKey) {
  for (const char* bad : {"0", "-0.1", "abc", "inf"}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"tau", bad}});
          IpoLoss l(o);
        },
        "tau");
  }
}

TEST(LossIpoTest, EmptyResponseIsAnError) {
  PluginOptions options = make_options({});
  IpoLoss loss(options);
  PairwiseBatch b = make_batch();
  b.rejected_lengths = vec({1, 0, 2, 3});
  EXPECT_THROW(loss.pairwise(b), std::invalid_argument);
}

}  // namespace
}  // namespace prefengine
