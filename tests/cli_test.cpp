// The prefengine executable: exit codes and one-line errors.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

#include "prefengine/plugin.h"
#include "test_util.h"

namespace prefengine {
namespace {

struct Result {
  int code;
  std::string output;
};

Result run_raw(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WEXITSTATUS(status), output};
}

Result run(const std::string& args) { return run_raw(std::string(PREFENGINE_CLI) + " " + args + " 2>&1"); }

// The same with `env ENV_ARGS` in front (ENV_ARGS: env's -u NAME and NAME=VALUE arguments).
Result run_with_env(const std::string& env_args, const std::string& args) {
  return run_raw("env " + env_args + " " + std::string(PREFENGINE_CLI) + " " + args + " 2>&1");
}

TEST(CliTest, VersionAndHelp) {
  Result v = run("--version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.output.find("prefengine 0."), std::string::npos) << v.output;
  for (const char* command : {"run", "validate", "plugins"}) {
    Result h = run(std::string(command) + " --help");
    EXPECT_EQ(h.code, 0) << command;
    EXPECT_NE(h.output.find(std::string("usage: prefengine ") + command), std::string::npos) << h.output;
  }
  EXPECT_EQ(run("--help").code, 0);
}

// engine/cli/main.cpp restarts the process once with its runtime defaults unless the user set
// them (or PREFENGINE_NO_REEXEC); --version prints what the process runs with.
TEST(CliTest, RuntimeDefaultsAreSetOnceAndTheUsersWin) {
  const std::string clean = "-u OMP_WAIT_POLICY -u OPENBLAS_CORETYPE -u LD_LIBRARY_PATH -u PREFENGINE_NO_REEXEC ";
  const Result defaults = run_with_env(clean, "--version");
  EXPECT_NE(defaults.output.find("OMP_WAIT_POLICY=passive"), std::string::npos) << defaults.output;
  const std::string openmp = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
  if (access((openmp + "/libopenblas.so.0").c_str(), R_OK) == 0) {  // installed by scripts/setup.sh
    EXPECT_NE(defaults.output.find("blas: " + openmp + "/libopenblas.so.0"), std::string::npos) << defaults.output;
  } else {
    EXPECT_NE(defaults.output.find("LD_LIBRARY_PATH=(unset)"), std::string::npos) << defaults.output;
  }
  const Result user = run_with_env(clean + "OMP_WAIT_POLICY=active LD_LIBRARY_PATH=/nonexistent", "--version");
  EXPECT_NE(user.output.find("OMP_WAIT_POLICY=active"), std::string::npos) << user.output;
  EXPECT_NE(user.output.find("LD_LIBRARY_PATH=/nonexistent"), std::string::npos) << user.output;
  EXPECT_EQ(user.output.find("openblas-openmp"), std::string::npos) << user.output;
  const Result off = run_with_env(clean + "PREFENGINE_NO_REEXEC=1", "--version");
  EXPECT_NE(off.output.find("OMP_WAIT_POLICY=(unset)"), std::string::npos) << off.output;
  EXPECT_NE(off.output.find("LD_LIBRARY_PATH=(unset)"), std::string::npos) << off.output;
}

TEST(CliTest, PluginsListsNameKindAbiAndFile) {
  Result r = run("plugins");
  EXPECT_EQ(r.code, 0);
  const std::string abi = std::to_string(kPluginAbiVersion);
  EXPECT_NE(r.output.find("dpo            loss    " + abi + "    /"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("toy_mlp        model   " + abi + "    /"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/libprefengine_loss_dpo.so\n"), std::string::npos) << r.output;
}

TEST(CliTest, PluginsDoesNotOpenUnrelatedLibraries) {
  // The directory holds only libunrelated_aborts.so, which aborts the process that loads it.
  Result r = run(std::string("plugins --plugin-path ") + PREFENGINE_TEST_UNRELATED_DIR);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("unrelated"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("dpo            loss"), std::string::npos) << r.output;
}

TEST(CliTest, ValidateAcceptsTheShippedConfig) {
  Result r = run("validate configs/toy/dpo.yaml");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("ok (2 stages)"), std::string::npos);
}

TEST(CliTest, BadConfigIsOneLineWithLocationAndNonZeroExit) {
  Result r = run("validate configs/toy/dpo.yaml --set stages.dpo.loss.beta=zero");
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.output, "error: --set: stages[1].loss.beta: expected a number in (0, 1e+06], got 'zero'\n");
  const std::string dir = testing::make_temp_dir("cli");
  const std::string file = testing::write_file(dir + "/exp.yaml", "name: x\nmodel: {plugin: toy_mlp}\nstages: []\n");
  Result s = run("validate " + file);
  EXPECT_EQ(s.code, 1);
  EXPECT_EQ(s.output, "error: " + file + ":3:9: stages: expected a non-empty list of stages\n");
}

TEST(CliTest, UnknownCommandAndOptionAreErrors) {
  Result r = run("rnu x.yaml");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("unknown command 'rnu' (did you mean 'run'?"), std::string::npos) << r.output;
  Result o = run("run configs/toy/dpo.yaml --frobnicate");
  EXPECT_NE(o.code, 0);
  EXPECT_NE(o.output.find("frobnicate"), std::string::npos) << o.output;
  Result l = run("validate configs/toy/dpo.yaml --log-level loud");
  EXPECT_EQ(l.code, 1);
  EXPECT_NE(l.output.find("did you mean"), std::string::npos) << l.output;
}

TEST(CliTest, RunRefusesAnExistingRunDirectory) {
  const std::string dir = testing::make_temp_dir("cli-run");
  testing::write_file(dir + "/metrics.jsonl", "{}\n");
  Result r = run("run configs/toy/dpo.yaml --output " + dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("holds an earlier run"), std::string::npos) << r.output;
  EXPECT_EQ(testing::read_file(dir + "/metrics.jsonl"), "{}\n");
}

TEST(CliTest, RunWritesTheRunDirectory) {
  const std::string dir = testing::make_temp_dir("cli-ok") + "/run";
  Result r = run("run configs/toy/dpo.yaml --set stages.sft.steps=20 --set stages.dpo.steps=20 --output " + dir +
                 " --log-level warn");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"config.yaml", "metrics.jsonl", "metrics.csv", "run.log", "run.json",
                        "checkpoints/dpo/model.pt", "checkpoints/sft/model.pt"}) {
    EXPECT_TRUE(boost::filesystem::exists(dir + "/" + f)) << f;
  }
  EXPECT_NE(testing::read_file(dir + "/config.yaml").find("steps: 20"), std::string::npos);
  const std::string csv = testing::read_file(dir + "/metrics.csv");
  EXPECT_EQ(csv.rfind("stage,step,global_step,loss", 0), 0u) << csv.substr(0, 200);
  EXPECT_NE(csv.find("probs/unseen"), std::string::npos);
}

}  // namespace
}  // namespace prefengine

namespace prefengine {
namespace {

TEST(CliTest, GradeWritesScoresAndSummary) {
  const std::string dir = testing::make_temp_dir("cli-grade");
  const std::string input = testing::write_file(dir + "/in.jsonl",
      "{\"prompt\": \"1+1?\", \"response\": \"1 + 1 = 2. The answer is \\\\boxed{2}.\", \"reference\": \"2\"}\n"
      "{\"prompt\": \"2+2?\", \"response\": \"The answer is 5\", \"reference\": \"4\"}\n"
      "this line is not json\n");
  Result r = run("grade --grader math --input " + input + " --output " + dir + "/out.jsonl");
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<nlohmann::json> rows;
  std::ifstream in(dir + "/out.jsonl");
  for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_GE(rows[0]["score"].get<double>(), 4.0);  // correct answer
  EXPECT_LE(rows[1]["score"].get<double>(), 3.0);  // wrong answer
  EXPECT_TRUE(rows[2].contains("error"));          // the bad line is reported, the run goes on
  EXPECT_NE(r.output.find("4&5"), std::string::npos) << r.output;
}

TEST(CliTest, GradeWithUnknownGraderOrOptionIsAnError) {
  Result r = run("grade --grader mathh --input /dev/null");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("unknown grader plugin 'mathh' (did you mean 'math'?"), std::string::npos) << r.output;
  Result o = run("grade --grader math --input /dev/null --option tolerence=1");
  EXPECT_EQ(o.code, 1);
  EXPECT_NE(o.output.find("did you mean 'tolerance'"), std::string::npos) << o.output;
}

}  // namespace
}  // namespace prefengine
