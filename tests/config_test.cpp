// Every validation rule of the experiment file: each error names file:line:column, the key, what
// was expected and (for names) the nearest valid one.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

const char* kValid = R"(name: t
seed: 3
model: {plugin: toy_mlp, prompts: 4, responses: 10}
stages:
  - name: sft
    kind: sft
    data: {path: configs/toy/data/sft_scenario1.jsonl}
    optimizer: {name: adam, lr: 1.0e-2}
    steps: 5
  - name: dpo
    kind: pairwise
    loss: {plugin: dpo, beta: 0.1}
    data: {path: configs/toy/data/pairs.jsonl}
    steps: 5
)";

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    ExperimentConfig config = parse_experiment(yaml, "exp.yaml", overrides);
    validate_experiment(config);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(ConfigTest, ValidFileParsesIntoTypedOptions) {
  ExperimentConfig c = parse_experiment(kValid, "exp.yaml");
  EXPECT_EQ(c.name, "t");
  EXPECT_EQ(c.seed, 3);
  EXPECT_EQ(c.model_plugin, "toy_mlp");
  ASSERT_EQ(c.stages.size(), 2u);
  EXPECT_EQ(c.stages[0].kind, "sft");
  EXPECT_DOUBLE_EQ(c.stages[0].optimizer.lr, 1e-2);
  EXPECT_EQ(c.stages[1].kind, "pairwise");
  EXPECT_EQ(c.stages[1].loss_plugin, "dpo");
  EXPECT_EQ(c.stages[1].optimizer.name, "adam");  // default
  EXPECT_EQ(c.stages[1].batch_size, 8);           // default
  EXPECT_NO_THROW(validate_experiment(c));
}

TEST(ConfigTest, UnknownTopLevelKeyNamesLocationAndNearestKey) {
  const std::string e = error_of(replace(kValid, "seed: 3", "sed: 3"));
  EXPECT_NE(e.find("exp.yaml:2:6"), std::string::npos) << e;
  EXPECT_NE(e.find("sed"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'seed'"), std::string::npos) << e;
}

TEST(ConfigTest, UnknownStageKeyNamesNearestKey) {
  const std::string e = error_of(replace(kValid, "    steps: 5\n  - name: dpo", "    stepz: 5\n  - name: dpo"));
  EXPECT_NE(e.find("exp.yaml:9:12"), std::string::npos) << e;
  EXPECT_NE(e.find("stages[0].stepz"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'steps'"), std::string::npos) << e;
}

TEST(ConfigTest, UnknownOptimizerKeyIsRejected) {
  const std::string e = error_of(replace(kValid, "lr: 1.0e-2", "lr: 1.0e-2, momentun: 0.9"));
  EXPECT_NE(e.find("optimizer.momentun"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'optimizer.momentum'"), std::string::npos) << e;
}

TEST(ConfigTest, UnknownLossPluginOptionNamesNearestOption) {
  const std::string e = error_of(replace(kValid, "beta: 0.1", "betta: 0.1"));
  EXPECT_NE(e.find("exp.yaml:12:32"), std::string::npos) << e;
  EXPECT_NE(e.find("stages[1].loss.betta"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'beta'"), std::string::npos) << e;
}

TEST(ConfigTest, UnknownModelOptionIsRejected) {
  const std::string e = error_of(replace(kValid, "prompts: 4", "prompt: 4"));
  EXPECT_NE(e.find("exp.yaml:3:34"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'prompts'"), std::string::npos) << e;
}

TEST(ConfigTest, WrongTypeNamesExpectedType) {
  const std::string e = error_of(replace(kValid, "seed: 3", "seed: three"));
  EXPECT_NE(e.find("exp.yaml:2:7: seed: expected an integer >= 0, got 'three'"), std::string::npos) << e;
  const std::string f = error_of(replace(kValid, "lr: 1.0e-2", "lr: fast"));
  EXPECT_NE(f.find("stages[0].optimizer.lr: expected a number in [0, 10], got 'fast'"), std::string::npos) << f;
}

TEST(ConfigTest, OutOfRangeValueIsRejected) {
  const std::string e = error_of(replace(kValid, "beta: 0.1", "beta: -1"));
  EXPECT_NE(e.find("stages[1].loss.beta: expected a number in (0, 1e+06], got -1"), std::string::npos) << e;
  const std::string f = error_of(replace(kValid, "    steps: 5\n  - name: dpo", "    steps: -5\n  - name: dpo"));
  EXPECT_NE(f.find("exp.yaml:9:12: stages[0].steps: expected an integer >= 0, got -5"), std::string::npos) << f;
  const std::string g = error_of(replace(kValid, "prompts: 4", "prompts: 0"));
  EXPECT_NE(g.find("model.prompts: expected an integer >= 1"), std::string::npos) << g;
}

TEST(ConfigTest, MissingRequiredKeysAreNamed) {
  EXPECT_NE(error_of(replace(kValid, "model: {plugin: toy_mlp, prompts: 4, responses: 10}\n", ""))
                .find("model.plugin: expected a string, got nothing (the key is required)"),
            std::string::npos);
  EXPECT_NE(error_of(replace(kValid, "    data: {path: configs/toy/data/pairs.jsonl}\n", ""))
                .find("stages[1].data.path: expected a string, got nothing"),
            std::string::npos);
  EXPECT_NE(error_of(replace(kValid, "    loss: {plugin: dpo, beta: 0.1}\n", ""))
                .find("stages[1].loss.plugin: expected a string, got nothing"),
            std::string::npos);
  EXPECT_NE(error_of(replace(kValid, "  - name: sft\n    kind: sft\n", "  - name: sft\n"))
                .find("stages[0].kind: expected sft, pairwise, ppo or pairs"),
            std::string::npos)
      << error_of(replace(kValid, "  - name: sft\n    kind: sft\n", "  - name: sft\n"));
  EXPECT_NE(error_of("name: x\nmodel: {plugin: toy_mlp}\n").find("stages: expected a list of stages"),
            std::string::npos);
}

TEST(ConfigTest, UnknownPluginNameNamesNearestPlugin) {
  const std::string e = error_of(replace(kValid, "plugin: dpo", "plugin: dpp"));
  EXPECT_NE(e.find("exp.yaml:12:20: stages[1].loss.plugin: unknown loss plugin 'dpp'"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'dpo'"), std::string::npos) << e;
  const std::string m = error_of(replace(kValid, "plugin: toy_mlp", "plugin: toy_mpl"));
  EXPECT_NE(m.find("exp.yaml:3:17: model.plugin: unknown model plugin 'toy_mpl'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'toy_mlp'"), std::string::npos) << m;
}

TEST(ConfigTest, UnknownChoicesNameNearestChoice) {
  const std::string e = error_of(replace(kValid, "name: adam", "name: adan"));
  EXPECT_NE(e.find("stages[0].optimizer.name: expected one of adam, adamw, sgd (did you mean 'adam'?)"),
            std::string::npos) << e;
  const std::string k = error_of(replace(kValid, "kind: pairwise", "kind: pairwize"));
  EXPECT_NE(k.find("did you mean 'pairwise'"), std::string::npos) << k;
}

TEST(ConfigTest, StepsAndEpochsAreExclusive) {
  EXPECT_NE(error_of(replace(kValid, "    steps: 5\n  - name: dpo", "    steps: 5\n    epochs: 2\n  - name: dpo"))
                .find("either steps or epochs, not both"),
            std::string::npos);
  EXPECT_NE(error_of(replace(kValid, "    steps: 5\n  - name: dpo", "  - name: dpo")).find("steps > 0 or epochs > 0"),
            std::string::npos);
}

TEST(ConfigTest, DuplicateStageNamesAreRejected) {
  const std::string e = error_of(replace(kValid, "name: dpo", "name: sft"));
  EXPECT_NE(e.find("exp.yaml:10:5"), std::string::npos) << e;
  EXPECT_NE(e.find("unique stage name"), std::string::npos) << e;
}

TEST(ConfigTest, NamesThatBecomeFoldersAreChecked) {
  for (const char* bad : {"latest", "..", ".hidden", "a/b", "dpo.old", "dpo.tmp"}) {
    const std::string stage = error_of(replace(kValid, "name: dpo", std::string("name: '") + bad + "'"));
    EXPECT_NE(stage.find("exp.yaml:10:"), std::string::npos) << bad << ": " << stage;
    EXPECT_NE(stage.find("it names a folder"), std::string::npos) << bad << ": " << stage;
  }
  const std::string run = error_of(kValid, {"name=../escape"});
  EXPECT_NE(run.find("name: expected a non-empty name without '/'"), std::string::npos) << run;
}

TEST(ConfigTest, DuplicateKeysNameBothLines) {
  const std::string e =
      error_of(replace(kValid, "    steps: 5\n  - name: dpo", "    steps: 5\n    steps: 7\n  - name: dpo"));
  EXPECT_NE(e.find("exp.yaml:10:5: key 'steps' given twice (first at line 9)"), std::string::npos) << e;
}

TEST(ConfigTest, AnAliasBombFailsFast) {
  std::string yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 9; ++i) {
    const std::string p = "*a" + std::to_string(i - 1);
    yaml += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + p + ", " + p + ", " + p + ", " + p + ", " +
            p + ", " + p + ", " + p + ", " + p + ", " + p + ", " + p + "]\n";
  }
  const std::string e = error_of(yaml);  // 10^9 values if expanded
  EXPECT_NE(e.find("expands to more than"), std::string::npos) << e;
}

TEST(ConfigTest, InvalidYamlNamesLine) {
  const std::string e = error_of("name: [unclosed\nseed: 1\n");
  EXPECT_NE(e.find("exp.yaml:"), std::string::npos) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(ConfigTest, OverridesApplyByIndexAndByStageName) {
  ExperimentConfig c = parse_experiment(kValid, "exp.yaml", {"stages.dpo.loss.beta=0.5", "stages.0.steps=7", "seed=9"});
  EXPECT_EQ(c.seed, 9);
  EXPECT_EQ(c.stages[0].steps, 7);
  PluginOptions loss = c.stages[1].loss;
  EXPECT_DOUBLE_EQ(loss.get_double("beta", 0), 0.5);
  EXPECT_NE(c.resolved_yaml.find("beta: 0.5"), std::string::npos) << c.resolved_yaml;
}

TEST(ConfigTest, OverridesGoThroughTheSameChecks) {
  const std::string e = error_of(kValid, {"stages.dpo.loss.beta=-2"});
  EXPECT_NE(e.find("--set: stages[1].loss.beta: expected a number in (0, 1e+06], got -2"), std::string::npos) << e;
  const std::string u = error_of(kValid, {"stages.dpo.loss.betta=2"});
  EXPECT_NE(u.find("did you mean 'beta'"), std::string::npos) << u;
  const std::string s = error_of(kValid, {"stages.ppo.steps=2"});
  EXPECT_NE(s.find("'ppo' is neither an index nor the name"), std::string::npos) << s;
  const std::string f = error_of(kValid, {"seed"});
  EXPECT_NE(f.find("expected key.path=value"), std::string::npos) << f;
}

TEST(ConfigTest, BadDataFileIsNamedWithLine) {
  const std::string dir = testing::make_temp_dir("config");
  const std::string data = testing::write_file(dir + "/pairs.jsonl",
      "{\"prompt_ids\": [0], \"chosen_ids\": [0], \"rejected_ids\": [4]}\n{\"prompt_ids\": [0], \"chosen_ids\": [0]}\n");
  const std::string e = error_of(replace(kValid, "configs/toy/data/pairs.jsonl", data));
  EXPECT_NE(e.find(data + ":2: missing field 'rejected_ids'"), std::string::npos) << e;
  testing::write_file(data, "{\"prompt_ids\": [0], \"chosen_ids\": [0], \"rejected_ids\": [12]}\n");
  const std::string r = error_of(replace(kValid, "configs/toy/data/pairs.jsonl", data));
  EXPECT_NE(r.find(data + ":1: field 'rejected_ids': token id 12 is outside the model's vocabulary [0, 10)"),
            std::string::npos) << r;
  testing::write_file(data, "not json\n");
  EXPECT_NE(error_of(replace(kValid, "configs/toy/data/pairs.jsonl", data)).find(data + ":1: not a JSON object"),
            std::string::npos);
}

TEST(ConfigTest, ValidateChecksPromptIdsAndTheEvalFile) {
  const std::string dir = testing::make_temp_dir("config-prompts");
  const std::string data = testing::write_file(dir + "/pairs.jsonl",
      "{\"prompt_ids\": [0], \"chosen_ids\": [0], \"rejected_ids\": [4]}\n"
      "{\"prompt_ids\": [11], \"chosen_ids\": [0], \"rejected_ids\": [4]}\n");
  const std::string p = error_of(replace(kValid, "configs/toy/data/pairs.jsonl", data));
  EXPECT_NE(p.find(data + ":2: field 'prompt_ids': token id 11 is outside the model's vocabulary [0, 10)"),
            std::string::npos) << p;
  // the held-out pairs are checked by validate, not first when the evaluator reads them
  const std::string e = error_of(replace(kValid, "loss: {plugin: dpo, beta: 0.1}",
                                         "loss: {plugin: dpo, beta: 0.1}\n    eval: {path: " + data + "}"));
  EXPECT_NE(e.find(data + ":2: field 'prompt_ids'"), std::string::npos) << e;
}

}  // namespace
}  // namespace prefengine
