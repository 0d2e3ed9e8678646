// The ppo stage with a reward source built in the test (rule: +1 when the sampled response is the
// prompt's optimal one): the sampler, the value alignment, and PPO raising the optimal response.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/config/experiment_config.h"
#include "engine/data/prompt_records.h"
#include "engine/metrics/metrics_logger.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/ppo_stage.h"
#include "engine/train/reward_source.h"
#include "prefengine/model.h"
#include "test_util.h"

namespace prefengine {
namespace {

class OptimalResponseReward : public RewardSource {
 public:
  at::Tensor score(const SequenceTensors& rows, const at::Tensor& /*prompt_index*/,
                   const std::vector<PromptRecord>& /*prompts*/) override {
    ++calls;
    // toy rows: [prompt, response]; response i is optimal for prompt i
    return (rows.input_ids.select(1, 0) == rows.input_ids.select(1, 1)).to(at::kFloat);
  }
  std::string describe() const override { return "optimal-response rule"; }
  int calls = 0;
};

std::shared_ptr<Model> toy_model(const PluginLoader& loader) {
  PluginOptions options;
  options.set_scalar("hidden", "16");
  return loader.create_model("toy_mlp", options);
}

TEST(PpoStageTest, SamplerStopsAtEosAndOtherwiseAtMaxNewTokens) {
  at::manual_seed(0);
  PluginLoader loader;
  auto model = toy_model(loader);
  {
    at::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (item.key() == "output.bias") item.value()[2] = 50.0;  // token 2 all but certain
    }
  }
  const std::vector<PromptRecord> prompts = read_prompt_records(testing::source_path("configs/toy/data/prompts.jsonl"));
  ASSERT_EQ(prompts.size(), 4u);
  const at::Tensor index = at::tensor({0, 3, 1}, at::kLong);
  const SequenceTensors three = sample_responses(*model, prompts, index, 3, -1, 1.0);
  EXPECT_EQ(three.input_ids.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(three.lengths.sum().item<double>(), 9.0);
  EXPECT_EQ(three.input_ids[1][0].item<int64_t>(), 3);
  EXPECT_EQ(three.input_ids[1][2].item<int64_t>(), 2);
  const SequenceTensors stopped = sample_responses(*model, prompts, index, 3, /*eos_id=*/2, 1.0);
  EXPECT_EQ(stopped.lengths.sum().item<double>(), 3.0);
  EXPECT_EQ(stopped.response_mask.sum().item<double>(), 3.0);
}

TEST(PpoStageTest, ValuesAreTheScalarHeadBeforeEachResponseToken) {
  at::manual_seed(1);
  PluginLoader loader;
  auto model = toy_model(loader);
  model->add_scalar_head();
  const std::vector<PromptRecord> prompts = read_prompt_records(testing::source_path("configs/toy/data/prompts.jsonl"));
  const SequenceTensors rows = sample_responses(*model, prompts, at::arange(4, at::kLong), 1, -1, 1.0);
  at::NoGradGuard no_grad;
  const TokenScores s = score_tokens(*model, rows, true, 1.0);
  ModelInput prompt_only;
  prompt_only.input_ids = rows.input_ids.slice(1, 0, 1);
  prompt_only.want_scalar = true;
  const ModelOutput out = model->forward(prompt_only);
  EXPECT_TRUE(at::allclose(s.values.select(1, 1), out.scalar.select(1, 0)));
  EXPECT_EQ(s.values.select(1, 0).abs().sum().item<double>(), 0.0);
  const at::Tensor logp = out.logits.select(1, 0).log_softmax(-1).gather(1, rows.input_ids.slice(1, 1, 2)).squeeze(1);
  EXPECT_TRUE(at::allclose(s.logps.select(1, 1), logp, 1e-5, 1e-6));
}

TEST(PpoStageTest, PpoWithARuleRewardRaisesTheOptimalResponse) {
  const std::string yaml = R"(name: ppo-rule
seed: 3
threads: 1
model: {plugin: toy_mlp, hidden: 16}
stages:
  - name: ppo
    kind: ppo
    reward: {checkpoint: unused-the-test-supplies-the-reward}
    probe: {path: configs/toy/data/pairs.jsonl}
    loss: {plugin: ppo}
    data: {path: configs/toy/data/prompts.jsonl}
    optimizer: {lr: 3.0e-3}
    batch_size: 16
    steps: 60
    log_every: 10
)";
  ExperimentConfig config = parse_experiment(yaml, "ppo-rule.yaml");
  const std::string dir = testing::make_temp_dir("ppo-rule");
  ExperimentRunner runner(config, dir);
  OptimalResponseReward reward;
  runner.set_reward_source(&reward);
  const RunResult result = runner.run();
  EXPECT_EQ(reward.calls, 60);
  EXPECT_EQ(result.global_steps, 60 * 4);  // 4 epochs x 1 minibatch per rollout
  const auto rows = testing::read_metrics(dir, "ppo");
  ASSERT_GE(rows.size(), 6u);
  for (const char* key : {"ppo/policy_loss", "ppo/value_loss", "ppo/kl", "ppo/mean_score", "ppo/clipfrac",
                          "probs/chosen", "probs/unseen"}) {
    EXPECT_TRUE(rows.back().contains(key)) << key;
  }
  EXPECT_GT(rows.back()["probs/chosen"].get<double>(), rows.front()["probs/chosen"].get<double>() + 0.2);
  EXPECT_GT(rows.back()["ppo/mean_score"].get<double>(), rows.front()["ppo/mean_score"].get<double>());
}

TEST(PpoStageTest, ConfigRules) {
  const std::string head = R"(name: x
model: {plugin: toy_mlp}
stages:
  - {name: sft, kind: sft, data: {path: a.jsonl}, steps: 1}
)";
  const std::string ok = "  - {name: ppo, kind: ppo, reward: {stage: sft}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n";
  EXPECT_NO_THROW(parse_experiment(head + ok, "ok"));
  EXPECT_EQ(parse_experiment(head + ok, "ok").stages[1].kind, "ppo");
  // neither or both reward sources
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "r0"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, reward: {stage: sft, checkpoint: c}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "r2"),
               std::invalid_argument);
  // stages named must come earlier
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, reward: {stage: later}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "late"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, init_from: ppo, reward: {stage: sft}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "self"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, reference: none, reward: {stage: sft}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "ref"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, temperature: 0, reward: {stage: sft}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "temp"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: ppo, kind: ppo, max_new_tokens: 0, reward: {stage: sft}, loss: {plugin: ppo}, data: {path: p.jsonl}, steps: 1}\n", "len"),
               std::invalid_argument);
  // ppo keys are not pairwise keys, and eval.every needs eval.path
  EXPECT_THROW(parse_experiment(head + "  - {name: d, kind: pairwise, temperature: 1.0, loss: {plugin: dpo}, data: {path: p.jsonl}, steps: 1}\n", "kinds"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(head + "  - {name: d, kind: pairwise, eval: {every: 5}, loss: {plugin: dpo}, data: {path: p.jsonl}, steps: 1}\n", "eval"),
               std::invalid_argument);
  // a pairwise loss in a ppo stage, and ppo in a pairwise stage, are refused when plugins load
  const std::string prompts = testing::source_path("configs/toy/data/prompts.jsonl");
  const std::string pairs = testing::source_path("configs/toy/data/pairs.jsonl");
  EXPECT_THROW(validate_experiment(parse_experiment(
                   head + "  - {name: ppo, kind: ppo, reward: {stage: sft}, loss: {plugin: dpo}, data: {path: " + prompts + "}, steps: 1}\n", "fit1")),
               std::invalid_argument);
  EXPECT_THROW(validate_experiment(parse_experiment(
                   head + "  - {name: d, kind: pairwise, loss: {plugin: ppo}, data: {path: " + pairs + "}, steps: 1}\n", "fit2")),
               std::invalid_argument);
}

}  // namespace
}  // namespace prefengine
