// slic: value, gradients (closed form and finite differences), extreme margins, options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "loss_test_util.h"
#include "slic_loss.h"

namespace prefengine {
namespace {

using plugins::losses::SlicLoss;
using namespace prefengine::testing;

// Pairs 0 and 2 have the hinge active for delta = 1, pairs 1 and 3 have it met; none sits on the
// kink, where finite differences are not defined.
const std::vector<double> kChosen{-1.2, -0.5, -3.0, -0.3};
const std::vector<double> kRejected{-2.0, -4.1, -2.4, -2.5};

PairwiseBatch make_batch() {
  PairwiseBatch b;  // no reference log-probs: slic asks for none
  b.chosen_logps = vec(kChosen);
  b.rejected_logps = vec(kRejected);
  b.chosen_lengths = vec({1, 1, 1, 1});
  b.rejected_lengths = vec({1, 1, 1, 1});
  return b;
}

void check_against_reference(const std::map<std::string, std::string>& values, double delta,
                             double lambda) {
  PluginOptions options = make_options(values);
  SlicLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch();

  // Closed form: L_i = max(0, delta - w + l) - lambda*w; while the hinge is active
  // dL/dw = -(1 + lambda)/n and dL/dl = 1/n, once met dL/dw = -lambda/n and dL/dl = 0.
  const double n = static_cast<double>(kChosen.size());
  double expected = 0, active = 0, accuracy = 0;
  std::vector<double> grad_w, grad_l, margins;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    const double hinge = delta - kChosen[i] + kRejected[i];
    const bool on = hinge > 0;
    expected += ((on ? hinge : 0.0) - lambda * kChosen[i]) / n;
    grad_w.push_back((on ? -(1 + lambda) : -lambda) / n);
    grad_l.push_back((on ? 1.0 : 0.0) / n);
    active += (on ? 1.0 : 0.0) / n;
    margins.push_back(kChosen[i] - kRejected[i]);
    accuracy += (kChosen[i] > kRejected[i] ? 1.0 : 0.0) / n;
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
  expect_close(metric(out, "slic/hinge_active"), active, 1e-12, "slic/hinge_active");
  expect_close(metric(out, "rewards/chosen"), mean_ref(kChosen), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(kRejected), 1e-12, "rewards/rejected");
  expect_close(metric(out, "rewards/margins"), mean_ref(margins), 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
}

TEST(LossSlicTest, DefaultsMatchClosedForm) { check_against_reference({}, 1.0, 0.1); }

TEST(LossSlicTest, OptionsMatchClosedForm) {
  check_against_reference({{"delta", "2.5"}, {"lambda", "0.5"}}, 2.5, 0.5);
}

TEST(LossSlicTest, HingeOnlyMatchesClosedForm) {
  check_against_reference({{"delta", "0.5"}, {"lambda", "0"}}, 0.5, 0.0);
}

TEST(LossSlicTest, HandComputedValue) {
  // delta 1, lambda 0.1: pair (w=-1, l=-1.5): hinge 0.5, L = 0.5 + 0.1 = 0.6.
  PluginOptions options = make_options({});
  SlicLoss loss(options);
  PairwiseBatch b;
  b.chosen_logps = vec({-1.0});
  b.rejected_logps = vec({-1.5});
  EXPECT_NEAR(loss_value(loss, b), 0.6, 1e-15);
}

TEST(LossSlicTest, RequirementsAskForNoReference) {
  PluginOptions options = make_options({});
  const LossRequirements r = SlicLoss(options).requirements();
  EXPECT_FALSE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
}

TEST(LossSlicTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    PluginOptions options = make_options({{"delta", "1"}, {"lambda", "0.1"}});
    SlicLoss loss(options);
    PairwiseBatch b;
    b.chosen_logps = vec({0.0, -1e4}, dtype);
    b.rejected_logps = vec({-1e4, 0.0}, dtype);
    const double value = loss_value(loss, b);
    const auto g_w = autograd_grad(loss, b, &PairwiseBatch::chosen_logps);
    const auto g_l = autograd_grad(loss, b, &PairwiseBatch::rejected_logps);
    ASSERT_TRUE(std::isfinite(value));
    const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
    // Pair 0: hinge met, L = 0; pair 1: hinge 1 + 1e4, L = 1 + 1e4 + 0.1e4.
    expect_close(value, (0.0 + 1.0 + 1e4 + 1e3) / 2, tol, "extreme loss");
    expect_close(g_w, {-0.1 / 2, -1.1 / 2}, tol, "extreme dL/dchosen");
    expect_close(g_l, {0.0, 0.5}, tol, "extreme dL/drejected");
  }
}

TEST(LossSlicTest, OptionErrorsNameTheKey) {
  for (const char* key : {"delta", "lambda"}) {
    for (const char* bad : {"-0.1", "abc", "inf"}) {
      expect_option_error(
          [&] {
            PluginOptions o = make_options({{key, bad}});
            SlicLoss l(o);
          },
          key);
    }
  }
}

}  // namespace
}  // namespace prefengine
