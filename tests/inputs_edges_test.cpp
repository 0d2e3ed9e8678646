// Inputs at the edges (issue 13, category 4), through the prefengine executable: one error line
// without LibTorch's backtrace (the backtrace only at --log-level debug), generate's memory bound,
// and what `validate` must find before `run` would (the reference cache folder, a PPO reward
// checkpoint). The bad-input corpus (tests/reliability/bad_inputs) covers many more cases.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>

#include <nlohmann/json.hpp>

#include "engine/io/durable_file.h"
#include "engine/train/checkpoint.h"
#include "test_util.h"

namespace prefengine {
namespace {

using CliResult = testing::CommandResult;

CliResult cli(const std::string& args) { return testing::run_cli(args); }

// The lines of `text` that are not the progress log ("HH:MM:SS info ...").
std::vector<std::string> user_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const bool log = line.size() > 9 && line[2] == ':' && line[5] == ':' &&
                     (line.compare(9, 4, "info") == 0 || line.compare(9, 4, "warn") == 0 ||
                      line.compare(9, 5, "debug") == 0);
    if (!log && line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  return lines;
}

bool has_backtrace(const std::string& text) {
  return text.find("Exception raised from") != std::string::npos || text.find("frame #") != std::string::npos;
}

const std::string kTinyLm = testing::tiny_lm_yaml(/*hidden_size=*/16, /*max_positions=*/64) + R"(stages:
  - {name: s, kind: sft, data: {path: configs/lm/data/sft.jsonl, max_records: 4}, batch_size: 2, steps: 1}
)";

// A real run's checkpoint whose model.pt is replaced by `model_pt`, its state.json resealed with the
// new file's size and checksum: the bytes reach LibTorch's reader.
std::string fake_checkpoint(const std::string& tag, const std::string& model_pt) {
  const std::string dir = testing::make_temp_dir(tag);
  const std::string config = testing::write_file(dir + "/tiny.yaml", kTinyLm);
  const CliResult run = cli("run " + config + " --output " + dir + "/run --log-level warn");
  EXPECT_EQ(run.code, 0) << run.output;
  const std::string checkpoint = dir + "/run/checkpoints/s";
  testing::write_file(checkpoint + "/model.pt", model_pt);
  auto state = nlohmann::json::parse(testing::read_file(checkpoint + "/state.json"));
  state["files"]["model.pt"] = {{"bytes", model_pt.size()}, {"crc32c", crc32c_hex(model_pt)}};
  testing::write_file(checkpoint + "/state.json", seal_checkpoint_state(state).dump());
  return dir + "/run";
}

TEST(OneLineErrorTest, AGarbageCheckpointIsOneLineNamingTheFileAndTheBacktraceIsForDebug) {
  const std::string dir = fake_checkpoint("garbage-pt", "not a zip archive\n");
  const std::string prompts = testing::write_file(dir + "/prompts.jsonl", "{\"prompt\": \"hi\"}\n");
  const std::string args = "generate --checkpoint " + dir + "/checkpoints/s --input " + prompts + " --output " + dir +
                           "/out.jsonl";
  const CliResult r = cli(args);
  EXPECT_EQ(r.code, 1) << r.output;
  const auto lines = user_lines(r.output);
  ASSERT_EQ(lines.size(), 1u) << r.output;
  EXPECT_EQ(lines[0].rfind("error: " + dir + "/checkpoints/s/model.pt: not a readable LibTorch archive", 0), 0u)
      << lines[0];
  EXPECT_FALSE(has_backtrace(r.output)) << r.output;
  EXPECT_FALSE(boost::filesystem::exists(dir + "/out.jsonl"));
  // --log-level debug: LibTorch's full message, backtrace included, before the same error line.
  const CliResult debug = cli(args + " --log-level debug");
  EXPECT_EQ(debug.code, 1);
  EXPECT_TRUE(has_backtrace(debug.output)) << debug.output;
  EXPECT_NE(debug.output.find(lines[0]), std::string::npos) << debug.output;
}

TEST(OneLineErrorTest, ATruncatedCheckpointIsOneLineNamingTheFile) {
  // A real checkpoint, cut short: its size no longer matches state.json's record.
  const std::string dir = testing::make_temp_dir("truncated-pt");
  const std::string config = testing::write_file(dir + "/tiny.yaml", kTinyLm);
  const CliResult run = cli("run " + config + " --output " + dir + "/run --log-level warn");
  ASSERT_EQ(run.code, 0) << run.output;
  const std::string model = dir + "/run/checkpoints/s/model.pt";
  const std::string bytes = testing::read_file(model);
  ASSERT_GT(bytes.size(), 1000u);
  testing::write_file(model, bytes.substr(0, bytes.size() / 2));
  const std::string prompts = testing::write_file(dir + "/prompts.jsonl", "{\"prompt\": \"hi\"}\n");
  const CliResult r = cli("generate --checkpoint " + dir + "/run/checkpoints/s --input " + prompts + " --output " +
                          dir + "/out.jsonl");
  EXPECT_EQ(r.code, 1) << r.output;
  const auto lines = user_lines(r.output);
  ASSERT_EQ(lines.size(), 1u) << r.output;
  EXPECT_NE(lines[0].find(model + ": " + std::to_string(bytes.size() / 2) + " bytes, expected " +
                          std::to_string(bytes.size()) + " (the file is partial or corrupted)"), std::string::npos)
      << lines[0];
  EXPECT_FALSE(has_backtrace(r.output)) << r.output;
  // The same through run --resume (the finished stage's weights are loaded).
  const CliResult resume = cli("run --resume " + dir + "/run");
  EXPECT_EQ(resume.code, 1) << resume.output;
  const auto resume_lines = user_lines(resume.output);
  ASSERT_EQ(resume_lines.size(), 1u) << resume.output;
  EXPECT_NE(resume_lines[0].find(model + ": " + std::to_string(bytes.size() / 2) + " bytes"), std::string::npos)
      << resume_lines[0];
  EXPECT_FALSE(has_backtrace(resume.output)) << resume.output;
}

TEST(GenerateBoundTest, TooManySamplesAreRefusedBeforeAllocating) {
  const std::string dir = testing::make_temp_dir("generate-bound");
  const std::string config = testing::write_file(dir + "/tiny.yaml", kTinyLm);
  const std::string prompts = testing::write_file(dir + "/prompts.jsonl", "{\"prompt\": \"hi\"}\n");
  // 4096 rows x 1e8 tokens x (KV cache + logits) is petabytes: refused on any machine.
  const CliResult r = cli("generate --model-config " + config + " --input " + prompts + " --output " + dir +
                          "/out.jsonl --n 4096 --max-new-tokens 100000000");
  EXPECT_EQ(r.code, 1) << r.output;
  const auto lines = user_lines(r.output);
  ASSERT_EQ(lines.size(), 1u) << r.output;
  EXPECT_EQ(lines[0].rfind("error: generate: --n 4096 \u00d7 --max-new-tokens 100000000 needs about ", 0), 0u)
      << lines[0];
  EXPECT_NE(lines[0].find("GiB available (MemAvailable in /proc/meminfo)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("lower --n/--max-new-tokens/--batch-size"), std::string::npos) << lines[0];
  EXPECT_FALSE(boost::filesystem::exists(dir + "/out.jsonl"));
  // A small request on the same model goes through.
  const CliResult ok = cli("generate --model-config " + config + " --input " + prompts + " --output " + dir +
                           "/out.jsonl --n 2 --max-new-tokens 3");
  EXPECT_EQ(ok.code, 0) << ok.output;
}

const char* kToyDpo = R"(name: toy
seed: 0
threads: 1
model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 8, layers: 2}
stages:
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     batch_size: 4, steps: 1}
)";

TEST(ValidateTest, AnUnusableReferenceCacheFolderIsFoundByValidate) {
  const std::string dir = testing::make_temp_dir("validate-refcache");
  const std::string config = testing::write_file(dir + "/toy.yaml", kToyDpo);
  const std::string file = testing::write_file(dir + "/a-file", "x");
  EXPECT_EQ(cli("validate " + config + " --log-level warn").code, 0);
  for (const std::string& cache : {file, file + "/refs/deeper"}) {
    const CliResult r = cli("validate " + config + " --set reference_cache=" + cache);
    EXPECT_EQ(r.code, 1) << r.output;
    const auto lines = user_lines(r.output);
    ASSERT_EQ(lines.size(), 1u) << r.output;
    EXPECT_NE(lines[0].find("reference_cache: '" + cache + "'"), std::string::npos) << lines[0];
    EXPECT_NE(lines[0].find("is not a directory"), std::string::npos) << lines[0];
  }
  // A folder that does not exist yet, under a directory, is fine (run creates it).
  EXPECT_EQ(cli("validate " + config + " --set reference_cache=" + dir + "/refs/new --log-level warn").code, 0);
  EXPECT_FALSE(boost::filesystem::exists(dir + "/refs"));  // validate creates nothing
}

TEST(ValidateTest, APpoRewardCheckpointIsLoadedByValidate) {
  const std::string dir = testing::make_temp_dir("validate-reward");
  const std::string yaml = std::string(R"(name: toy
seed: 0
threads: 1
model: {plugin: toy_mlp, prompts: 4, responses: 10, hidden: 8, layers: 2}
stages:
  - {name: ppo, kind: ppo, reward: {checkpoint: )") + dir + R"(/rm}, loss: {plugin: ppo}, data: {path: configs/toy/data/prompts.jsonl},
     batch_size: 4, steps: 1}
)";
  const std::string config = testing::write_file(dir + "/toy.yaml", yaml);
  CliResult r = cli("validate " + config);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(dir + "/rm/model.pt: no such checkpoint file"), std::string::npos) << r.output;
  boost::filesystem::create_directories(dir + "/rm");
  testing::write_file(dir + "/rm/model.pt", "garbage");  // and no state.json
  r = cli("validate " + config);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(dir + "/rm/state.json: cannot read"), std::string::npos) << r.output;
  EXPECT_FALSE(has_backtrace(r.output)) << r.output;
}

}  // namespace
}  // namespace prefengine
