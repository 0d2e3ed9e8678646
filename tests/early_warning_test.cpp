// The 3D early warning (engine/metrics/early_warning.h): the rules on hand-made rows, and on the
// engine's own toy runs: it fires on DPO before the chosen probability has given back half its
// gain, its degradation warning stays silent on DPO+SFT, on_3d: stop and checkpoint, and a resumed
// run keeps the warnings of an uninterrupted one.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/metrics/early_warning.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/train/checkpoint.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

MetricsRow row(int64_t step, std::vector<std::pair<std::string, double>> values) {
  MetricsRow r;
  r.stage = "dpo";
  r.step = step;
  for (auto& [k, v] : values) r.set(k, v);
  return r;
}

TEST(ThreeDWatchTest, DegradationNeedsTheFallAndAGrowingMargin) {
  EarlyWarningOptions o;  // chosen_drop 0.05 of the gain, at least 0.01; patience 2
  ThreeDWatch watch(o);
  // start 0.3, peak 0.9 (gain 0.6: the fall must reach 0.03) with margin 1.
  EXPECT_TRUE(watch.observe(row(1, {{"probs/chosen", 0.3}, {"rewards/margins", 0.0}})).empty());
  EXPECT_TRUE(watch.observe(row(2, {{"probs/chosen", 0.9}, {"rewards/margins", 1.0}})).empty());
  // fell 0.05 but the margin fell too: not degradation (the whole preference is unlearning).
  EXPECT_TRUE(watch.observe(row(3, {{"probs/chosen", 0.85}, {"rewards/margins", 0.5}})).empty());
  // fell 0.02 < 0.03 with a growing margin: not yet.
  EXPECT_TRUE(watch.observe(row(4, {{"probs/chosen", 0.88}, {"rewards/margins", 2.0}})).empty());
  // fell 0.04 >= 0.03 with the margin above its value at the peak: the run starts at step 5...
  EXPECT_TRUE(watch.observe(row(5, {{"probs/chosen", 0.86}, {"rewards/margins", 2.5}})).empty());
  // ...and fires on its second row, once.
  const auto fired = watch.observe(row(6, {{"probs/chosen", 0.84}, {"rewards/margins", 3.0}}));
  ASSERT_EQ(fired.size(), 1u);
  EXPECT_EQ(fired[0].property, "degradation");
  EXPECT_EQ(fired[0].onset, 5);
  EXPECT_EQ(fired[0].step, 6);
  EXPECT_TRUE(watch.observe(row(7, {{"probs/chosen", 0.5}, {"rewards/margins", 4.0}})).empty());
}

TEST(ThreeDWatchTest, DrasticDropAndDispersionOnTheirThresholds) {
  EarlyWarningOptions o;
  o.patience = 1;
  o.ratio_log10 = 2;
  ThreeDWatch watch(o);
  EXPECT_TRUE(watch.observe(row(1, {{"grad/ratio_log10", 1.99}, {"dispersion/off_data_per_token", 0.0}})).empty());
  // off_data rises from its minimum -0.2 by 0.1: fires together with the ratio reaching 2.
  EXPECT_TRUE(watch.observe(row(2, {{"grad/ratio_log10", 1.5}, {"dispersion/off_data_per_token", -0.2}})).empty());
  const auto fired = watch.observe(row(3, {{"grad/ratio_log10", 2.0}, {"dispersion/off_data_per_token", -0.1}}));
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0].property, "drastic_drop");
  EXPECT_EQ(fired[1].property, "dispersion");
  // LM rows: the chosen measure is logps/chosen_per_token with its own least fall (0.05 nats).
  ThreeDWatch lm(o);
  EXPECT_TRUE(lm.observe(row(1, {{"logps/chosen_per_token", -0.50}})).empty());
  EXPECT_TRUE(lm.observe(row(2, {{"logps/chosen_per_token", -0.54}})).empty());
  EXPECT_EQ(lm.observe(row(3, {{"logps/chosen_per_token", -0.56}})).size(), 1u);
}

std::vector<nlohmann::json> warnings_of(const std::string& run, const std::string& stage) {
  const auto status = nlohmann::json::parse(testing::read_file(run + "/run.json"));
  for (const auto& s : status["stages"]) {
    if (s["name"] == stage) return s.contains("warnings") ? s["warnings"].get<std::vector<nlohmann::json>>()
                                                          : std::vector<nlohmann::json>{};
  }
  ADD_FAILURE() << "no stage " << stage << " in " << run << "/run.json";
  return {};
}

// The configs' data paths are relative to the repository.
void resolve_paths(ExperimentConfig& c) {
  for (auto& stage : c.stages) {
    if (!stage.data.path.empty() && stage.data.path[0] != '/') stage.data.path = testing::source_path(stage.data.path);
    if (!stage.eval.path.empty() && stage.eval.path[0] != '/') stage.eval.path = testing::source_path(stage.eval.path);
  }
}

std::string run_toy(const std::string& config, const std::vector<std::string>& overrides, const std::string& tag) {
  const std::string run = testing::make_temp_dir(tag);
  ExperimentConfig c = load_experiment(testing::source_path(config), overrides);
  resolve_paths(c);
  ExperimentRunner(c, run).run();
  return run;
}

TEST(EarlyWarningRunTest, FiresOnDpoBeforeHalfTheChosenGainIsLostAndNotOnDpoSft) {
  const std::string dpo = run_toy("configs/toy/dpo.yaml", {}, "warn-dpo");
  // The step at which probs/chosen has given back half of its rise (start -> peak), from the rows.
  const auto rows = testing::read_metrics(dpo, "dpo");
  const double start = rows.front()["probs/chosen"];
  double peak = start;
  int64_t half_lost = -1;
  for (const auto& r : rows) {
    const double c = r["probs/chosen"];
    peak = std::max(peak, c);
    if (half_lost < 0 && c < peak - (peak - start) / 2) half_lost = r["step"];
  }
  ASSERT_GT(half_lost, 0) << "configs/toy/dpo.yaml no longer loses half the chosen gain";
  int64_t degradation = -1;
  for (const auto& w : warnings_of(dpo, "dpo")) {
    if (w["property"] == "degradation") degradation = w["step"];
  }
  ASSERT_GT(degradation, 0) << "no degradation warning on configs/toy/dpo.yaml";
  EXPECT_LT(degradation, half_lost);
  std::printf("dpo: degradation warning at step %lld, half the chosen gain lost at step %lld\n",
              static_cast<long long>(degradation), static_cast<long long>(half_lost));

  const std::string dpo_sft = run_toy("configs/toy/dpo_sft.yaml", {}, "warn-dpo-sft");
  for (const auto& w : warnings_of(dpo_sft, "pref")) EXPECT_NE(w["property"], "degradation") << w.dump();
}

TEST(EarlyWarningRunTest, StopEndsTheStageAndCheckpointKeepsTheWeightsBeforeTheOnset) {
  const std::string stopped = run_toy("configs/toy/dpo.yaml", {"stages.dpo.on_3d=stop", "stages.dpo.steps=800"},
                                      "warn-stop");
  const auto warnings = warnings_of(stopped, "dpo");
  ASSERT_FALSE(warnings.empty());
  const int64_t first = warnings.front()["step"];  // the first warning ends the stage
  EXPECT_EQ(testing::read_metrics(stopped, "dpo").back()["step"], first);
  const CheckpointState end = read_checkpoint_state(stopped + "/checkpoints/dpo");
  EXPECT_EQ(end.step, first);
  EXPECT_TRUE(end.finished());

  const std::string kept = run_toy("configs/toy/dpo.yaml", {"stages.dpo.on_3d=checkpoint", "stages.dpo.steps=800"},
                                   "warn-ckpt");
  for (const auto& w : warnings_of(kept, "dpo")) {
    ASSERT_TRUE(w.contains("checkpoint")) << w.dump();
    const CheckpointState before = read_checkpoint_state(w["checkpoint"]);  // verifies its checksums
    EXPECT_LT(before.step, w["onset_step"].get<int64_t>());
  }
  EXPECT_EQ(testing::read_metrics(kept, "dpo").back()["step"], 800);  // checkpoint mode trains on
}

TEST(EarlyWarningRunTest, AResumedRunKeepsTheWarnings) {
  const std::vector<std::string> o = {"stages.dpo.steps=600", "stages.dpo.checkpoint_every=100"};
  const std::string whole = run_toy("configs/toy/dpo.yaml", o, "warn-whole");
  const std::string cut = testing::make_temp_dir("warn-cut");
  ExperimentConfig c = load_experiment(testing::source_path("configs/toy/dpo.yaml"), o);
  resolve_paths(c);
  const int64_t sft_steps = c.stages[0].steps;
  // Cut at dpo step 300: after the drastic-drop warning, before the degradation one.
  ::setenv("PREFENGINE_STOP_AFTER_STEP", std::to_string(sft_steps + 300).c_str(), 1);
  EXPECT_THROW(ExperimentRunner(c, cut).run(), std::runtime_error);
  ::unsetenv("PREFENGINE_STOP_AFTER_STEP");
  ExperimentConfig again = load_experiment(cut + "/config.yaml");
  resolve_paths(again);
  ExperimentRunner resumed(again, cut);
  resumed.set_resume(true);
  resumed.run();
  const auto a = warnings_of(whole, "dpo"), b = warnings_of(cut, "dpo");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["property"], b[i]["property"]);
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["onset_step"], b[i]["onset_step"]);
  }
}

}  // namespace
}  // namespace prefengine
