// Sweeps and seeds: the grid expansion, the child configs, the summary table (golden means and
// standard deviations computed by hand) and one small sweep run end to end through the CLI.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <boost/filesystem.hpp>

#include "engine/config/experiment_config.h"
#include "engine/sweep/sweep_plan.h"
#include "engine/sweep/sweep_summary.h"
#include "test_util.h"

namespace prefengine {
namespace {

const char* kBase = R"(name: tiny
seed: 7
threads: 1
model: {plugin: toy_mlp, hidden: 8}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 10}
  - {name: pref, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 30, log_every: 10}
)";

std::string write_experiment(const std::string& extra, const std::string& tag) {
  const std::string dir = testing::make_temp_dir(tag);
  return testing::write_file(dir + "/exp.yaml", std::string(kBase) + extra);
}

TEST(SweepTest, GridTimesSeedsInFileOrder) {
  const std::string path = write_experiment(
      "sweep:\n  stages.pref.loss.beta: [0.1, 0.5]\n  stages.sft.data.path: [configs/toy/data/sft_scenario1.jsonl, "
      "configs/toy/data/sft_scenario2.jsonl]\nseeds: [0, 1]\n",
      "plan");
  EXPECT_TRUE(is_sweep_file(path));
  const SweepPlan plan = plan_sweep(path, {});
  ASSERT_EQ(plan.points.size(), 4u);
  EXPECT_EQ(plan.points[0], "beta=0.1,path=sft_scenario1");
  EXPECT_EQ(plan.points[1], "beta=0.1,path=sft_scenario2");
  EXPECT_EQ(plan.points[3], "beta=0.5,path=sft_scenario2");
  ASSERT_EQ(plan.runs.size(), 8u);
  EXPECT_EQ(plan.runs[1].seed, 1);
  EXPECT_EQ(plan.runs[1].name, "beta=0.1_path=sft_scenario1-seed1");
  const ExperimentConfig child = parse_experiment(plan.runs[7].config_yaml, "child");
  EXPECT_EQ(child.seed, 1);
  EXPECT_EQ(child.sweep_point,
            "stages.pref.loss.beta=0.5, stages.sft.data.path=configs/toy/data/sft_scenario2.jsonl");
  EXPECT_NE(plan.runs[7].config_yaml.find("sweep_point:\n  stages.pref.loss.beta: 0.5"), std::string::npos)
      << plan.runs[7].config_yaml;
  EXPECT_EQ(child.stages[0].data.path, "configs/toy/data/sft_scenario2.jsonl");
  EXPECT_EQ(child.stages[1].loss.entries().at("beta").scalar, "0.5");
  EXPECT_EQ(plan.runs[7].config_yaml.find("seeds"), std::string::npos);
  EXPECT_EQ(plan.runs[7].config_yaml.find("sweep:"), std::string::npos);
}

TEST(SweepTest, AMapValueReplacesTheBlockAndSeedsAloneMakeOnePoint) {
  const std::string path = write_experiment(
      "sweep: {stages.pref.loss: [{plugin: dpo, beta: 0.2}, {plugin: ppo_like, tau: 0.1}]}\n", "maps");
  const SweepPlan plan = plan_sweep(path, {});
  ASSERT_EQ(plan.points.size(), 2u);
  EXPECT_EQ(plan.points[1], "loss=ppo_like,tau=0.1");
  EXPECT_EQ(plan.seeds, std::vector<int64_t>{7});  // the file's seed
  const ExperimentConfig child = parse_experiment(plan.runs[1].config_yaml, "child");
  EXPECT_EQ(child.stages[1].loss_plugin, "ppo_like");
  EXPECT_FALSE(child.stages[1].loss.has("beta"));

  const SweepPlan seeds_only = plan_sweep(write_experiment("seeds: [3, 4, 5]\n", "seeds"), {"stages.pref.steps=5"});
  ASSERT_EQ(seeds_only.points, std::vector<std::string>{"base"});
  ASSERT_EQ(seeds_only.runs.size(), 3u);
  EXPECT_EQ(parse_experiment(seeds_only.runs[2].config_yaml, "c").stages[1].steps, 5);
  EXPECT_EQ(parse_experiment(seeds_only.runs[2].config_yaml, "c").seed, 5);
  EXPECT_FALSE(is_sweep_file(write_experiment("", "plain")));
}

TEST(SweepTest, BadSweepsFailBeforeAnythingRuns) {
  EXPECT_THROW(plan_sweep(write_experiment("sweep: {stages.nope.steps: [1, 2]}\n", "bad1"), {}), std::invalid_argument);
  EXPECT_THROW(plan_sweep(write_experiment("sweep: {stages.pref.steps: 5}\n", "bad2"), {}), std::invalid_argument);
  EXPECT_THROW(plan_sweep(write_experiment("sweep: {stages.pref.steps: []}\n", "bad3"), {}), std::invalid_argument);
  EXPECT_THROW(plan_sweep(write_experiment("seeds: [a]\n", "bad4"), {}), std::invalid_argument);
  // a point whose config is invalid (a typo in a stage key) is named before any run
  EXPECT_THROW(plan_sweep(write_experiment("sweep: {stages.pref.stepz: [1]}\n", "bad5"), {}), std::invalid_argument);
  // the base file itself still validates (prefengine validate on a sweep file)
  EXPECT_NO_THROW(parse_experiment(std::string(kBase) + "sweep: {stages.pref.steps: [1, 2]}\nseeds: [0]\n", "ok"));
}

TEST(SweepTest, RunSummaryFromAMetricsFile) {
  const std::string dir = testing::make_temp_dir("summary-run");
  testing::write_file(dir + "/metrics.jsonl",
                      R"({"stage":"sft","step":1,"loss":1.0}
{"stage":"pref","step":1,"probs/chosen":0.30,"probs/rejected":0.10,"probs/unseen":0.2,"probs/never_seen":0.1,"eval/pair_accuracy":0.5}
{"stage":"pref","step":20,"probs/chosen":0.70,"probs/rejected":0.0005,"probs/unseen":0.1,"probs/never_seen":0.05,"eval/pair_accuracy":0.75}
{"stage":"pref","step":40,"probs/chosen":0.60,"probs/rejected":0.0001,"probs/unseen":0.3,"probs/never_seen":0.2,"eval/pair_accuracy":0.5}
)");
  const RunMetricsSummary s = summarize_run(dir);
  EXPECT_EQ(s.stage, "pref");
  EXPECT_DOUBLE_EQ(s.values.at("start_chosen"), 0.30);
  EXPECT_DOUBLE_EQ(s.values.at("peak_chosen"), 0.70);
  EXPECT_DOUBLE_EQ(s.values.at("final_chosen"), 0.60);
  EXPECT_DOUBLE_EQ(s.values.at("final_unseen"), 0.3);
  EXPECT_DOUBLE_EQ(s.values.at("final_never_seen"), 0.2);
  EXPECT_DOUBLE_EQ(s.values.at("rejected_1e-3_step"), 20);
  EXPECT_DOUBLE_EQ(s.values.at("final_eval_accuracy"), 0.5);
  EXPECT_DOUBLE_EQ(s.values.at("eval_accuracy_change"), 0.25);  // (0.25 + 0.25) / 2
  EXPECT_DOUBLE_EQ(s.values.at("peak_chosen_step"), 20);
  // Half of the rise 0.30 -> 0.70 is lost at 0.50; the last row (0.60) is not there yet.
  EXPECT_EQ(s.values.count("half_gain_lost_step"), 0u);
  EXPECT_EQ(s.values.count("warn_degradation_step"), 0u);  // no run.json
}

TEST(SweepTest, RunSummaryHasTheTurnOfTheChosenCurveAndTheWarningSteps) {
  const std::string dir = testing::make_temp_dir("summary-warnings");
  testing::write_file(dir + "/metrics.jsonl",
                      R"({"stage":"pref","step":1,"probs/chosen":0.20,"logps/rejected":-1.5}
{"stage":"pref","step":20,"probs/chosen":0.90,"logps/rejected":-9.0}
{"stage":"pref","step":40,"probs/chosen":0.90,"logps/rejected":-20.0}
{"stage":"pref","step":60,"probs/chosen":0.56,"logps/rejected":-30.0}
{"stage":"pref","step":80,"probs/chosen":0.54,"logps/rejected":-41.5}
)");
  // Warnings of another stage are not this stage's; a property fired once per stage.
  testing::write_file(dir + "/run.json", R"({"status":"completed","stages":[
{"name":"sft","warnings":[{"property":"degradation","onset_step":3,"step":5,"detail":""}]},
{"name":"pref","warnings":[{"property":"drastic_drop","onset_step":20,"step":40,"detail":""},
                           {"property":"degradation","onset_step":40,"step":60,"detail":""}]}]})");
  const RunMetricsSummary s = summarize_run(dir);
  EXPECT_DOUBLE_EQ(s.values.at("peak_chosen_step"), 20);  // the first row at the peak
  EXPECT_DOUBLE_EQ(s.values.at("half_gain_lost_step"), 80);  // 0.54 <= (0.20 + 0.90) / 2 = 0.55 < 0.56
  EXPECT_DOUBLE_EQ(s.values.at("final_logps_rejected"), -41.5);
  EXPECT_DOUBLE_EQ(s.values.at("warn_drastic_drop_step"), 40);
  EXPECT_DOUBLE_EQ(s.values.at("warn_degradation_step"), 60);
  EXPECT_EQ(s.values.count("warn_dispersion_step"), 0u);
  // A damaged warning entry names run.json.
  testing::write_file(dir + "/run.json", R"({"stages":[{"name":"pref","warnings":[{"step":3}]}]})");
  try {
    summarize_run(dir);
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/run.json"), std::string::npos) << e.what();
  }
}

TEST(SweepTest, RunSummaryOfALanguageModelStageUsesItsPerTokenAndEvaluationMetrics) {
  const std::string dir = testing::make_temp_dir("summary-lm");
  testing::write_file(dir + "/metrics.jsonl",
                      R"({"stage":"sft","step":20,"loss":2.0}
{"stage":"dpo","step":1,"logps/chosen_per_token":-0.5,"beta/rejected":0.1,"eval/score_mean":1.25,"eval/accuracy":0.1,"eval/logps_chosen_per_token":-0.50,"eval/logps_rejected_per_token":-0.70}
{"stage":"dpo","step":2,"logps/chosen_per_token":-0.6,"beta/rejected":0.05}
{"stage":"dpo","step":4,"logps/chosen_per_token":-0.7,"beta/rejected":0.02,"eval/score_mean":1.5,"eval/accuracy":0.2,"eval/logps_chosen_per_token":-0.625,"eval/logps_rejected_per_token":-0.95}
)");
  const RunMetricsSummary s = summarize_run(dir);
  EXPECT_EQ(s.stage, "dpo");
  EXPECT_EQ(s.values.count("peak_chosen"), 0u);  // no probs/* on a language model
  EXPECT_DOUBLE_EQ(s.values.at("final_eval_score"), 1.5);
  EXPECT_DOUBLE_EQ(s.values.at("final_eval_correct"), 0.2);
  EXPECT_DOUBLE_EQ(s.values.at("eval_chosen_per_token_change"), -0.125);
  EXPECT_DOUBLE_EQ(s.values.at("eval_rejected_per_token_change"), -0.25);
  EXPECT_DOUBLE_EQ(s.values.at("final_beta_rejected"), 0.02);
}

TEST(SweepTest, SummaryTableHasMeanAndSampleStdOverSeeds) {
  const std::string dir = testing::make_temp_dir("summary-table");
  SummaryRow a;
  a.point = "beta=0.1";
  a.seeds = 3;
  a.samples["peak_chosen"] = {1, 2, 4};             // mean 7/3, std sqrt(7/3) = 1.5275
  a.samples["rejected_1e-3_step"] = {100, 300};     // 2 of 3 seeds reached it
  SummaryRow b;
  b.point = "beta=0.5";
  b.seeds = 1;
  b.failed = 1;
  b.samples["peak_chosen"] = {0.5};
  write_sweep_summary(dir, {a, b});
  const std::string csv = testing::read_file(dir + "/summary.csv");
  EXPECT_NE(csv.find("point,seeds,failed,peak_chosen_mean,peak_chosen_std,peak_chosen_n,rejected_1e-3_step_mean"),
            std::string::npos)
      << csv;
  EXPECT_NE(csv.find("\"beta=0.1\",3,0,2.33333,1.52753,3,200,141.421,2"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\"beta=0.5\",1,1,0.5,0,1,,,0"), std::string::npos) << csv;
  const std::string md = testing::read_file(dir + "/summary.md");
  EXPECT_NE(md.find("| beta=0.1 | 3 | 2.3333 ± 1.5275 | 200 ± 141.4214 (2/3) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| beta=0.5 | 1 (1 failed) | 0.5000 ± 0.0000 | never |"), std::string::npos) << md;
}

TEST(SweepTest, OneCommandRunsEveryPointAndSeedInParallel) {
  const std::string path = write_experiment("sweep: {stages.pref.loss.beta: [0.1, 0.5]}\nseeds: [0, 1]\n", "cli");
  const std::string out = testing::make_temp_dir("cli-out") + "/sweep";
  const std::string cmd = std::string(PREFENGINE_CLI) + " run " + path + " --jobs 2 --output " + out +
                          " --log-level warn > " + out + ".stdout 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << testing::read_file(out + ".stdout");
  for (const char* run : {"beta=0.1-seed0", "beta=0.1-seed1", "beta=0.5-seed0", "beta=0.5-seed1"}) {
    const std::string config = testing::read_file(out + "/" + run + "/config.yaml");
    EXPECT_NE(config.find("sweep_point:"), std::string::npos) << run;
    EXPECT_FALSE(testing::read_metrics(out + "/" + run, "pref").empty()) << run;
  }
  EXPECT_NE(testing::read_file(out + "/beta=0.5-seed1/config.yaml").find("seed: 1"), std::string::npos);
  const std::string csv = testing::read_file(out + "/summary.csv");
  EXPECT_NE(csv.find("\"beta=0.1\",2,0,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\"beta=0.5\",2,0,"), std::string::npos) << csv;
  // seeds differ, so the std over seeds is not zero
  const auto rows0 = testing::read_metrics(out + "/beta=0.1-seed0", "pref");
  const auto rows1 = testing::read_metrics(out + "/beta=0.1-seed1", "pref");
  EXPECT_NE(rows0.back()["loss"].get<double>(), rows1.back()["loss"].get<double>());
}

TEST(SweepTest, ABadPluginOptionInAnyPointFailsBeforeAnythingRuns) {
  const std::string path = write_experiment("sweep: {stages.pref.loss.beta: [0.1, -1]}\nseeds: [0, 1]\n", "cli-bad");
  const std::string out = testing::make_temp_dir("cli-bad-out") + "/sweep";
  const std::string cmd = std::string(PREFENGINE_CLI) + " run " + path + " --output " + out + " > " + out +
                          ".stdout 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_NE(testing::read_file(out + ".stdout").find("beta=-1"), std::string::npos) << testing::read_file(out + ".stdout");
  EXPECT_FALSE(boost::filesystem::exists(out));
}

}  // namespace
}  // namespace prefengine
