// dpo_sft: value, gradients (closed form and finite differences), extreme margins, options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dpo_sft_loss.h"
#include "loss_test_util.h"

namespace prefengine {
namespace {

using plugins::losses::DpoSftLoss;
using namespace prefengine::testing;

// Multi-token responses: the NLL is a per-token mean, so the lengths matter.
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

void check_against_reference(const std::map<std::string, std::string>& values, double beta,
                             double lambda) {
  PluginOptions options = make_options(values);
  DpoSftLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch();

  // Closed form: L_i = -log sigma(z_i) + lambda * (-logp_w,i / |y_w,i|),
  // dL/dlogp_w,i = (-beta*sigma(-z_i) - lambda/|y_w,i|)/n, dL/dlogp_l,i = beta*sigma(-z_i)/n.
  const double n = static_cast<double>(kChosen.size());
  double expected = 0, nll = 0, accuracy = 0;
  std::vector<double> grad_w, grad_l, reward_w, reward_l, margins;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    const double rw = beta * (kChosen[i] - kRefChosen[i]);
    const double rl = beta * (kRejected[i] - kRefRejected[i]);
    const double z = rw - rl;
    const double nll_i = -kChosen[i] / kChosenLengths[i];
    expected += (-log_sigmoid_ref(z) + lambda * nll_i) / n;
    nll += nll_i / n;
    grad_w.push_back((-beta * sigmoid_ref(-z) - lambda / kChosenLengths[i]) / n);
    grad_l.push_back(beta * sigmoid_ref(-z) / n);
    reward_w.push_back(rw);
    reward_l.push_back(rl);
    margins.push_back(z);
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
  expect_close(metric(out, "sft/nll"), nll, 1e-12, "sft/nll");
  expect_close(metric(out, "rewards/chosen"), mean_ref(reward_w), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(reward_l), 1e-12, "rewards/rejected");
  expect_close(metric(out, "rewards/margins"), mean_ref(margins), 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
}

TEST(LossDpoSftTest, DefaultsMatchClosedForm) { check_against_reference({}, 0.1, 1.0); }

TEST(LossDpoSftTest, OptionsMatchClosedForm) {
  check_against_reference({{"beta", "0.4"}, {"sft_weight", "0.25"}}, 0.4, 0.25);
}

TEST(LossDpoSftTest, ZeroSftWeightIsDpo) {
  check_against_reference({{"beta", "0.3"}, {"sft_weight", "0"}}, 0.3, 0.0);
}

TEST(LossDpoSftTest, ChosenGradientSurvivesSaturation) {
  // With the DPO term saturated (z = +1e4) only -lambda/|y_w| per pair is left on logp_w.
  PluginOptions options = make_options({{"beta", "1"}, {"sft_weight", "0.5"}});
  DpoSftLoss loss(options);
  PairwiseBatch b;
  b.chosen_logps = vec({-4.0});
  b.rejected_logps = vec({-1e4 - 4.0});
  b.ref_chosen_logps = vec({-4.0});
  b.ref_rejected_logps = vec({-4.0});
  b.chosen_lengths = vec({4});
  b.rejected_lengths = vec({4});
  EXPECT_NEAR(loss_value(loss, b), 0.5 * 1.0, 1e-12);  // NLL = 4/4 = 1
  EXPECT_NEAR(autograd_grad(loss, b, &PairwiseBatch::chosen_logps)[0], -0.5 / 4, 1e-12);
  EXPECT_NEAR(autograd_grad(loss, b, &PairwiseBatch::rejected_logps)[0], 0.0, 1e-12);
}

TEST(LossDpoSftTest, Requirements) {
  PluginOptions options = make_options({});
  const LossRequirements r = DpoSftLoss(options).requirements();
  EXPECT_TRUE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
}

TEST(LossDpoSftTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    PluginOptions options = make_options({{"beta", "1"}, {"sft_weight", "1"}});
    DpoSftLoss loss(options);
    PairwiseBatch b;
    b.chosen_logps = vec({0.0, -1e4, -1e4}, dtype);
    b.rejected_logps = vec({-1e4, 0.0, -1e4}, dtype);
    b.ref_chosen_logps = vec({0.0, 0.0, 0.0}, dtype);
    b.ref_rejected_logps = vec({0.0, 0.0, 0.0}, dtype);
    b.chosen_lengths = vec({1, 10, 100}, dtype);
    b.rejected_lengths = vec({1, 10, 100}, dtype);
    const std::vector<double> z{1e4, -1e4, 0.0}, nll{0.0, 1e3, 1e2}, len{1, 10, 100};
    double expected = 0;
    std::vector<double> expected_w;
    for (size_t i = 0; i < z.size(); ++i) {
      expected += (-log_sigmoid_ref(z[i]) + nll[i]) / 3;
      expected_w.push_back((-sigmoid_ref(-z[i]) - 1.0 / len[i]) / 3);
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

TEST(LossDpoSftTest, OptionErrorsNameTheKey) {
  for (const char* bad : {"0", "-1", "abc", "inf"}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"beta", bad}});
          DpoSftLoss l(o);
        },
        "beta");
  }
  for (const char* bad : {"-0.5", "abc", "inf"}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"sft_weight", bad}});
          DpoSftLoss l(o);
        },
        "sft_weight");
  }
}

TEST(LossDpoSftTest, EmptyChosenResponseIsAnError) {
  PluginOptions options = make_options({});
  DpoSftLoss loss(options);
  PairwiseBatch b = make_batch();
  b.chosen_lengths = vec({1, 0, 2, 3});
  EXPECT_THROW(loss.pairwise(b), std::invalid_argument);
}

}  // namespace
}  // namespace prefengine
