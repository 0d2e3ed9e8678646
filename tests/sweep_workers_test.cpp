// Sweeps with several runs per process (engine/sweep/sweep_worker.h): each run's metrics and
// final checkpoint are the same, byte for byte, as the same config run alone by `prefengine run`;
// a run that fails is reported while the worker goes on with the others; a worker that dies loses
// nothing (its run runs again in a process of its own); --runs-per-process 1 (a process per run)
// still works and gives the same runs.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/sweep/sweep_plan.h"
#include "engine/sweep/sweep_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

// Two stages of a few steps, held-out evaluation on the preference stage.
const char* kBase = R"(name: batched
seed: 7
threads: 1
model: {plugin: toy_mlp, hidden: 8}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 10}
  - {name: pref, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     eval: {path: configs/toy/data/pairs_heldout.jsonl}, optimizer: {lr: 1.0e-3}, batch_size: 16, steps: 30, log_every: 5}
)";

std::string write_experiment(const std::string& dir, const std::string& extra) {
  return testing::write_file(dir + "/exp.yaml", std::string(kBase) + extra);
}

nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(testing::read_file(path));
}

// After its first line ("# resolved from <the config file>").
std::string config_body(const std::string& run) {
  const std::string text = testing::read_file(run + "/config.yaml");
  return text.substr(text.find('\n') + 1);
}

// Metrics (without timing) and the final checkpoint's files of two run directories are equal.
void expect_same_run(const std::string& a, const std::string& b) {
  const auto rows_a = testing::read_metrics(a);
  const auto rows_b = testing::read_metrics(b);
  ASSERT_EQ(rows_a.size(), rows_b.size()) << a << " vs " << b;
  ASSERT_FALSE(rows_a.empty()) << a;
  for (size_t i = 0; i < rows_a.size(); ++i) {
    EXPECT_EQ(testing::without_timing(rows_a[i]), testing::without_timing(rows_b[i])) << a << " row " << i;
  }
  for (const char* file : {"model.pt", "optimizer.pt", "state.json"}) {
    const std::string fa = testing::read_file(a + "/checkpoints/pref/" + file);
    ASSERT_FALSE(fa.empty()) << a << "/checkpoints/pref/" << file;
    EXPECT_TRUE(fa == testing::read_file(b + "/checkpoints/pref/" + file)) << a << " vs " << b << ": " << file;
  }
  EXPECT_EQ(config_body(a), config_body(b));
  const auto status_a = read_json(a + "/run.json");
  EXPECT_EQ(status_a["status"], "completed");
  EXPECT_EQ(status_a["global_step"], read_json(b + "/run.json")["global_step"]);
}

TEST(SweepWorkersTest, RunsSharingAProcessAreIdenticalToLoneRuns) {
  const std::string dir = testing::make_temp_dir("batched");
  const std::string path = write_experiment(dir, "sweep: {stages.pref.loss.beta: [0.1, 0.5]}\nseeds: [0, 1]\n");
  // One worker: its second to fourth runs follow other runs in the same process.
  const auto sweep = testing::run_cli("run " + path + " --jobs 1 --output " + dir + "/sweep");
  ASSERT_EQ(sweep.code, 0) << sweep.output;
  const auto status = read_json(dir + "/sweep/run.json");
  EXPECT_EQ(status["runs_per_process"], kToyRunsPerProcess);  // auto: toy_mlp runs share their process
  EXPECT_EQ(status["completed"], 4);
  EXPECT_EQ(status["failed"], 0);
  EXPECT_TRUE(fs::exists(dir + "/sweep/logs/worker-1.log"));
  EXPECT_FALSE(fs::exists(dir + "/sweep/logs/worker-2.log"));
  // Every run as a `prefengine run` process of its own (--runs-per-process 1, today's way).
  const auto alone = testing::run_cli("run " + path + " --jobs 2 --runs-per-process 1 --output " + dir + "/alone");
  ASSERT_EQ(alone.code, 0) << alone.output;
  EXPECT_EQ(read_json(dir + "/alone/run.json")["runs_per_process"], 1);
  EXPECT_FALSE(fs::exists(dir + "/alone/logs/worker-1.log"));
  for (const char* run : {"beta=0.1-seed0", "beta=0.1-seed1", "beta=0.5-seed0", "beta=0.5-seed1"}) {
    expect_same_run(dir + "/sweep/" + run, dir + "/alone/" + run);
    // The run's console output (its run directory, printed at the end) is in its own log.
    EXPECT_NE(testing::read_file(dir + "/sweep/logs/" + run + ".log").find(dir + "/sweep/" + run), std::string::npos);
    EXPECT_TRUE(testing::read_metrics(dir + "/sweep/" + run, "pref").back().contains("eval/pair_accuracy")) << run;
  }
  // The worker's last run against the same config file run by hand: config.yaml too is the same.
  const std::string last = "beta=0.5-seed1";
  const auto lone = testing::run_cli("run " + dir + "/sweep/configs/" + last + ".yaml --output " + dir + "/lone --log-level warn");
  ASSERT_EQ(lone.code, 0) << lone.output;
  expect_same_run(dir + "/sweep/" + last, dir + "/lone");
  EXPECT_EQ(testing::read_file(dir + "/sweep/" + last + "/config.yaml"), testing::read_file(dir + "/lone/config.yaml"));
  // Different points and seeds differ (the comparisons above are not between equal runs).
  EXPECT_NE(testing::read_file(dir + "/sweep/beta=0.1-seed0/checkpoints/pref/model.pt"),
            testing::read_file(dir + "/sweep/beta=0.1-seed1/checkpoints/pref/model.pt"));
  EXPECT_NE(testing::read_file(dir + "/sweep/beta=0.1-seed0/checkpoints/pref/model.pt"),
            testing::read_file(dir + "/sweep/beta=0.5-seed0/checkpoints/pref/model.pt"));
}

// A checkpoint folder whose model.pt is damaged: validation (which trusts a folder of a run with
// the same model) passes, loading it at the start of the stage fails.
std::string damaged_checkpoint(const std::string& dir) {
  const std::string run = dir + "/source";
  const auto lone = testing::run_cli("run " + write_experiment(dir, "") + " --set stages.pref.steps=2 --output " + run +
                                     " --log-level warn");
  EXPECT_EQ(lone.code, 0) << lone.output;
  fs::rename(run + "/checkpoints/sft", run + "/checkpoints/damaged");  // a point name of its own
  testing::write_file(run + "/checkpoints/damaged/model.pt", "not a checkpoint\n");
  return run + "/checkpoints/damaged";
}

TEST(SweepWorkersTest, AFailingRunIsReportedAndTheOthersComplete) {
  const std::string dir = testing::make_temp_dir("batched-fail");
  const std::string bad = damaged_checkpoint(dir);
  // The bad point comes first: the worker fails two runs, then goes on with the good ones.
  const std::string path = write_experiment(dir, "sweep: {stages.pref.init_from: [" + bad + ", sft]}\nseeds: [0, 1]\n");
  const std::string out = dir + "/sweep";
  const auto sweep = testing::run_cli("run " + path + " --jobs 1 --output " + out + " --log-level warn");
  EXPECT_EQ(sweep.code, 1) << sweep.output;  // some runs failed
  const auto status = read_json(out + "/run.json");
  EXPECT_EQ(status["status"], "completed");
  EXPECT_EQ(status["completed"], 2);
  EXPECT_EQ(status["failed"], 2);
  ASSERT_EQ(status["failed_runs"].size(), 2u) << status.dump();
  std::vector<std::string> failed;
  for (const auto& entry : status["failed_runs"]) {
    failed.push_back(entry["run"]);
    const std::string error = entry["error"];
    EXPECT_EQ(error.rfind("error: ", 0), 0u) << error;
    EXPECT_NE(error.find("init_from"), std::string::npos) << error;
    EXPECT_NE(testing::read_file(entry["log"]).find(error), std::string::npos);
    EXPECT_EQ(read_json(out + "/" + entry["run"].get<std::string>() + "/run.json")["status"], "failed");
  }
  EXPECT_EQ(failed, (std::vector<std::string>{"init_from=damaged-seed0", "init_from=damaged-seed1"}));
  EXPECT_FALSE(fs::exists(out + "/logs/worker-2.log"));  // the one worker went on after the failures
  const std::string csv = testing::read_file(out + "/summary.csv");
  EXPECT_NE(csv.find("\"init_from=sft\",2,0,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\"init_from=damaged\",0,2,"), std::string::npos) << csv;
  const std::string md = testing::read_file(out + "/summary.md");
  EXPECT_NE(md.find("## Failed runs"), std::string::npos) << md;
  EXPECT_NE(md.find("- init_from=damaged-seed1: error: "), std::string::npos) << md;
  for (const char* run : {"init_from=sft-seed0", "init_from=sft-seed1"}) {
    EXPECT_EQ(read_json(out + "/" + run + "/run.json")["status"], "completed") << run;
    EXPECT_FALSE(testing::read_metrics(out + "/" + run, "pref").empty()) << run;
  }
}

TEST(SweepWorkersTest, AWorkerThatDiesLosesNoRun) {
  const std::string dir = testing::make_temp_dir("batched-crash");
  // An executable that, the first time it is a worker, takes its first run and dies (SIGKILL)
  // without running it; otherwise it is prefengine.
  const std::string wrapper = testing::write_file(dir + "/wrapper.sh", "#!/bin/sh\n"
      "if [ \"$2\" = --sweep-worker ] && mkdir " + dir + "/died 2>/dev/null; then\n"
      "  read -r line\n  kill -KILL $$\nfi\n"
      "exec " + std::string(PREFENGINE_CLI) + " \"$@\"\n");
  ::chmod(wrapper.c_str(), 0755);
  const std::string path = write_experiment(dir, "seeds: [0, 1, 2]\n");
  SweepOptions options;
  options.directory = dir + "/sweep";
  options.jobs = 1;
  options.executable = wrapper;
  const SweepResult result = run_sweep(plan_sweep(path, {}), options);
  EXPECT_EQ(result.completed, 3);
  EXPECT_EQ(result.failed, 0);
  EXPECT_TRUE(fs::exists(dir + "/died"));
  // The dead worker's run ran again alone; its log says why; the other runs went to a new worker.
  const std::string log = testing::read_file(dir + "/sweep/logs/base-seed0.log");
  EXPECT_NE(log.find("sweep: the worker process running this run was killed by signal 9"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(dir + "/sweep/logs/worker-2.log"));
  for (const char* run : {"base-seed0", "base-seed1", "base-seed2"}) {
    EXPECT_EQ(read_json(dir + "/sweep/" + run + "/run.json")["status"], "completed") << run;
  }
  const std::string csv = testing::read_file(dir + "/sweep/summary.csv");
  EXPECT_NE(csv.find("\"base\",3,0,"), std::string::npos) << csv;
}

}  // namespace
}  // namespace prefengine
