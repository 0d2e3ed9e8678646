// flex_dpo: value, gradients (closed form and finite differences), extreme margins, options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "flex_dpo_loss.h"
#include "loss_test_util.h"

namespace prefengine {
namespace {

using plugins::losses::FlexDpoLoss;
using namespace prefengine::testing;

const std::vector<double> kChosen{-1.2, -3.5, -0.3, -7.0};
const std::vector<double> kRejected{-2.0, -1.1, -4.4, -6.5};
const std::vector<double> kRefChosen{-1.5, -3.0, -0.9, -7.2};
const std::vector<double> kRefRejected{-1.9, -1.5, -3.0, -6.0};

PairwiseBatch make_batch() {
  PairwiseBatch b;
  b.chosen_logps = vec(kChosen);
  b.rejected_logps = vec(kRejected);
  b.ref_chosen_logps = vec(kRefChosen);
  b.ref_rejected_logps = vec(kRefRejected);
  b.chosen_lengths = vec({1, 1, 1, 1});
  b.rejected_lengths = vec({1, 1, 1, 1});
  return b;
}

void check_against_reference(const std::map<std::string, std::string>& values, double beta_w,
                             double beta_l) {
  PluginOptions options = make_options(values);
  FlexDpoLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch();

  // Closed form: z = beta_w*h_w - beta_l*h_l, dL/dlogp_w = -beta_w*sigma(-z)/n,
  // dL/dlogp_l = +beta_l*sigma(-z)/n.
  const double n = static_cast<double>(kChosen.size());
  double expected = 0, accuracy = 0;
  std::vector<double> grad_w, grad_l, reward_w, reward_l, margins;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    const double rw = beta_w * (kChosen[i] - kRefChosen[i]);
    const double rl = beta_l * (kRejected[i] - kRefRejected[i]);
    const double z = rw - rl;
    expected += -log_sigmoid_ref(z) / n;
    grad_w.push_back(-beta_w * sigmoid_ref(-z) / n);
    grad_l.push_back(beta_l * sigmoid_ref(-z) / n);
    reward_w.push_back(rw);
    reward_l.push_back(rl);
    margins.push_back(rw - rl);
    accuracy += (rw > rl ? 1.0 : 0.0) / n;
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
  expect_close(autograd_grad(loss, batch, &PairwiseBatch::ref_chosen_logps),
               finite_difference_grad(loss, batch, &PairwiseBatch::ref_chosen_logps), 1e-7,
               "dL/dref_chosen (finite differences)");
  expect_close(autograd_grad(loss, batch, &PairwiseBatch::ref_rejected_logps),
               finite_difference_grad(loss, batch, &PairwiseBatch::ref_rejected_logps), 1e-7,
               "dL/dref_rejected (finite differences)");
  expect_close(metric(out, "rewards/chosen"), mean_ref(reward_w), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(reward_l), 1e-12, "rewards/rejected");
  expect_close(metric(out, "rewards/margins"), mean_ref(margins), 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
}

TEST(LossFlexDpoTest, DefaultsMatchClosedForm) { check_against_reference({}, 0.1, 0.1); }

TEST(LossFlexDpoTest, LowerRejectedBetaMatchesClosedForm) {
  check_against_reference({{"beta_chosen", "0.1"}, {"beta_rejected", "0.02"}}, 0.1, 0.02);
}

TEST(LossFlexDpoTest, HigherRejectedBetaMatchesClosedForm) {
  check_against_reference({{"beta_chosen", "0.5"}, {"beta_rejected", "2"}}, 0.5, 2.0);
}

TEST(LossFlexDpoTest, GradientRatioInProbabilities) {
  // docs/algorithms.md: dL/dpi_w = -beta_w*sigma(-z)/pi_w, dL/dpi_l = beta_l*sigma(-z)/pi_l, so
  // |dL/dpi_l| / |dL/dpi_w| = (beta_l/beta_w) * pi_w/pi_l. Checked with autograd through log(pi).
  PluginOptions options = make_options({{"beta_chosen", "0.2"}, {"beta_rejected", "0.05"}});
  FlexDpoLoss loss(options);
  const std::vector<double> pi_w{0.3, 0.05}, pi_l{0.2, 1e-6};
  at::Tensor p_w = vec(pi_w).requires_grad_(true);
  at::Tensor p_l = vec(pi_l).requires_grad_(true);
  PairwiseBatch b;
  b.chosen_logps = at::log(p_w);
  b.rejected_logps = at::log(p_l);
  b.ref_chosen_logps = vec({std::log(0.25), std::log(0.1)});
  b.ref_rejected_logps = vec({std::log(0.25), std::log(0.1)});
  loss.pairwise(b).loss.backward();
  const auto g_w = to_vec(p_w.grad());
  const auto g_l = to_vec(p_l.grad());
  for (size_t i = 0; i < pi_w.size(); ++i) {
    EXPECT_LT(g_w[i], 0.0);
    EXPECT_GT(g_l[i], 0.0);
    expect_close(std::fabs(g_l[i]) / std::fabs(g_w[i]), (0.05 / 0.2) * pi_w[i] / pi_l[i], 1e-10,
                 "gradient ratio");
  }
}

TEST(LossFlexDpoTest, Requirements) {
  PluginOptions options = make_options({});
  const LossRequirements r = FlexDpoLoss(options).requirements();
  EXPECT_TRUE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
}

TEST(LossFlexDpoTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    PluginOptions options = make_options({{"beta_chosen", "1"}, {"beta_rejected", "0.5"}});
    FlexDpoLoss loss(options);
    PairwiseBatch b;
    b.chosen_logps = vec({0.0, -1e4, 0.0, -2e4}, dtype);
    b.rejected_logps = vec({-2e4, 0.0, -1e4, 0.0}, dtype);
    b.ref_chosen_logps = vec({0.0, 0.0, -1e4, 0.0}, dtype);
    b.ref_rejected_logps = vec({0.0, 0.0, 0.0, -1e4}, dtype);
    const double value = loss_value(loss, b);
    const auto g_w = autograd_grad(loss, b, &PairwiseBatch::chosen_logps);
    const auto g_l = autograd_grad(loss, b, &PairwiseBatch::rejected_logps);
    // z = h_w - 0.5*h_l = {1e4, -1e4, 1.5e4, -2.5e4}.
    const std::vector<double> z{1e4, -1e4, 1.5e4, -2.5e4};
    double expected = 0;
    std::vector<double> expected_w, expected_l;
    for (double zi : z) {
      expected += -log_sigmoid_ref(zi) / 4;
      expected_w.push_back(-sigmoid_ref(-zi) / 4);
      expected_l.push_back(0.5 * sigmoid_ref(-zi) / 4);
    }
    ASSERT_TRUE(std::isfinite(value));
    expect_all_finite(g_w, "dL/dchosen");
    expect_all_finite(g_l, "dL/drejected");
    const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
    expect_close(value, expected, tol, "extreme loss");
    expect_close(g_w, expected_w, tol, "extreme dL/dchosen");
    expect_close(g_l, expected_l, tol, "extreme dL/drejected");
  }
}

TEST(LossFlexDpoTest, OptionErrorsNameTheKey) {
  for (const char* key : {"beta_chosen", "beta_rejected"}) {
    for (const char* bad : {"0", "-1", "abc", "inf"}) {
      expect_option_error(
          [&] {
            PluginOptions o = make_options({{key, bad}});
            FlexDpoLoss l(o);
          },
          key);
    }
  }
}

TEST(LossFlexDpoTest, ReadsEveryKeyItAccepts) {
  PluginOptions options =
      make_options({{"beta_chosen", "0.1"}, {"beta_rejected", "0.05"}, {"beta", "0.1"}});
  FlexDpoLoss loss(options);
  EXPECT_EQ(options.unread_keys(), std::vector<std::string>{"beta"});
}

}  // namespace
}  // namespace prefengine
