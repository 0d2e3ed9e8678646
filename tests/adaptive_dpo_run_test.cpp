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

}  // namespace
}  // namespace prefengine
