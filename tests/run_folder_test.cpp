// Run folders: --overwrite deletes only a prefengine run that holds none of the experiment's
// inputs, a live run is locked against a second run or resume, sweep points get distinct folders.
#include <gtest/gtest.h>

#include <unistd.h>

#include <set>
#include <string>

#include <boost/filesystem.hpp>

#include "engine/sweep/sweep_plan.h"
#include "engine/train/run_directory.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

using Result = testing::CommandResult;

Result run(const std::string& args) { return testing::run_shell(std::string(PREFENGINE_CLI) + " " + args + " 2>&1"); }

const std::string kFast = " --set stages.sft.steps=3 --set stages.dpo.steps=3 --log-level warn";

TEST(RunFolderTest, OverwriteRefusesAFolderThatIsNotARun) {
  const std::string dir = testing::make_temp_dir("not-a-run");
  testing::write_file(dir + "/notes.txt", "precious\n");
  const Result r = run("run configs/toy/dpo.yaml --output " + dir + " --overwrite" + kFast);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(dir + ": it is not a prefengine run"), std::string::npos) << r.output;
  EXPECT_EQ(testing::read_file(dir + "/notes.txt"), "precious\n");
}

TEST(RunFolderTest, OverwriteReplacesAFinishedRun) {
  const std::string dir = testing::make_temp_dir("rerun") + "/run";
  ASSERT_EQ(run("run configs/toy/dpo.yaml --output " + dir + kFast).code, 0);
  testing::write_file(dir + "/stale.txt", "from the first run\n");
  const Result r = run("run configs/toy/dpo.yaml --output " + dir + " --overwrite" + kFast);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/stale.txt"));
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/dpo/model.pt"));
  EXPECT_EQ(testing::read_metrics(dir).size(), 4u);  // sft: steps 1 and 3; dpo: steps 1 and 3
}

TEST(RunFolderTest, OverwriteRefusesARunHoldingAnInputOfTheExperiment) {
  const std::string dir = testing::make_temp_dir("input-inside") + "/run";
  ASSERT_EQ(run("run configs/toy/dpo.yaml --output " + dir + kFast).code, 0);
  // The experiment's own file and a data file inside the folder it would delete.
  fs::copy_file(testing::source_path("configs/toy/dpo.yaml"), dir + "/exp.yaml");
  fs::copy_file(testing::source_path("configs/toy/data/pairs.jsonl"), dir + "/pairs.jsonl");
  Result r = run("run " + dir + "/exp.yaml --output " + dir + " --overwrite" + kFast);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("an input of the experiment, so --overwrite will not delete it"), std::string::npos)
      << r.output;
  r = run("run configs/toy/dpo.yaml --output " + dir + " --overwrite --set stages.dpo.data.path=" + dir +
          "/pairs.jsonl" + kFast);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("holds '" + dir + "/pairs.jsonl', an input"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir + "/exp.yaml"));
  EXPECT_TRUE(fs::exists(dir + "/pairs.jsonl"));
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/dpo/model.pt"));
}

TEST(RunFolderTest, OverwriteRefusesTheWorkingDirectoryAndWhatHoldsIt) {
  // A finished run's folder, entered by the user: neither it nor a folder above the working
  // directory is deleted.
  const std::string dir = testing::make_temp_dir("cwd") + "/run";
  ASSERT_EQ(run("run configs/toy/dpo.yaml --output " + dir + kFast).code, 0);
  boost::filesystem::create_directories(dir + "/notes");
  const std::string absolute_data = " --set stages.sft.data.path=" +
                                    testing::source_path("configs/toy/data/sft_scenario1.jsonl") +
                                    " --set stages.dpo.data.path=" + testing::source_path("configs/toy/data/pairs.jsonl");
  for (const std::string& inside : {dir, dir + "/notes"}) {
    const Result r = run("--version >/dev/null; cd " + inside + " && " + PREFENGINE_CLI + " run " +
                         testing::source_path("configs/toy/dpo.yaml") + " --output " + dir + " --overwrite" +
                         absolute_data + kFast);
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find(dir + ": it holds the working directory"), std::string::npos) << r.output;
  }
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/dpo/model.pt"));
}

TEST(RunFolderTest, ALiveRunIsLockedAgainstASecondRunAndAResume) {
  const std::string dir = testing::make_temp_dir("locked") + "/run";
  ASSERT_EQ(run("run configs/toy/dpo.yaml --output " + dir + kFast).code, 0);
  const std::string before = testing::read_file(dir + "/metrics.jsonl");
  {
    const RunDirectoryLock live(dir);  // this test process plays the live run
    const std::string pid = "pid " + std::to_string(::getpid());
    Result r = run("run --resume " + dir + " --log-level warn");
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find(dir + ": the run is in use by another process (" + pid + ")"), std::string::npos)
        << r.output;
    r = run("run configs/toy/dpo.yaml --output " + dir + " --overwrite" + kFast);
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_NE(r.output.find(pid), std::string::npos) << r.output;
    // In one process, too: the lock is per open file, not per process.
    EXPECT_THROW(RunDirectoryLock second(dir), std::invalid_argument);
  }
  EXPECT_EQ(testing::read_file(dir + "/metrics.jsonl"), before);
  EXPECT_NO_THROW(RunDirectoryLock again(dir));  // released with its holder
}

TEST(RunFolderTest, ResumeOfAMissingFolderIsOneLine) {
  const Result r = run("run --resume /nonexistent/run-folder");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.output, "error: --resume /nonexistent/run-folder: no such run directory\n");
}

TEST(RunFolderTest, DefaultFoldersAreFreshEvenWithinOneSecond) {
  const std::string base = testing::make_temp_dir("defaults");
  const fs::path cwd = fs::current_path();
  fs::current_path(base);
  RunDirectoryOptions options;
  const std::string a = prepare_run_directory("same", options);
  const std::string b = prepare_run_directory("same", options);
  fs::current_path(cwd);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("runs/same-", 0), 0u) << a;
  EXPECT_TRUE(fs::is_directory(base + "/" + b + "/checkpoints"));
}

TEST(RunFolderTest, SweepPointsWhoseNamesCollideGetDistinctFolders) {
  // Two data files with one stem in different folders label the same; a seed listed twice too.
  const std::string dir = testing::make_temp_dir("sweep-names");
  fs::create_directories(dir + "/a");
  fs::create_directories(dir + "/b");
  fs::copy_file(testing::source_path("configs/toy/data/pairs.jsonl"), dir + "/a/pairs.jsonl");
  fs::copy_file(testing::source_path("configs/toy/data/pairs.jsonl"), dir + "/b/pairs.jsonl");
  std::string yaml = testing::read_file(testing::source_path("configs/toy/dpo.yaml"));
  yaml += "sweep: {stages.dpo.data.path: [" + dir + "/a/pairs.jsonl, " + dir + "/b/pairs.jsonl]}\nseeds: [3, 3]\n";
  const std::string path = testing::write_file(dir + "/sweep.yaml", yaml);
  const SweepPlan plan = plan_sweep(path, {});
  ASSERT_EQ(plan.runs.size(), 4u);
  std::set<std::string> names;
  for (const auto& r : plan.runs) names.insert(r.name);
  EXPECT_EQ(names.size(), 4u);
  EXPECT_EQ(plan.runs[0].name, "path=pairs-seed3");
  EXPECT_EQ(plan.runs[1].name, "path=pairs-seed3-2");
  EXPECT_EQ(plan.runs[2].name, "path=pairs-seed3-3");
}

}  // namespace
}  // namespace prefengine
