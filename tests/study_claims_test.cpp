// The paper's claims on the toy model, asserted from the engine's own runs of the shipped configs
// (configs/toy/*.yaml, shortened where noted). Each claim is one test; where a claim does not
// hold in our runs the README's Results section says so.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/data/token_records.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/checkpoint.h"
#include "engine/train/experiment_runner.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/model.h"
#include "test_util.h"

namespace prefengine {
namespace {

using Rows = std::vector<nlohmann::json>;

struct StudyRun {
  std::string dir;
  Rows rows;  // the metrics rows of `stage`
};

StudyRun run_config(const std::string& config, const std::string& stage, const std::vector<std::string>& overrides,
               const std::string& tag) {
  ExperimentConfig c = load_experiment(testing::source_path(config), overrides);
  StudyRun run;
  run.dir = testing::make_temp_dir(tag);
  ExperimentRunner(c, run.dir).run();
  run.rows = testing::read_metrics(run.dir, stage);
  return run;
}

double value(const nlohmann::json& row, const char* key) { return row.at(key).get<double>(); }

double peak(const Rows& rows, const char* key) {
  double best = -1e300;
  for (const auto& r : rows) best = std::max(best, value(r, key));
  return best;
}

double minimum(const Rows& rows, const char* key) {
  double best = 1e300;
  for (const auto& r : rows) best = std::min(best, value(r, key));
  return best;
}

// First step with probs/rejected < 1e-3; a step past the end when never.
double fall_step(const Rows& rows) {
  for (const auto& r : rows) {
    if (value(r, "probs/rejected") < 1e-3) return value(r, "step");
  }
  return value(rows.back(), "step") + 1;
}

double mean_abs_change(const Rows& rows, const char* key) {
  double sum = 0;
  int n = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (!rows[i].contains(key) || !rows[i - 1].contains(key)) continue;
    sum += std::abs(value(rows[i], key) - value(rows[i - 1], key));
    ++n;
  }
  return n ? sum / n : 0;
}

// Figure 3: Scenario 1 (chosen and rejected both on-policy) is the mildest of the four.
TEST(StudyClaimsTest, ScenarioOneHasTheHighestChosenPeakAndTheLeastUnseenMass) {
  std::vector<double> peaks, unseen, off_data;
  for (int s = 1; s <= 4; ++s) {
    const StudyRun run = run_config("configs/toy/scenario" + std::to_string(s) + ".yaml", "pref", {},
                               "scenario" + std::to_string(s));
    ASSERT_FALSE(run.rows.empty());
    peaks.push_back(peak(run.rows, "probs/chosen"));
    unseen.push_back(value(run.rows.back(), "probs/unseen"));
    // The sequence dispersion measure: 0 before the first update (the policy is its reference),
    // positive once mass has left the pairs' responses. "0" to float rounding: the reference
    // log-probs are scored in chunks of 64 rows, the policy's in the step's batch of 16, and the
    // BLAS kernels round those shapes differently on some CPUs (up to ~2e-8 per token on an AMD EPYC).
    EXPECT_NEAR(value(run.rows.front(), "dispersion/off_data_per_token"), 0.0, 1e-6);
    off_data.push_back(value(run.rows.back(), "dispersion/off_data_per_token"));
    EXPECT_GT(off_data.back(), 0.0);
    std::printf("scenario %d: peak chosen %.4f, final unseen %.4f, final never_seen %.4f\n", s, peaks.back(),
                unseen.back(), value(run.rows.back(), "probs/never_seen"));
  }
  for (int s = 1; s < 4; ++s) {
    EXPECT_GT(peaks[0], peaks[s]) << "scenario " << s + 1;
    EXPECT_LT(unseen[0], unseen[s]) << "scenario " << s + 1;
    EXPECT_LT(off_data[0], off_data[s]) << "scenario " << s + 1;
  }
}

// Corollary 1, per pair, by autograd on the engine's trained model: |dL/dpi_l| / |dL/dpi_w| = pi_w/pi_l.
TEST(StudyClaimsTest, DpoGradientRatioEqualsTheProbabilityRatioPerPair) {
  const StudyRun run = run_config("configs/toy/scenario1.yaml", "pref", {"stages.pref.steps=600"}, "corollary1");
  ExperimentConfig config = load_experiment(testing::source_path("configs/toy/scenario1.yaml"));
  PluginLoader loader;
  auto make_model = [&] {
    PluginOptions options;
    for (const auto& [key, entry] : config.model.entries()) {
      if (key != "plugin") options.set(key, entry);
    }
    return loader.create_model(config.model_plugin, options);
  };
  auto policy = make_model();
  auto reference = make_model();
  load_model_weights(run.dir + "/checkpoints/pref", *policy);
  load_model_weights(run.dir + "/checkpoints/sft", *reference);
  PluginOptions loss_options;
  loss_options.set_scalar("beta", "0.1");
  auto loss = std::dynamic_pointer_cast<PairwiseLoss>(loader.create_loss("dpo", loss_options));
  ASSERT_NE(loss, nullptr);

  const auto pairs = read_pair_records(testing::source_path("configs/toy/data/pairs.jsonl"));
  const int64_t n = static_cast<int64_t>(pairs.size());
  std::vector<int64_t> prompt, chosen, rejected;
  for (const auto& p : pairs) {
    prompt.push_back(p.prompt[0]);
    chosen.push_back(p.chosen[0]);
    rejected.push_back(p.rejected[0]);
  }
  const at::Tensor prompt_ids = at::tensor(prompt, at::kLong).view({n, 1});
  auto probs = [&](Model& m) {
    at::NoGradGuard no_grad;
    ModelInput input;
    input.input_ids = prompt_ids;
    return m.forward(input).logits.select(1, 0).to(at::kDouble).softmax(-1);
  };
  const at::Tensor p = probs(*policy), q = probs(*reference);
  const at::Tensor w = at::tensor(chosen, at::kLong).unsqueeze(1), l = at::tensor(rejected, at::kLong).unsqueeze(1);
  at::Tensor pi_w = p.gather(1, w).squeeze(1).clone().requires_grad_(true);
  at::Tensor pi_l = p.gather(1, l).squeeze(1).clone().requires_grad_(true);
  PairwiseBatch batch;
  batch.chosen_logps = pi_w.log();
  batch.rejected_logps = pi_l.log();
  batch.ref_chosen_logps = q.gather(1, w).squeeze(1).log();
  batch.ref_rejected_logps = q.gather(1, l).squeeze(1).log();
  batch.chosen_lengths = at::ones({n}, at::kDouble);
  batch.rejected_lengths = at::ones({n}, at::kDouble);
  loss->pairwise(batch).loss.backward();
  for (int64_t i = 0; i < n; ++i) {
    const double ratio = std::abs(pi_l.grad()[i].item<double>()) / std::abs(pi_w.grad()[i].item<double>());
    const double expected = pi_w[i].item<double>() / pi_l[i].item<double>();
    EXPECT_NEAR(ratio / expected, 1.0, 1e-9) << "pair " << i << ": pi_w " << pi_w[i].item<double>() << " pi_l "
                                             << pi_l[i].item<double>();
  }
  // the run's own diagnostics say the same (mean over the batch, every metrics row)
  for (const auto& row : run.rows) {
    const double expected = (value(row, "logps/chosen") - value(row, "logps/rejected")) / std::log(10.0);
    EXPECT_NEAR(value(row, "grad/ratio_log10"), expected, 1e-4 * std::max(1.0, std::abs(expected)));
  }
}

// flex-beta: lowering beta_rejected slows the fall of the rejected probability. Runs the shipped
// sweep (one seed, the first 300 of its 2000 steps: the fall is over by step ~110) through the
// CLI. Measured where the fall happens: the first step with
// probs/rejected < 1e-3 (on the log_every grid), and probs/rejected at the step where plain DPO
// (beta_rejected = beta_chosen = 0.1) first falls below 1e-3.
TEST(StudyClaimsTest, LowerBetaRejectedSlowsTheFallOfTheRejectedProbability) {
  const std::string out = testing::make_temp_dir("flex") + "/sweep";
  const std::string cmd = std::string(PREFENGINE_CLI) + " run " + testing::source_path("configs/toy/flex_dpo.yaml") +
                          " --set 'seeds=[0]' --set stages.pref.steps=300 --jobs 2 --output " + out + " --log-level warn > " + out +
                          ".stdout 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::read_file(out + ".stdout");
  std::vector<Rows> runs;
  for (const char* beta : {"0.1", "0.05", "0.02", "0.01"}) {
    runs.push_back(testing::read_metrics(out + "/beta_rejected=" + beta + "-seed0", "pref"));
    ASSERT_FALSE(runs.back().empty()) << beta;
  }
  const double dpo_fall = fall_step(runs[0]);
  std::vector<double> falls, at_dpo_fall;
  for (const Rows& rows : runs) {
    falls.push_back(fall_step(rows));
    for (const auto& r : rows) {
      if (value(r, "step") == dpo_fall) at_dpo_fall.push_back(value(r, "probs/rejected"));
    }
    std::printf("rejected < 1e-3 at step %.0f; probs/rejected at step %.0f: %.3e\n", falls.back(), dpo_fall,
                at_dpo_fall.back());
  }
  ASSERT_EQ(at_dpo_fall.size(), runs.size());
  for (size_t i = 1; i < runs.size(); ++i) {
    EXPECT_GE(falls[i], falls[i - 1]) << i;
    EXPECT_GT(at_dpo_fall[i], at_dpo_fall[i - 1]) << i;
  }
  EXPECT_GT(falls.back(), falls.front());
}

// DPO+SFT: the NLL term keeps the chosen probability from falling below its start.
TEST(StudyClaimsTest, DpoSftKeepsTheChosenProbabilityAboveItsStart) {
  const StudyRun run = run_config("configs/toy/dpo_sft.yaml", "pref", {}, "dpo-sft");
  const double start = value(run.rows.front(), "probs/chosen");
  EXPECT_GE(minimum(run.rows, "probs/chosen"), start - 1e-3);
  EXPECT_GT(value(run.rows.back(), "probs/chosen"), start);
}

// IPO: the bounded margin keeps the rejected probability away from 0 (DPO drives it below 1e-3
// in the same steps).
TEST(StudyClaimsTest, IpoKeepsTheRejectedProbabilityAwayFromZero) {
  const StudyRun ipo = run_config("configs/toy/ipo.yaml", "pref", {}, "ipo");
  const StudyRun dpo = run_config("configs/toy/ipo.yaml", "pref", {"stages.pref.loss={plugin: dpo, beta: 0.1}"}, "ipo-dpo");
  std::printf("min probs/rejected: ipo %.3e, dpo %.3e\n", minimum(ipo.rows, "probs/rejected"),
              minimum(dpo.rows, "probs/rejected"));
  EXPECT_GT(minimum(ipo.rows, "probs/rejected"), 1e-3);
  EXPECT_LT(value(dpo.rows.back(), "probs/rejected"), 1e-3);
}

// Section 5.3: held-out preference accuracy, reward model vs DPO from the same Step-1 model on the
// same pairs. The paper: smooth for the RM, fluctuating for DPO. On the toy model the claim as
// "smaller mean step-to-step change for the RM" does NOT hold (README, Results): the RM rises from
// chance to 1 in its first ~100 steps and stays there, DPO's accuracy falls smoothly from 1 as
// the mass disperses. The test asserts what the engine shows and prints both changes.
TEST(StudyClaimsTest, HeldOutAccuracyOfTheRewardModelHoldsWhileDposDecays) {
  const StudyRun dpo = run_config("configs/toy/rm_vs_dpo.yaml", "pref", {}, "acc-dpo");
  const StudyRun rm = run_config("configs/toy/rm_vs_dpo.yaml", "pref", {"stages.pref.loss={plugin: rm}"}, "acc-rm");
  ASSERT_TRUE(dpo.rows.back().contains("eval/pair_accuracy"));
  ASSERT_TRUE(rm.rows.back().contains("eval/pair_accuracy"));
  const double dpo_change = mean_abs_change(dpo.rows, "eval/pair_accuracy");
  const double rm_change = mean_abs_change(rm.rows, "eval/pair_accuracy");
  std::printf("mean |step-to-step change| of eval/pair_accuracy: rm %.4f, dpo %.4f; final rm %.3f, dpo %.3f\n",
              rm_change, dpo_change, value(rm.rows.back(), "eval/pair_accuracy"), value(dpo.rows.back(), "eval/pair_accuracy"));
  // the RM: once learnt, held-out accuracy stays at its peak to the end
  const double rm_peak = peak(rm.rows, "eval/pair_accuracy");
  EXPECT_DOUBLE_EQ(value(rm.rows.back(), "eval/pair_accuracy"), rm_peak);
  // DPO: held-out accuracy ends below its peak (the degradation the paper attributes to dispersion)
  EXPECT_LT(value(dpo.rows.back(), "eval/pair_accuracy"), peak(dpo.rows, "eval/pair_accuracy"));
  EXPECT_GT(value(rm.rows.back(), "eval/pair_accuracy"), value(dpo.rows.back(), "eval/pair_accuracy"));
}

// RLHF-PPO against the trained RM raises the optimal response and moves no mass to unseen responses.
TEST(StudyClaimsTest, PpoRaisesTheOptimalResponseWithoutDispersion) {
  const StudyRun run = run_config("configs/toy/rm_ppo.yaml", "ppo", {}, "rm-ppo");
  ASSERT_FALSE(run.rows.empty());
  const auto& first = run.rows.front();
  const auto& last = run.rows.back();
  std::printf("ppo: chosen %.4f -> %.4f, unseen %.4f -> %.4f, never_seen %.4f -> %.4f, rejected %.4f -> %.4f\n",
              value(first, "probs/chosen"), value(last, "probs/chosen"), value(first, "probs/unseen"),
              value(last, "probs/unseen"), value(first, "probs/never_seen"), value(last, "probs/never_seen"),
              value(first, "probs/rejected"), value(last, "probs/rejected"));
  EXPECT_GT(value(last, "probs/chosen"), value(first, "probs/chosen") + 0.1);
  EXPECT_LE(value(last, "probs/unseen"), value(first, "probs/unseen") + 0.01);
  EXPECT_LE(value(last, "probs/never_seen"), value(first, "probs/never_seen") + 0.01);
}

}  // namespace
}  // namespace prefengine
