// adaptive_dpo through the engine on the toy model (scenario 1 shape, few steps): the betas reach
// the metrics, the controller moves beta_rejected, and a run stopped mid-stage and resumed writes
// the same metrics.jsonl as the uninterrupted run (the controller's state is checkpointed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include <boost/filesystem.hpp>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

// configs/toy/scenario1.yaml shrunk: 20 SFT steps, 30 adaptive_dpo steps checkpointed every step.
// The target is below what DPO reaches in 30 steps, so the controller lowers beta_rejected.
std::string toy_yaml() {
  return "name: toy-adaptive-resume\nseed: 0\nthreads: 1\n"
         "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 64, layers: 3}\n"
         "stages:\n"
         "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl},\n"
         "     optimizer: {name: adam, lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 10}\n"
         "  - name: pref\n"
         "    kind: pairwise\n"
         "    loss: {plugin: adaptive_dpo, beta_chosen: 0.1, beta_rejected: 0.1, beta_min: 0.005,\n"
         "           target_rejected_drop: 0.05, gain: 1.0, ema: 0.5}\n"
         "    data: {path: configs/toy/data/pairs.jsonl}\n"
         "    optimizer: {name: adam, lr: 1.0e-2}\n"
         "    batch_size: 16\n"
         "    steps: 30\n"
         "    log_every: 4\n"
         "    checkpoint_every: 1\n";
}

TEST(AdaptiveDpoRunTest, ResumeMidStageEqualsAnUninterruptedRun) {
  const std::string dir = testing::make_temp_dir("adaptive-resume");
  const std::string whole = dir + "/whole", cut = dir + "/cut";
  fs::create_directories(whole);
  fs::create_directories(cut);
  ExperimentRunner(parse_experiment(toy_yaml(), "adaptive.yaml"), whole).run();

  // The betas are in every logged row of the stage, and the controller did move beta_rejected.
  const auto rows = testing::read_metrics(whole, "pref");
  ASSERT_GE(rows.size(), 5u);
  double lowest = 1.0;
  for (const auto& row : rows) {
    ASSERT_TRUE(row.contains("beta/chosen")) << row.dump();
    ASSERT_TRUE(row.contains("beta/rejected")) << row.dump();
    EXPECT_EQ(row["beta/chosen"].get<double>(), 0.1);
    const double beta_l = row["beta/rejected"].get<double>();
    EXPECT_GE(beta_l, 0.005);
    EXPECT_LE(beta_l, 0.1);
    lowest = std::min(lowest, beta_l);
  }
  EXPECT_EQ(rows.front()["beta/rejected"].get<double>(), 0.1);  // step 1 runs at the start value
  EXPECT_LT(lowest, 0.09) << "the controller never lowered beta_rejected";

  // Stopped after the pref stage's step 6 (global 20 + 6; not a logged step, and beta_rejected is still
  // on its way down from 0.1, between 0.071 at step 4 and the floor by step 8), then resumed.
  ::setenv("PREFENGINE_STOP_AFTER_STEP", "26", 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(toy_yaml(), "adaptive.yaml"), cut).run(), std::runtime_error);
  ::unsetenv("PREFENGINE_STOP_AFTER_STEP");
  ExperimentRunner resumed(load_experiment(cut + "/config.yaml"), cut);
  resumed.set_resume(true);
  resumed.run();
  EXPECT_EQ(testing::read_file(cut + "/metrics.jsonl"), testing::read_file(whole + "/metrics.jsonl"));
}

// control "ratio" through the engine: the gradient ratio the engine measures by autograd
// (grad/ratio_log10, the mean over pairs of log10 |dL/dpi_l| / |dL/dpi_w|) stays at the target
// while beta_rejected is inside its bounds, where plain DPO's climbs past it. Every step is logged
// so the controller (ema 0) always acts on the previous step's batch.
std::string toy_ratio_yaml(const std::string& loss) {
  return "name: toy-adaptive-ratio\nseed: 0\nthreads: 1\n"
         "model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 64, layers: 3}\n"
         "stages:\n"
         "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl},\n"
         "     optimizer: {name: adam, lr: 1.0e-2}, batch_size: 4, steps: 100, log_every: 50}\n"
         "  - name: pref\n"
         "    kind: pairwise\n"
         "    loss: " + loss + "\n"
         "    data: {path: configs/toy/data/pairs.jsonl}\n"
         "    optimizer: {name: adam, lr: 1.0e-3}\n"
         "    batch_size: 16\n"
         "    steps: 300\n"
         "    log_every: 1\n";
}

TEST(AdaptiveDpoRunTest, RatioControlHoldsTheMeasuredGradientRatioAtItsTarget) {
  const std::string dir = testing::make_temp_dir("adaptive-ratio");
  fs::create_directories(dir + "/dpo");
  fs::create_directories(dir + "/ratio");
  ExperimentRunner(parse_experiment(toy_ratio_yaml("{plugin: dpo, beta: 0.1}"), "dpo.yaml"), dir + "/dpo").run();
  ExperimentRunner(parse_experiment(toy_ratio_yaml("{plugin: adaptive_dpo, control: ratio, target_ratio_log10: 1,"
                                                   " beta_min: 1.0e-6, ema: 0}"),
                                    "ratio.yaml"),
                   dir + "/ratio")
      .run();
  double dpo_max = -1e9;
  for (const auto& row : testing::read_metrics(dir + "/dpo", "pref")) {
    dpo_max = std::max(dpo_max, row["grad/ratio_log10"].get<double>());
  }
  ASSERT_GT(dpo_max, 2.0) << "DPO's ratio should pass the target by far for the test to mean anything";
  int64_t inside = 0;
  double worst = 0;
  for (const auto& row : testing::read_metrics(dir + "/ratio", "pref")) {
    const double beta_l = row["beta/rejected"].get<double>();
    if (row["step"].get<int64_t>() == 1 || beta_l >= 0.1 || beta_l <= 1.0e-6) continue;  // clipped: not held
    ++inside;
    worst = std::max(worst, std::abs(row["grad/ratio_log10"].get<double>() - 1.0));
  }
  EXPECT_GT(inside, 100) << "beta_rejected should be inside its bounds on most steps";
  // One step's change of the batch's log ratio (and the next batch being other pairs) is all
  // that separates the measured ratio from the target.
  EXPECT_LT(worst, 0.25) << "grad/ratio_log10 strayed from the target by " << worst;
}

}  // namespace
}  // namespace prefengine
