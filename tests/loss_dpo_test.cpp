// dpo: value, gradients (closed form and finite differences), extreme margins, options.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dpo_loss.h"
#include "loss_test_util.h"

namespace prefengine {
namespace {

using plugins::losses::DpoLoss;
using namespace prefengine::testing;

// Hand-made pairs: policy and reference log-probs of chosen and rejected responses.
const std::vector<double> kChosen{-1.2, -3.5, -0.3, -7.0};
const std::vector<double> kRejected{-2.0, -1.1, -4.4, -6.5};
const std::vector<double> kRefChosen{-1.5, -3.0, -0.9, -7.2};
const std::vector<double> kRefRejected{-1.9, -1.5, -3.0, -6.0};

PairwiseBatch make_batch(bool with_reference = true) {
  PairwiseBatch b;
  b.chosen_logps = vec(kChosen);
  b.rejected_logps = vec(kRejected);
  if (with_reference) {
    b.ref_chosen_logps = vec(kRefChosen);
    b.ref_rejected_logps = vec(kRefRejected);
  }
  b.chosen_lengths = vec({1, 1, 1, 1});
  b.rejected_lengths = vec({1, 1, 1, 1});
  return b;
}

// The closed form of docs/algorithms.md in plain doubles: value and dL/dlogp_w (dL/dlogp_l = -that).
struct Reference {
  double loss = 0;
  std::vector<double> grad_chosen, grad_rejected;
  std::vector<double> reward_chosen, reward_rejected;
};

Reference dpo_reference(double beta, double eps, bool reference_free) {
  Reference r;
  const size_t n = kChosen.size();
  for (size_t i = 0; i < n; ++i) {
    const double h_w = kChosen[i] - (reference_free ? 0.0 : kRefChosen[i]);
    const double h_l = kRejected[i] - (reference_free ? 0.0 : kRefRejected[i]);
    const double z = beta * (h_w - h_l);
    r.loss += (-(1 - eps) * log_sigmoid_ref(z) - eps * log_sigmoid_ref(-z)) / n;
    const double dz = (-(1 - eps) * sigmoid_ref(-z) + eps * sigmoid_ref(z)) / n;
    r.grad_chosen.push_back(beta * dz);
    r.grad_rejected.push_back(-beta * dz);
    r.reward_chosen.push_back(beta * h_w);
    r.reward_rejected.push_back(beta * h_l);
  }
  return r;
}

void check_against_reference(const std::map<std::string, std::string>& values, double beta,
                             double eps, bool reference_free) {
  PluginOptions options = make_options(values);
  DpoLoss loss(options);
  options.reject_unread();
  const PairwiseBatch batch = make_batch(!reference_free);
  const Reference ref = dpo_reference(beta, eps, reference_free);

  const LossOutput out = loss.pairwise(batch);
  ASSERT_EQ(out.loss.dim(), 0);
  expect_close(to_double(out.loss), ref.loss, 1e-12, "loss");

  const auto g_w = autograd_grad(loss, batch, &PairwiseBatch::chosen_logps);
  const auto g_l = autograd_grad(loss, batch, &PairwiseBatch::rejected_logps);
  expect_close(g_w, ref.grad_chosen, 1e-12, "dL/dchosen (closed form)");
  expect_close(g_l, ref.grad_rejected, 1e-12, "dL/drejected (closed form)");
  expect_close(g_w, finite_difference_grad(loss, batch, &PairwiseBatch::chosen_logps), 1e-7,
               "dL/dchosen (finite differences)");
  expect_close(g_l, finite_difference_grad(loss, batch, &PairwiseBatch::rejected_logps), 1e-7,
               "dL/drejected (finite differences)");
  if (!reference_free) {  // the loss depends on logp - ref_logp: the reference gradients are negated
    expect_close(autograd_grad(loss, batch, &PairwiseBatch::ref_chosen_logps),
                 finite_difference_grad(loss, batch, &PairwiseBatch::ref_chosen_logps), 1e-7,
                 "dL/dref_chosen (finite differences)");
    expect_close(autograd_grad(loss, batch, &PairwiseBatch::ref_rejected_logps),
                 finite_difference_grad(loss, batch, &PairwiseBatch::ref_rejected_logps), 1e-7,
                 "dL/dref_rejected (finite differences)");
  }

  double accuracy = 0, margin = 0;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    accuracy += (ref.reward_chosen[i] > ref.reward_rejected[i] ? 1.0 : 0.0) / kChosen.size();
    margin += (ref.reward_chosen[i] - ref.reward_rejected[i]) / kChosen.size();
  }
  expect_close(metric(out, "rewards/chosen"), mean_ref(ref.reward_chosen), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(ref.reward_rejected), 1e-12,
               "rewards/rejected");
  expect_close(metric(out, "rewards/margins"), margin, 1e-12, "rewards/margins");
  expect_close(metric(out, "rewards/accuracies"), accuracy, 1e-12, "rewards/accuracies");
}

TEST(LossDpoTest, DefaultsMatchClosedForm) { check_against_reference({}, 0.1, 0.0, false); }

TEST(LossDpoTest, BetaMatchesClosedForm) {
  check_against_reference({{"beta", "0.7"}}, 0.7, 0.0, false);
}

TEST(LossDpoTest, LabelSmoothingMatchesClosedForm) {
  check_against_reference({{"beta", "0.5"}, {"label_smoothing", "0.2"}}, 0.5, 0.2, false);
}

TEST(LossDpoTest, ReferenceFreeMatchesClosedForm) {
  check_against_reference({{"beta", "0.3"}, {"reference_free", "true"}}, 0.3, 0.0, true);
}

TEST(LossDpoTest, HandComputedValue) {
  // One pair with h_w - h_l = 2 and beta = 0.5: z = 1, L = log(1 + e^-1) = 0.31326168751822286.
  PluginOptions options = make_options({{"beta", "0.5"}});
  DpoLoss loss(options);
  PairwiseBatch b;
  b.chosen_logps = vec({-1.0});
  b.rejected_logps = vec({-2.0});
  b.ref_chosen_logps = vec({-2.0});
  b.ref_rejected_logps = vec({-1.0});
  EXPECT_NEAR(loss_value(loss, b), 0.31326168751822286, 1e-15);
  // dL/dlogp_w = -beta * sigma(-1) = -0.5 * 0.2689414213699951.
  EXPECT_NEAR(autograd_grad(loss, b, &PairwiseBatch::chosen_logps)[0], -0.13447071068499755, 1e-15);
}

TEST(LossDpoTest, GradientRatioIsProbabilityRatio) {
  // Corollary 1 of the 3D-properties paper: |dL/dpi_l| / |dL/dpi_w| = pi_w/pi_l, checked with
  // autograd through logp = log(pi), down to pi_l = 1e-30.
  // (With label smoothing the ratio holds too, but the signs flip once eps*sigma(z) wins.)
  PluginOptions options = make_options({{"beta", "0.1"}});
  DpoLoss loss(options);
  const std::vector<double> pi_w{0.4, 0.05, 0.3}, pi_l{0.2, 1e-6, 1e-30};
  at::Tensor p_w = vec(pi_w).requires_grad_(true);
  at::Tensor p_l = vec(pi_l).requires_grad_(true);
  PairwiseBatch b;
  b.chosen_logps = at::log(p_w);
  b.rejected_logps = at::log(p_l);
  b.ref_chosen_logps = vec({std::log(0.3), std::log(0.1), std::log(0.3)});
  b.ref_rejected_logps = vec({std::log(0.3), std::log(0.1), std::log(0.3)});
  loss.pairwise(b).loss.backward();
  const auto g_w = to_vec(p_w.grad());
  const auto g_l = to_vec(p_l.grad());
  for (size_t i = 0; i < pi_w.size(); ++i) {
    EXPECT_LT(g_w[i], 0.0) << i;
    EXPECT_GT(g_l[i], 0.0) << i;
    expect_close(std::log10(std::fabs(g_l[i]) / std::fabs(g_w[i])), std::log10(pi_w[i] / pi_l[i]),
                 1e-12, "log10 gradient ratio");
  }
}

TEST(LossDpoTest, Requirements) {
  PluginOptions with_ref = make_options({});
  const LossRequirements r = DpoLoss(with_ref).requirements();
  EXPECT_TRUE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
  PluginOptions free = make_options({{"reference_free", "true"}});
  EXPECT_FALSE(DpoLoss(free).requirements().reference_logps);
}

TEST(LossDpoTest, ExtremeMarginsStayFinite) {
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    for (const char* beta : {"0.1", "1", "10"}) {
      for (const char* eps : {"0", "0.1"}) {
        PluginOptions options = make_options({{"beta", beta}, {"label_smoothing", eps}});
        DpoLoss loss(options);
        const double b = std::stod(beta), e = std::stod(eps);
        PairwiseBatch batch;
        // Margins h_w - h_l of +1e4, -1e4, 0 and a pair with log-probs near the fp32 floor.
        batch.chosen_logps = vec({0.0, -1e4, -5.0, -80.0}, dtype);
        batch.rejected_logps = vec({-1e4, 0.0, -5.0, -1e4}, dtype);
        batch.ref_chosen_logps = vec({0.0, 0.0, 0.0, -80.0}, dtype);
        batch.ref_rejected_logps = vec({0.0, 0.0, 0.0, 0.0}, dtype);
        const LossOutput out = loss.pairwise(batch);
        const double value = to_double(out.loss);
        const auto g_w = autograd_grad(loss, batch, &PairwiseBatch::chosen_logps);
        const auto g_l = autograd_grad(loss, batch, &PairwiseBatch::rejected_logps);
        ASSERT_TRUE(std::isfinite(value)) << "beta " << beta << " eps " << eps;
        expect_all_finite(g_w, "dL/dchosen");
        expect_all_finite(g_l, "dL/drejected");
        for (const auto& [name, m] : out.metrics) EXPECT_TRUE(std::isfinite(to_double(m))) << name;
        // Closed form in doubles for the margins {1e4, -1e4, 0, 1e4}.
        const std::vector<double> margins{1e4, -1e4, 0.0, 1e4};
        double expected = 0;
        std::vector<double> expected_grad;
        for (double m : margins) {
          const double z = b * m;
          expected += (-(1 - e) * log_sigmoid_ref(z) - e * log_sigmoid_ref(-z)) / 4;
          expected_grad.push_back(b * (-(1 - e) * sigmoid_ref(-z) + e * sigmoid_ref(z)) / 4);
        }
        const double tol = dtype == at::kFloat ? 1e-5 : 1e-12;
        expect_close(value, expected, tol, "extreme loss");
        expect_close(g_w, expected_grad, tol, "extreme dL/dchosen");
      }
    }
  }
}

TEST(LossDpoTest, OptionErrorsNameTheKey) {
  for (const char* bad : {"0", "-0.1", "abc", "inf", "nan"}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"beta", bad}});
          DpoLoss l(o);
        },
        "beta");
  }
  for (const char* bad : {"-0.01", "0.51", "1", "x"}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"label_smoothing", bad}});
          DpoLoss l(o);
        },
        "label_smoothing");
  }
  for (const char* bad : {"maybe", "2", ""}) {
    expect_option_error(
        [&] {
          PluginOptions o = make_options({{"reference_free", bad}});
          DpoLoss l(o);
        },
        "reference_free");
  }
}

TEST(LossDpoTest, OptionErrorMessage) {
  // The one line the CLI prints: location, key, what was expected, what was found.
  PluginOptions options = make_options({{"beta", "zero"}});
  try {
    DpoLoss loss(options);
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(),
                 "test.yaml:7:5: stages[1].loss.beta: expected a number in (0, 1e+06], got 'zero'");
  }
}

TEST(LossDpoTest, ReadsEveryKeyItAccepts) {
  PluginOptions options = make_options(
      {{"beta", "0.2"}, {"label_smoothing", "0.1"}, {"reference_free", "false"}, {"betta", "1"}});
  DpoLoss loss(options);
  EXPECT_THROW(options.reject_unread(), std::invalid_argument);  // only "betta" is unknown
  EXPECT_EQ(options.unread_keys(), std::vector<std::string>{"betta"});
}

TEST(LossDpoTest, MissingReferenceIsAnError) {
  PluginOptions options = make_options({});
  DpoLoss loss(options);
  try {
    loss.pairwise(make_batch(/*with_reference=*/false));
    FAIL() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("ref_chosen_logps"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace prefengine
