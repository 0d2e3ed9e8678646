// adaptive_dpo: the loss is flex_dpo's closed form at the controller's current betas; the
// controller's rule (docs/algorithms.md, "Adaptive beta_rejected") against values computed here;
// exact state save/load; options out of range.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "adaptive_dpo_loss.h"
#include "loss_test_util.h"

namespace prefengine {
namespace {

using plugins::losses::AdaptiveDpoLoss;
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

// A step whose rejected responses (of `tokens` tokens) sit `drop` nats per token below the reference.
StepFeedback feedback_with_drop(int64_t step, double drop, double tokens = 1.0) {
  StepFeedback f;
  f.step = step;
  f.chosen_logps = -3.0;
  f.ref_chosen_logps = -3.5;
  f.ref_rejected_logps = -4.0 * tokens;
  f.rejected_logps = f.ref_rejected_logps - drop * tokens;
  f.chosen_tokens = tokens;
  f.rejected_tokens = tokens;
  return f;
}

// flex_dpo's value and gradients at (beta_w, beta_l), computed in doubles here.
void expect_flex_closed_form(AdaptiveDpoLoss& loss, double beta_w, double beta_l) {
  const PairwiseBatch batch = make_batch();
  const double n = static_cast<double>(kChosen.size());
  double expected = 0;
  std::vector<double> grad_w, grad_l, reward_w, reward_l;
  for (size_t i = 0; i < kChosen.size(); ++i) {
    const double rw = beta_w * (kChosen[i] - kRefChosen[i]);
    const double rl = beta_l * (kRejected[i] - kRefRejected[i]);
    const double z = rw - rl;
    expected += -log_sigmoid_ref(z) / n;
    grad_w.push_back(-beta_w * sigmoid_ref(-z) / n);
    grad_l.push_back(beta_l * sigmoid_ref(-z) / n);
    reward_w.push_back(rw);
    reward_l.push_back(rl);
  }
  const LossOutput out = loss.pairwise(batch);
  expect_close(to_double(out.loss), expected, 1e-12, "loss");
  expect_close(autograd_grad(loss, batch, &PairwiseBatch::chosen_logps), grad_w, 1e-12, "dL/dchosen");
  expect_close(autograd_grad(loss, batch, &PairwiseBatch::rejected_logps), grad_l, 1e-12, "dL/drejected");
  expect_close(metric(out, "rewards/chosen"), mean_ref(reward_w), 1e-12, "rewards/chosen");
  expect_close(metric(out, "rewards/rejected"), mean_ref(reward_l), 1e-12, "rewards/rejected");
  expect_close(metric(out, "beta/chosen"), beta_w, 0.0, "beta/chosen");
  expect_close(metric(out, "beta/rejected"), beta_l, 0.0, "beta/rejected");
}

TEST(LossAdaptiveDpoTest, StartIsFlexDpoAtTheConfiguredBetas) {
  PluginOptions options = make_options({{"beta_chosen", "0.1"}, {"beta_rejected", "0.05"}});
  AdaptiveDpoLoss loss(options);
  options.reject_unread();
  expect_flex_closed_form(loss, 0.1, 0.05);
}

TEST(LossAdaptiveDpoTest, AfterStepsIsFlexDpoAtTheCurrentBetas) {
  PluginOptions options = make_options({{"beta_chosen", "0.2"}, {"beta_rejected", "0.1"}, {"gain", "0.5"},
                                        {"target_rejected_drop", "1"}, {"ema", "0"}});
  AdaptiveDpoLoss loss(options);
  loss.on_step(feedback_with_drop(1, 3.0));
  // By hand: 0.1 * exp(-0.5 * (3 - 1)) = 0.1 / e.
  const double beta_l = 0.036787944117144235;
  ASSERT_NEAR(loss.beta_rejected(), beta_l, 1e-15);
  expect_flex_closed_form(loss, 0.2, beta_l);
}

TEST(LossAdaptiveDpoTest, StepsWithoutMetricsGiveTheSameLossAndNoMetrics) {
  PluginOptions options = make_options({{"beta_rejected", "0.03"}, {"beta_max", "0.1"}});
  AdaptiveDpoLoss loss(options);
  PairwiseBatch batch = make_batch();
  const double logged = to_double(loss.pairwise(batch).loss);
  batch.want_metrics = false;
  const LossOutput out = loss.pairwise(batch);
  EXPECT_EQ(to_double(out.loss), logged);
  EXPECT_TRUE(out.metrics.empty());
}

TEST(LossAdaptiveDpoTest, FasterFallThanTargetLowersBetaRejectedByTheRule) {
  // ema 0.5: m1 = 4, m2 = 0.5*4 + 0.5*6 = 5, m3 = 0.5*5 + 0.5*2 = 3.5 (per token, 2 tokens each).
  // beta: 0.1*exp(-0.1*(4-2)) = 0.1*exp(-0.2); *exp(-0.1*3) -> 0.1*exp(-0.5); *exp(-0.1*1.5) -> 0.1*exp(-0.65).
  PluginOptions options = make_options({{"beta_rejected", "0.1"}, {"beta_min", "0.001"}, {"gain", "0.1"},
                                        {"target_rejected_drop", "2"}, {"ema", "0.5"}});
  AdaptiveDpoLoss loss(options);
  const double drops[3] = {4.0, 6.0, 2.0};
  const double smoothed[3] = {4.0, 5.0, 3.5};
  const double betas[3] = {0.0818730753077982, 0.06065306597126335, 0.05220457767610161};
  double previous = 0.1;
  for (int k = 0; k < 3; ++k) {
    loss.on_step(feedback_with_drop(k + 1, drops[k], /*tokens=*/2.0));
    EXPECT_NEAR(loss.smoothed_drop(), smoothed[k], 1e-14) << "step " << k + 1;
    EXPECT_NEAR(loss.beta_rejected(), betas[k], 1e-15) << "step " << k + 1;
    EXPECT_LT(loss.beta_rejected(), previous);
    previous = loss.beta_rejected();
  }
}

TEST(LossAdaptiveDpoTest, SlowerFallThanTargetRaisesBetaRejectedToTheBound) {
  // Drop 0 against a target of 1, gain 0.5, ema 0: each step multiplies by exp(0.5), so after k
  // steps 0.01 * exp(k/2), until step 6 (0.01 * e^3 = 0.2009) is clipped to beta_max = 0.2.
  PluginOptions options = make_options({{"beta_rejected", "0.01"}, {"beta_max", "0.2"}, {"gain", "0.5"},
                                        {"target_rejected_drop", "1"}, {"ema", "0"}});
  AdaptiveDpoLoss loss(options);
  const double betas[4] = {0.01648721270700128, 0.027182818284590453, 0.044816890703380644,
                           0.0738905609893065};
  for (int k = 0; k < 4; ++k) {
    loss.on_step(feedback_with_drop(k + 1, 0.0));
    EXPECT_NEAR(loss.beta_rejected(), betas[k], 1e-15) << "step " << k + 1;
  }
  for (int k = 4; k < 20; ++k) loss.on_step(feedback_with_drop(k + 1, 0.0));
  EXPECT_EQ(loss.beta_rejected(), 0.2);
  // A rejected log-prob above the reference (negative drop) raises it too, and it stays at the bound.
  loss.on_step(feedback_with_drop(21, -3.0));
  EXPECT_EQ(loss.beta_rejected(), 0.2);
}

TEST(LossAdaptiveDpoTest, ClippedAtBetaMin) {
  PluginOptions options = make_options({{"beta_rejected", "0.1"}, {"beta_min", "0.02"}, {"gain", "1"},
                                        {"target_rejected_drop", "0"}, {"ema", "0"}});
  AdaptiveDpoLoss loss(options);
  loss.on_step(feedback_with_drop(1, 10.0));
  EXPECT_EQ(loss.beta_rejected(), 0.02);
}

TEST(LossAdaptiveDpoTest, StepsWithoutAMeasurementLeaveTheControllerAlone) {
  PluginOptions options = make_options({{"beta_rejected", "0.05"}, {"beta_max", "0.1"}, {"ema", "0.5"}});
  AdaptiveDpoLoss loss(options);
  StepFeedback empty;  // all NaN: a step with no pairs
  loss.on_step(empty);
  EXPECT_EQ(loss.beta_rejected(), 0.05);
  EXPECT_EQ(loss.measured_steps(), 0);
  EXPECT_TRUE(std::isnan(loss.smoothed_drop()));
  loss.on_step(feedback_with_drop(2, 3.0));
  EXPECT_EQ(loss.smoothed_drop(), 3.0);  // the first real measurement seeds the EMA
}

// The controller's rule, written out here independently of the plugin.
std::vector<double> rule_by_hand(double beta, double lo, double hi, double gain, double target, double ema,
                                 const std::vector<double>& drops) {
  std::vector<double> out;
  double m = 0;
  for (size_t k = 0; k < drops.size(); ++k) {
    m = k == 0 ? drops[k] : ema * m + (1 - ema) * drops[k];
    beta = std::min(hi, std::max(lo, beta * std::exp(-gain * (m - target))));
    out.push_back(beta);
  }
  return out;
}

TEST(LossAdaptiveDpoTest, StateSaveLoadGivesTheIdenticalSequenceOfBetas) {
  const std::map<std::string, std::string> values{{"beta_chosen", "0.1"},  {"beta_rejected", "0.1"},
                                                  {"beta_min", "0.005"},   {"gain", "0.3"},
                                                  {"target_rejected_drop", "1.5"}, {"ema", "0.8"}};
  std::vector<double> drops;
  for (int k = 0; k < 40; ++k) drops.push_back(0.2 * k - 0.03 * k * k / 10 + std::sin(k));
  const std::vector<double> expected = rule_by_hand(0.1, 0.005, 0.1, 0.3, 1.5, 0.8, drops);

  PluginOptions a_options = make_options(values);
  AdaptiveDpoLoss whole(a_options);
  std::vector<double> whole_betas;
  for (size_t k = 0; k < drops.size(); ++k) {
    whole.on_step(feedback_with_drop(static_cast<int64_t>(k) + 1, drops[k], 3.0));
    whole_betas.push_back(whole.beta_rejected());
  }
  for (size_t k = 0; k < drops.size(); ++k) EXPECT_NEAR(whole_betas[k], expected[k], 1e-14) << k;

  // Cut after 17 steps: a fresh loss from the same options plus the saved state continues exactly.
  PluginOptions b_options = make_options(values);
  AdaptiveDpoLoss first(b_options);
  for (size_t k = 0; k < 17; ++k) first.on_step(feedback_with_drop(static_cast<int64_t>(k) + 1, drops[k], 3.0));
  NamedTensors saved;
  for (const auto& [name, tensor] : first.state()) saved.emplace_back(name, tensor.clone());
  PluginOptions c_options = make_options(values);
  AdaptiveDpoLoss resumed(c_options);
  resumed.load_state(saved);
  std::vector<double> resumed_betas(whole_betas.begin(), whole_betas.begin() + 17);
  for (size_t k = 17; k < drops.size(); ++k) {
    resumed.on_step(feedback_with_drop(static_cast<int64_t>(k) + 1, drops[k], 3.0));
    resumed_betas.push_back(resumed.beta_rejected());
  }
  EXPECT_EQ(resumed_betas, whole_betas);  // bit for bit
  expect_flex_closed_form(resumed, 0.1, whole_betas.back());
}

TEST(LossAdaptiveDpoTest, LoadStateRefusesAMissingTensorOrAnotherBetaChosen) {
  PluginOptions options = make_options({});
  AdaptiveDpoLoss loss(options);
  NamedTensors state = loss.state();
  state.erase(std::remove_if(state.begin(), state.end(), [](const auto& t) { return t.first == "measured_steps"; }),
              state.end());
  EXPECT_THROW(loss.load_state(state), std::invalid_argument);
  PluginOptions other_options = make_options({{"beta_chosen", "0.3"}});
  AdaptiveDpoLoss other(other_options);
  EXPECT_THROW(other.load_state(loss.state()), std::invalid_argument);
}

// control "ratio": the step's mean log(pi_w/pi_l) over whole responses, smoothed, sets beta_l so
// that (beta_l/beta_w) * pi_w/pi_l = 10^target (Corollary 1's gradient ratio), within the bounds.
StepFeedback feedback_with_logps(int64_t step, double chosen, double rejected) {
  StepFeedback f;
  f.step = step;
  f.chosen_logps = chosen;
  f.rejected_logps = rejected;
  f.ref_chosen_logps = -1.0;
  f.ref_rejected_logps = -1.0;
  f.chosen_tokens = 3.0;  // lengths do not enter: the ratio is of whole-response probabilities
  f.rejected_tokens = 5.0;
  return f;
}

TEST(LossAdaptiveDpoTest, RatioControlHoldsCorollaryOnesRatioAtTheTarget) {
  PluginOptions options = make_options({{"control", "ratio"}, {"beta_chosen", "0.1"}, {"beta_rejected", "0.1"},
                                        {"beta_min", "0.001"}, {"target_ratio_log10", "0"}, {"ema", "0.5"}});
  AdaptiveDpoLoss loss(options);
  options.reject_unread();
  // Step 1: -3 - (-4) = 1 nat; m = 1; beta_l = 0.1 * 10^0 * e^-1.
  loss.on_step(feedback_with_logps(1, -3.0, -4.0));
  EXPECT_NEAR(loss.smoothed_drop(), 1.0, 1e-15);
  EXPECT_NEAR(loss.beta_rejected(), 0.036787944117144233, 1e-16);
  // Step 2: -2 - (-5) = 3; m = 0.5*1 + 0.5*3 = 2; beta_l = 0.1 * e^-2.
  loss.on_step(feedback_with_logps(2, -2.0, -5.0));
  EXPECT_NEAR(loss.smoothed_drop(), 2.0, 1e-15);
  EXPECT_NEAR(loss.beta_rejected(), 0.013533528323661270, 1e-16);
  // The gradient ratio the next step will have, by Corollary 1, at the smoothed log ratio: 10^0.
  EXPECT_NEAR(std::log10(loss.beta_rejected() / 0.1) + loss.smoothed_drop() / std::log(10.0), 0.0, 1e-12);
  expect_flex_closed_form(loss, 0.1, loss.beta_rejected());
  // A collapsed rejected response (m = 0.5*2 + 0.5*40 = 21) sends beta_l to its floor ...
  loss.on_step(feedback_with_logps(3, -1.0, -41.0));
  EXPECT_EQ(loss.beta_rejected(), 0.001);
  // ... and a rejected response likelier than the chosen one to its ceiling (0.1 * e^+1 > 0.1).
  PluginOptions fresh_options = make_options({{"control", "ratio"}, {"target_ratio_log10", "0"}, {"ema", "0"}});
  AdaptiveDpoLoss fresh(fresh_options);
  fresh.on_step(feedback_with_logps(1, -2.0, -1.0));
  EXPECT_EQ(fresh.beta_rejected(), 0.1);
  // A positive target allows a larger rejected push: target 1 at a ratio of 100 gives 0.1 * 10 / 100.
  PluginOptions ten_options = make_options({{"control", "ratio"}, {"target_ratio_log10", "1"}, {"ema", "0"}});
  AdaptiveDpoLoss ten(ten_options);
  ten.on_step(feedback_with_logps(1, 0.0, -std::log(100.0)));
  EXPECT_NEAR(ten.beta_rejected(), 0.01, 1e-15);
}

TEST(LossAdaptiveDpoTest, RatioControlStateResumesAndRefusesAnotherControl) {
  const std::map<std::string, std::string> values{{"control", "ratio"}, {"target_ratio_log10", "0.5"},
                                                  {"ema", "0.8"}, {"beta_min", "0.0001"}};
  PluginOptions whole_options = make_options(values);
  AdaptiveDpoLoss whole(whole_options);
  PluginOptions resumed_options = make_options(values);
  AdaptiveDpoLoss resumed(resumed_options);
  std::vector<double> whole_betas, resumed_betas;
  for (int k = 0; k < 12; ++k) {
    whole.on_step(feedback_with_logps(k + 1, -1.0 - 0.1 * k, -1.0 - 0.7 * k));
    whole_betas.push_back(whole.beta_rejected());
    if (k == 6) resumed.load_state(whole.state());
  }
  for (int k = 7; k < 12; ++k) {
    resumed.on_step(feedback_with_logps(k + 1, -1.0 - 0.1 * k, -1.0 - 0.7 * k));
    resumed_betas.push_back(resumed.beta_rejected());
  }
  EXPECT_EQ(resumed_betas, std::vector<double>(whole_betas.begin() + 7, whole_betas.end()));  // bit for bit
  // A level checkpoint cannot continue under ratio, nor the other way round; nor can one written
  // before the control was saved (it was level) continue under ratio.
  PluginOptions level_options = make_options({});
  AdaptiveDpoLoss level(level_options);
  EXPECT_THROW(level.load_state(whole.state()), std::invalid_argument);
  EXPECT_THROW(resumed.load_state(level.state()), std::invalid_argument);
  NamedTensors old_state = level.state();
  old_state.erase(std::remove_if(old_state.begin(), old_state.end(), [](const auto& t) { return t.first == "control"; }),
                  old_state.end());
  EXPECT_NO_THROW(level.load_state(old_state));
  EXPECT_THROW(resumed.load_state(old_state), std::invalid_argument);
}

TEST(LossAdaptiveDpoTest, Requirements) {
  PluginOptions options = make_options({});
  AdaptiveDpoLoss loss(options);
  const LossRequirements r = loss.requirements();
  EXPECT_TRUE(r.reference_logps);
  EXPECT_TRUE(r.policy_logps);
  EXPECT_FALSE(r.token_logps);
  EXPECT_FALSE(r.scalar_head);
  EXPECT_TRUE(loss.wants_step_feedback());
}

TEST(LossAdaptiveDpoTest, OptionErrorsNameTheKey) {
  const std::vector<std::pair<const char*, std::vector<const char*>>> bad{
      {"beta_chosen", {"0", "-1", "abc", "inf"}},
      {"beta_rejected", {"0", "-1", "abc", "inf"}},
      {"beta_min", {"0", "-1", "abc"}},
      {"beta_max", {"0", "-1", "abc", "inf"}},
      {"gain", {"-0.1", "abc", "inf"}},
      {"target_rejected_drop", {"-1", "abc", "inf"}},
      {"ema", {"-0.1", "1", "1.5", "abc"}},
      {"control", {"rate", "Level", ""}},
      {"target_ratio_log10", {"abc", "inf"}}};
  for (const auto& [key, values] : bad) {
    for (const char* value : values) {
      expect_option_error(
          [&] {
            PluginOptions o = make_options({{key, value}});
            AdaptiveDpoLoss l(o);
          },
          key);
    }
  }
  // Bounds that contradict each other name the key that is out of place.
  expect_option_error(
      [] {
        PluginOptions o = make_options({{"beta_min", "0.05"}, {"beta_max", "0.01"}, {"beta_rejected", "0.02"}});
        AdaptiveDpoLoss l(o);
      },
      "beta_max");
  expect_option_error(
      [] {
        PluginOptions o = make_options({{"beta_rejected", "0.5"}, {"beta_max", "0.2"}});
        AdaptiveDpoLoss l(o);
      },
      "beta_rejected");
  expect_option_error(
      [] {
        PluginOptions o = make_options({{"beta_rejected", "0.01"}, {"beta_min", "0.02"}, {"beta_max", "0.1"}});
        AdaptiveDpoLoss l(o);
      },
      "beta_rejected");
}

TEST(LossAdaptiveDpoTest, ReadsEveryKeyItAccepts) {
  PluginOptions options = make_options({{"beta_chosen", "0.1"}, {"beta_rejected", "0.05"}, {"beta_min", "0.01"},
                                        {"beta_max", "0.1"}, {"gain", "0.1"}, {"target_rejected_drop", "2"},
                                        {"ema", "0.5"}, {"control", "level"}, {"target_ratio_log10", "1"},
                                        {"beta", "0.1"}});
  AdaptiveDpoLoss loss(options);
  EXPECT_EQ(options.unread_keys(), std::vector<std::string>{"beta"});
}

}  // namespace
}  // namespace prefengine
