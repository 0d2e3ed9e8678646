// `init_from:` for any stage kind: a stage starts from an earlier stage's checkpoint or from a
// checkpoint folder of another run (SFT once, many preference runs from it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <boost/filesystem.hpp>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;
using testing::read_metrics;

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(testing::read_file(path)); }

const std::string kSft =
    "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2},\n"
    "     batch_size: 4, steps: 20, log_every: 5}\n";

std::string dpo_stage(const std::string& init_from, const std::string& extra = "") {
  return "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl, "
         "shuffle: false},\n     optimizer: {lr: 1.0e-3}, batch_size: 8, steps: 6, log_every: 1" +
         (init_from.empty() ? "" : ", init_from: " + init_from) + extra + "}\n";
}

std::string head(const std::string& name, const std::string& model = "{plugin: toy_mlp, hidden: 16}") {
  return "name: " + name + "\nseed: 3\nthreads: 1\nmodel: " + model + "\nstages:\n";
}

std::string run_yaml(const std::string& yaml, const std::string& tag) {
  const std::string dir = testing::make_temp_dir(tag);
  ExperimentRunner(parse_experiment(yaml, tag + ".yaml"), dir).run();
  return dir;
}

// Run A: the SFT stage alone. Its checkpoint is what `sft` ends with in a run of sft then dpo.
std::string sft_run(const std::string& tag, const std::string& model = "{plugin: toy_mlp, hidden: 16}") {
  return run_yaml(head("sft-base", model) + kSft, tag);
}

void expect_same_rows(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    for (auto it = a[i].begin(); it != a[i].end(); ++it) {
      if (!it.value().is_number_float()) continue;
      ASSERT_TRUE(b[i].contains(it.key())) << it.key();
      const double u = it.value().get<double>(), v = b[i][it.key()].get<double>();
      EXPECT_NEAR(u, v, 1e-9 * std::max(1.0, std::abs(u))) << "row " << i << " " << it.key();
    }
  }
}

TEST(InitFromTest, AnotherRunsSftCheckpointStartsDpoAsInOneRun) {
  const std::string a = sft_run("init-a");
  const std::string one = run_yaml(head("both") + kSft + dpo_stage(""), "init-one");
  const std::string b = run_yaml(head("dpo-from-a") + dpo_stage(a + "/checkpoints/sft"), "init-b");

  const auto expected = read_metrics(one, "dpo"), got = read_metrics(b, "dpo");
  ASSERT_EQ(expected.size(), 6u);
  ASSERT_EQ(got.size(), 6u);
  // The first row: the same weights (policy and frozen reference) on the same pairs.
  for (const char* key : {"loss", "logps/chosen", "logps/rejected", "probs/chosen"}) {
    EXPECT_EQ(expected[0][key].get<double>(), got[0][key].get<double>()) << key;
  }
  EXPECT_NEAR(got[0]["loss"].get<double>(), std::log(2.0), 1e-6);  // the reference equals the policy
  expect_same_rows(expected, got);

  // run.json records where the weights came from.
  const auto status = read_json(b + "/run.json");
  ASSERT_EQ(status["stages"].size(), 1u);
  const auto& origin = status["stages"][0]["init_from"];
  EXPECT_EQ(origin["checkpoint"], a + "/checkpoints/sft");
  EXPECT_EQ(origin["stage"], "sft");
  EXPECT_EQ(origin["global_step"], 20);
  EXPECT_EQ(origin["step"], 20);
  EXPECT_EQ(origin["run"], "sft-base");
  EXPECT_EQ(origin["run_directory"], a);
}

TEST(InitFromTest, AnEarlierStageOfThisRunForAnyKind) {
  // sft, a second sft that moves the weights, then dpo from the first sft's checkpoint: equal to
  // sft then dpo (the second stage's weights are dropped).
  const std::string sft2 =
      "  - {name: sft2, kind: sft, data: {path: configs/toy/data/sft_scenario2.jsonl}, optimizer: {lr: 1.0e-2},\n"
      "     batch_size: 4, steps: 10, log_every: 5}\n";
  const std::string one = run_yaml(head("both") + kSft + dpo_stage(""), "init-early-one");
  const std::string dir = run_yaml(head("both") + kSft + sft2 + dpo_stage("sft"), "init-early");
  const auto expected = read_metrics(one, "dpo"), got = read_metrics(dir, "dpo");
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(expected[0]["logps/chosen"].get<double>(), got[0]["logps/chosen"].get<double>());
  expect_same_rows(expected, got);
  const auto origin = read_json(dir + "/run.json")["stages"][2]["init_from"];
  EXPECT_EQ(origin["checkpoint"], dir + "/checkpoints/sft");
  EXPECT_EQ(origin["run"], "both");
  EXPECT_EQ(origin["global_step"], 20);
}

TEST(InitFromTest, ACheckpointOfAnotherModelIsRefusedNamingKeyTensorAndShapes) {
  const std::string a = sft_run("init-shape-a");  // hidden 16
  const auto config = parse_experiment(head("b", "{plugin: toy_mlp, hidden: 32}") + dpo_stage(a + "/checkpoints/sft"),
                                       "b.yaml");
  try {
    validate_experiment(config);
    FAIL() << "a checkpoint of a hidden-16 model was accepted by a hidden-32 model";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find("b.yaml:"), std::string::npos) << message;
    EXPECT_NE(message.find("stages[0].init_from"), std::string::npos) << message;
    EXPECT_NE(message.find("model.hidden is '16' in " + a + "/config.yaml, '32' here"), std::string::npos) << message;
    EXPECT_NE(message.find(a + "/checkpoints/sft/model.pt: tensor '"), std::string::npos) << message;
    EXPECT_NE(message.find("in the checkpoint, ["), std::string::npos) << message;
    EXPECT_NE(message.find("16"), std::string::npos) << message;
    EXPECT_NE(message.find("32"), std::string::npos) << message;
  }
  // run() refuses it too, before training
  const std::string dir = testing::make_temp_dir("init-shape-b");
  EXPECT_THROW(ExperimentRunner(config, dir).run(), std::invalid_argument);
  EXPECT_TRUE(read_metrics(dir).empty());

  // A deeper model's checkpoint: every tensor of the shallower model is there with its shape, the
  // extra layer's tensors are not silently dropped.
  const std::string deep = sft_run("init-shape-deep", "{plugin: toy_mlp, hidden: 16, layers: 3}");
  try {
    validate_experiment(parse_experiment(
        head("e", "{plugin: toy_mlp, hidden: 16, layers: 2}") + dpo_stage(deep + "/checkpoints/sft"), "e.yaml"));
    FAIL() << "a 3-layer checkpoint was accepted by a 2-layer model";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("model.layers is '3' in " + deep + "/config.yaml, '2' here"), std::string::npos) << message;
    EXPECT_NE(message.find("is in the checkpoint but not in the model"), std::string::npos) << message;
  }

  // Another config whose tensors fit anyway (hidden: 64 is the plugin's default): a warning only.
  const std::string c = sft_run("init-shape-c", "{plugin: toy_mlp, hidden: 64}");
  EXPECT_NO_THROW(validate_experiment(
      parse_experiment(head("d", "{plugin: toy_mlp}") + dpo_stage(c + "/checkpoints/sft"), "d.yaml")));
}

TEST(InitFromTest, ValidateNamesTheKeyOfAMissingOrIncompleteCheckpoint) {
  const std::string dir = testing::make_temp_dir("init-validate");
  const std::string file = testing::write_file(dir + "/x.yaml", head("x") + dpo_stage(dir + "/nowhere/checkpoints/sft"));
  // the key is on line 7 of the file; its value starts after "init_from: "
  const std::string line7 = "     optimizer: {lr: 1.0e-3}, batch_size: 8, steps: 6, log_every: 1, init_from: ";
  const std::string where = file + ":7:" + std::to_string(line7.size() + 1) + ": stages[0].init_from: ";
  try {
    validate_experiment(load_experiment(file));
    FAIL() << "a missing checkpoint folder was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(where, 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such folder"), std::string::npos) << e.what();
  }
  // a folder with state.json but no model.pt
  const std::string a = sft_run("init-validate-a");
  fs::remove(a + "/checkpoints/sft/model.pt");
  try {
    validate_experiment(parse_experiment(head("x") + dpo_stage(a + "/checkpoints/sft"), "y.yaml"));
    FAIL() << "a checkpoint without model.pt was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("stages[0].init_from"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("model.pt: no such file"), std::string::npos) << e.what();
  }
  // a name that is no earlier stage
  try {
    parse_experiment(head("x") + dpo_stage("sft"), "z.yaml");
    FAIL() << "init_from naming no earlier stage was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("z.yaml:7:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("the name of an earlier stage or a checkpoint folder"), std::string::npos)
        << e.what();
  }
}

TEST(InitFromTest, ReferenceFromAnotherCheckpoint) {
  // policy X (scenario 1 SFT), reference Y (scenario 2 SFT); one pair per step, the first row is
  // measured before any update: loss = -log sigmoid(beta ((x_w - x_l) - (y_w - y_l))).
  const std::string x = sft_run("init-ref-x");
  const std::string y = run_yaml(head("sft-y") + "  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario2.jsonl},"
                                 " optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 20, log_every: 5}\n", "init-ref-y");
  auto one_pair = [](const std::string& stage) {
    std::string text = stage;
    text.replace(text.find("batch_size: 8"), 13, "batch_size: 1");
    return text;
  };
  const std::string both = run_yaml(
      head("b") + one_pair(dpo_stage(x + "/checkpoints/sft", ", reference_from: " + y + "/checkpoints/sft")), "init-ref-b");
  const std::string policy_x = run_yaml(head("px") + one_pair(dpo_stage(x + "/checkpoints/sft")), "init-ref-px");
  const std::string policy_y = run_yaml(head("py") + one_pair(dpo_stage(y + "/checkpoints/sft")), "init-ref-py");
  const auto row = read_metrics(both, "dpo").at(0), rx = read_metrics(policy_x, "dpo").at(0),
             ry = read_metrics(policy_y, "dpo").at(0);
  EXPECT_EQ(row["logps/chosen"].get<double>(), rx["logps/chosen"].get<double>());
  const double margin = (rx["logps/chosen"].get<double>() - rx["logps/rejected"].get<double>()) -
                        (ry["logps/chosen"].get<double>() - ry["logps/rejected"].get<double>());
  ASSERT_GT(std::abs(margin), 1e-3);  // the two checkpoints differ on this pair
  EXPECT_NEAR(row["loss"].get<double>(), std::log1p(std::exp(-0.1 * margin)), 1e-6);
  const auto entry = read_json(both + "/run.json")["stages"][0];
  EXPECT_EQ(entry["reference_from"]["checkpoint"], y + "/checkpoints/sft");
  EXPECT_EQ(entry["reference_from"]["run"], "sft-y");
  EXPECT_EQ(entry["init_from"]["run"], "sft-base");
  // a stage without a reference refuses the key
  EXPECT_THROW(parse_experiment(head("s") + "  - {name: sft, kind: sft, data: {path: a.jsonl}, steps: 1, reference_from: " +
                                    y + "/checkpoints/sft}\n", "s.yaml"),
               std::invalid_argument);
}

// Interrupted after `stop_after` global steps, resumed: the metrics equal the uninterrupted run's.
void expect_resume_equals_whole(const std::string& yaml, int64_t stop_after, const std::string& tag) {
  const std::string whole = run_yaml(yaml, tag + "-whole");
  const std::string dir = testing::make_temp_dir(tag);
  setenv("PREFENGINE_STOP_AFTER_STEP", std::to_string(stop_after).c_str(), 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(yaml, tag + ".yaml"), dir).run(), std::runtime_error);
  unsetenv("PREFENGINE_STOP_AFTER_STEP");
  EXPECT_EQ(read_json(dir + "/run.json")["global_step"], stop_after);
  ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
  resumed.set_resume(true);
  resumed.run();
  expect_same_rows(read_metrics(whole), read_metrics(dir));
  const auto status = read_json(dir + "/run.json");
  EXPECT_EQ(status["status"], "completed");
  EXPECT_EQ(status["stages"].back()["init_from"], read_json(whole + "/run.json")["stages"].back()["init_from"]);
}

TEST(InitFromTest, ResumeMidStageKeepsTheCheckpointsWeightsAndTheLoadedReference) {
  const std::string a = sft_run("init-resume-a");
  expect_resume_equals_whole(head("b") + dpo_stage(a + "/checkpoints/sft", ", checkpoint_every: 2"), 4,
                             "init-resume-mid");
}

TEST(InitFromTest, ResumeAtAStageBoundaryAppliesItToTheNextStage) {
  // this run's own sft, then dpo from run A's sft: stopped at the end of the own sft
  const std::string a = sft_run("init-resume-b");
  const std::string own_sft =
      "  - {name: own, kind: sft, data: {path: configs/toy/data/sft_scenario2.jsonl}, optimizer: {lr: 1.0e-2},\n"
      "     batch_size: 4, steps: 4, log_every: 2}\n";
  expect_resume_equals_whole(head("b") + own_sft + dpo_stage(a + "/checkpoints/sft"), 4, "init-resume-boundary");
}

}  // namespace
}  // namespace prefengine
