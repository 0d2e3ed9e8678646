// Signals and processes, through the executable: SIGTERM and SIGINT stop `prefengine run` at the
// next step boundary with a checkpoint of that step, run.json "interrupted" and exit 143 / 130;
// `--resume` then ends with the metrics of an uninterrupted run. The same through `--nproc 2`
// (the launcher forwards the signal to every rank, and every rank stops at the same step), and
// `run --resume DIR --nproc 2` runs two ranks. Every wait is bounded.
//
// The signal arrives at a known step: PREFENGINE_TEST_FAULT=RANK:STEP:wait makes that rank wait
// after optimizer step STEP until a signal comes (the test sends it from outside once the rank says
// so); RANK:STEP:sigterm makes the rank send it to itself.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace prefengine {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

struct Child {
  pid_t pid = -1;
  std::string log;
};

// Starts the CLI with `args`, stdout and stderr into `log`, with extra environment `env`.
Child spawn(const std::vector<std::string>& args, const std::string& log,
            const std::vector<std::pair<std::string, std::string>>& env = {}) {
  Child c;
  c.log = log;
  c.pid = ::fork();
  if (c.pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> argv{const_cast<char*>(PREFENGINE_CLI)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(PREFENGINE_CLI, argv.data());
    std::_Exit(127);
  }
  return c;
}

// True once `text` is in the child's log; false after `seconds`.
bool wait_for_text(const Child& c, const std::string& text, double seconds) {
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    if (testing::read_file(c.log).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// The wait status; after `seconds` the child is killed and -1 returned.
int wait_for_exit(const Child& c, double seconds) {
  const auto start = Clock::now();
  while (seconds_since(start) < seconds) {
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(c.pid, SIGKILL);
  ::waitpid(c.pid, nullptr, 0);
  return -1;
}

// Runs the CLI to its end (bounded); returns its exit status (-1 on a timeout or a signal).
int run_cli(const std::vector<std::string>& args, const std::string& log, double seconds = 120) {
  const int status = wait_for_exit(spawn(args, log), seconds);
  return status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(testing::read_file(path)); }

// Every row and every value of two runs' metrics.jsonl equal (to rounding: a resumed run repeats
// the same float operations, so the tolerance is only for the JSON round trip).
void expect_same_metrics(const std::string& a_dir, const std::string& b_dir) {
  const auto a = testing::read_metrics(a_dir);
  const auto b = testing::read_metrics(b_dir);
  ASSERT_EQ(a.size(), b.size()) << a_dir << " vs " << b_dir;
  ASSERT_FALSE(a.empty());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].size(), b[i].size()) << a[i].dump() << "\n" << b[i].dump();
    for (auto it = a[i].begin(); it != a[i].end(); ++it) {
      ASSERT_TRUE(b[i].contains(it.key())) << "row " << i << ": " << it.key();
      if (it.value().is_number_float()) {
        const double x = it.value().get<double>(), y = b[i][it.key()].get<double>();
        EXPECT_NEAR(y, x, 1e-12 + 1e-9 * std::abs(x)) << "row " << i << " " << it.key();
      } else {
        EXPECT_EQ(it.value(), b[i][it.key()]) << "row " << i << " " << it.key();
      }
    }
  }
}

// What an interruption leaves: run.json "interrupted" with the signal and the step, and the
// checkpoint of that step named by checkpoints/latest.
void expect_interrupted_at(const std::string& run, const std::string& signal, int64_t global_step,
                           const std::string& stage, int64_t step) {
  const auto status = read_json(run + "/run.json");
  EXPECT_EQ(status["status"], "interrupted") << status.dump();
  EXPECT_EQ(status["signal"], signal) << status.dump();
  EXPECT_EQ(status["global_step"], global_step) << status.dump();
  EXPECT_EQ(testing::read_file(run + "/checkpoints/latest"), stage + "\n");
  const auto state = read_json(run + "/checkpoints/" + stage + "/state.json");
  EXPECT_EQ(state["step"], step) << state.dump();
  EXPECT_EQ(state["global_step"], global_step) << state.dump();
  // The metrics row of the last logged step is there; none after the checkpoint.
  const auto rows = testing::read_metrics(run);
  ASSERT_FALSE(rows.empty());
  EXPECT_LE(rows.back()["global_step"].get<int64_t>(), global_step);
}

class SignalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir("signals");
    exp_ = testing::write_file(dir_ + "/exp.yaml", testing::toy_sft_dpo_yaml("sig"));
  }
  // The uninterrupted run to compare with (1 or 2 ranks).
  std::string whole(int nproc) {
    const std::string out = dir_ + "/whole" + std::to_string(nproc);
    std::vector<std::string> args{"run", exp_, "--output", out};
    if (nproc > 1) args.insert(args.end(), {"--nproc", std::to_string(nproc)});
    EXPECT_EQ(run_cli(args, out + ".log"), 0) << testing::read_file(out + ".log");
    return out;
  }
  std::string dir_, exp_;
};

TEST_F(SignalTest, SigtermStopsAtTheStepBoundaryWithACheckpointAndResumeMatches) {
  const std::string run = dir_ + "/run";
  Child c = spawn({"run", exp_, "--output", run}, dir_ + "/run.out", {{"PREFENGINE_TEST_FAULT", "0:12:wait"}});
  ASSERT_TRUE(wait_for_text(c, "PREFENGINE_TEST_FAULT: rank 0 at step 12: wait", 60)) << testing::read_file(c.log);
  ::kill(c.pid, SIGTERM);
  const int status = wait_for_exit(c, 60);
  const std::string out = testing::read_file(c.log);
  ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 143) << out;
  EXPECT_NE(out.find("interrupted by SIGTERM at step 12 (at stage 'sft' step 12 of 30); resume with: prefengine run "
                     "--resume " + run + "\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("error:"), std::string::npos) << out;
  expect_interrupted_at(run, "SIGTERM", 12, "sft", 12);

  ASSERT_EQ(run_cli({"run", "--resume", run}, dir_ + "/resume.out"), 0) << testing::read_file(dir_ + "/resume.out");
  EXPECT_EQ(read_json(run + "/run.json")["status"], "completed");
  expect_same_metrics(whole(1), run);
}

TEST_F(SignalTest, SigintInTheSecondStageExits130AndResumeMatches) {
  const std::string run = dir_ + "/run";
  // Global step 37 is step 7 of the DPO stage.
  Child c = spawn({"run", exp_, "--output", run}, dir_ + "/run.out", {{"PREFENGINE_TEST_FAULT", "0:37:wait"}});
  ASSERT_TRUE(wait_for_text(c, "PREFENGINE_TEST_FAULT: rank 0 at step 37: wait", 60)) << testing::read_file(c.log);
  ::kill(c.pid, SIGINT);
  const int status = wait_for_exit(c, 60);
  const std::string out = testing::read_file(c.log);
  ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 130) << out;
  EXPECT_NE(out.find("interrupted by SIGINT at step 37 (at stage 'dpo' step 7 of 40)"), std::string::npos) << out;
  expect_interrupted_at(run, "SIGINT", 37, "dpo", 7);
  // The finished stage is still listed in run.json.
  EXPECT_EQ(read_json(run + "/run.json")["stages"][0]["name"], "sft");

  ASSERT_EQ(run_cli({"run", "--resume", run}, dir_ + "/resume.out"), 0) << testing::read_file(dir_ + "/resume.out");
  expect_same_metrics(whole(1), run);
}

TEST_F(SignalTest, ASignalAtTheLastStepOfAStageResumesWithTheNextStage) {
  const std::string run = dir_ + "/run";
  const int status = wait_for_exit(spawn({"run", exp_, "--output", run}, dir_ + "/run.out",
                                         {{"PREFENGINE_TEST_FAULT", "0:30:sigterm"}}),
                                   60);
  ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 143) << testing::read_file(dir_ + "/run.out");
  expect_interrupted_at(run, "SIGTERM", 30, "sft", 30);
  // The stage ended and is recorded; the run stopped before the next one.
  EXPECT_NE(testing::read_file(dir_ + "/run.out").find("interrupted by SIGTERM at step 30 (before stage 'dpo')"),
            std::string::npos)
      << testing::read_file(dir_ + "/run.out");
  EXPECT_EQ(read_json(run + "/run.json")["stages"][0]["name"], "sft");
  ASSERT_EQ(run_cli({"run", "--resume", run}, dir_ + "/resume.out"), 0) << testing::read_file(dir_ + "/resume.out");
  expect_same_metrics(whole(1), run);
}

TEST_F(SignalTest, LauncherForwardsSigtermToEveryRankAndResumeRunsTwoRanks) {
  const std::string run = dir_ + "/run";
  // Rank 1 waits at step 12; rank 0 waits for it in the step's collectives.
  Child c = spawn({"run", exp_, "--output", run, "--nproc", "2"}, dir_ + "/run.out",
                  {{"PREFENGINE_TEST_FAULT", "1:12:wait"}});
  ASSERT_TRUE(wait_for_text(c, "PREFENGINE_TEST_FAULT: rank 1 at step 12: wait", 60)) << testing::read_file(c.log);
  ::kill(c.pid, SIGTERM);  // to the launcher alone
  const int status = wait_for_exit(c, 60);
  const std::string out = testing::read_file(c.log);
  ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 143) << out;
  // Rank 0 says it once; no rank and not the launcher reports a failure.
  const std::string line = "interrupted by SIGTERM at step 12 (at stage 'sft' step 12 of 30); resume with: prefengine "
                           "run --resume " + run + " --nproc 2\n";
  EXPECT_NE(out.find(line), std::string::npos) << out;
  EXPECT_EQ(out.find(line), out.rfind(line)) << out;
  EXPECT_EQ(out.find("error:"), std::string::npos) << out;
  expect_interrupted_at(run, "SIGTERM", 12, "sft", 12);
  EXPECT_EQ(read_json(run + "/run.json")["world_size"], 2);

  ASSERT_EQ(run_cli({"run", "--resume", run, "--nproc", "2"}, dir_ + "/resume.out"), 0)
      << testing::read_file(dir_ + "/resume.out");
  const std::string resume_out = testing::read_file(dir_ + "/resume.out");
  EXPECT_NE(resume_out.find("data parallel: 2 ranks over gloo"), std::string::npos) << resume_out;
  const auto final_status = read_json(run + "/run.json");
  EXPECT_EQ(final_status["status"], "completed");
  EXPECT_EQ(final_status["world_size"], 2);
  expect_same_metrics(whole(2), run);
}

TEST_F(SignalTest, ASignalToOneRankStopsEveryRankAtTheSameStep) {
  // Only rank 1 gets SIGTERM (as from a scheduler): rank 0, the writer, must still stop at step 20
  // and write its checkpoint, and the launcher must not call it a failure.
  const std::string run = dir_ + "/run";
  const int status = wait_for_exit(spawn({"run", exp_, "--output", run, "--nproc", "2"}, dir_ + "/run.out",
                                         {{"PREFENGINE_TEST_FAULT", "1:20:sigterm"}}),
                                   60);
  const std::string out = testing::read_file(dir_ + "/run.out");
  ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status << "\n" << out;
  EXPECT_EQ(WEXITSTATUS(status), 143) << out;
  EXPECT_EQ(out.find("error:"), std::string::npos) << out;
  expect_interrupted_at(run, "SIGTERM", 20, "sft", 20);
}

// A hung rank makes its peer time out: the launcher names the rank that stopped, not the one that
// gave up waiting for it (rank 1 hung: rank 0 times out; rank 0 hung: rank 1 does).
TEST_F(SignalTest, LauncherNamesTheHungRankNotTheOneThatTimedOut) {
  for (const int hung : {1, 0}) {
    const std::string run = dir_ + "/hang" + std::to_string(hung);
    const auto start = Clock::now();
    const int status = wait_for_exit(spawn({"run", exp_, "--output", run, "--nproc", "2", "--set", "distributed.timeout_s=3"},
                                           run + ".out", {{"PREFENGINE_TEST_FAULT", std::to_string(hung) + ":10:hang"}}),
                                     90);
    const std::string out = testing::read_file(run + ".out");
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << status << "\n" << out;
    EXPECT_EQ(WEXITSTATUS(status), 1) << out;
    const int waiter = 1 - hung;
    EXPECT_NE(out.find("error: --nproc 2: rank " + std::to_string(hung) + " stopped responding (rank " +
                       std::to_string(waiter) + " waited for it until distributed.timeout_s, then exited with status 1)"),
              std::string::npos)
        << out;
    EXPECT_LT(seconds_since(start), 60.0);
  }
}

}  // namespace
}  // namespace prefengine
