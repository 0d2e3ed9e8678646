#include "engine/train/ppo_stage.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include "engine/data/prompt_records.h"
#include "engine/data/stage_data.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/stage_unit.h"
#include "prefengine/plugin_loader.h"
#include "engine/data/token_records.h"
#include "engine/loop/sampling.h"
#include "engine/train/checkpoint.h"
#include "engine/train/reward_source.h"
#include "prefengine/model.h"

namespace prefengine {

void validate_ppo_stage_data(const ExperimentConfig& config, const StageOptions& stage, int64_t vocab_size) {
  check_token_range(load_ppo_prompts(config, stage).records, vocab_size);
  if (!stage.ppo.probe_path.empty()) check_token_range(read_pair_records(stage.ppo.probe_path), vocab_size);
}

PpoPrompts load_ppo_prompts(const ExperimentConfig& config, const StageOptions& stage) {
  PpoPrompts out;
  if (is_pretokenized_jsonl(stage.data.path)) {
    out.records = read_prompt_records(stage.data.path, stage.data.max_records);
    return out;
  }
  StagePrompts text = load_stage_prompts(config, stage, "text prompts");
  out.records = std::move(text.records);
  out.text = true;
  out.eos_id = text.tokenizer->eos_id();
  return out;
}

std::unique_ptr<RewardSource> make_reward_source(const ExperimentConfig& config, const StageOptions& stage,
                                                 const std::string& run_directory,
                                                 const std::function<std::shared_ptr<Model>()>& make_model) {
  if (!stage.ppo.reward_grader.plugin.empty()) {
    auto loader = std::make_unique<PluginLoader>(config.plugin_paths);
    auto grader = create_grader(*loader, stage.ppo.reward_grader);
    return std::make_unique<GraderRewardSource>(std::move(loader), std::move(grader), stage.ppo.reward_grader.plugin,
                                                make_experiment_tokenizer(config, stage_prefix(stage) + "reward.grader"),
                                                stage.ppo.reward_center, stage.ppo.reward_half_range);
  }
  const std::string dir = !stage.ppo.reward_checkpoint.empty()
                              ? stage.ppo.reward_checkpoint
                              : run_directory + "/checkpoints/" + stage.ppo.reward_stage;
  auto model = make_model();
  model->add_scalar_head();
  load_model_weights(dir, *model);
  return std::make_unique<RewardModelSource>(std::move(model), dir);
}

SequenceTensors sample_responses(Model& model, const std::vector<PromptRecord>& prompts,
                                 const at::Tensor& index, int64_t max_new_tokens, int64_t eos_id,
                                 double temperature) {
  const int64_t b = index.numel();
  std::vector<const PromptRecord*> picked(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) picked[static_cast<size_t>(i)] = &prompts[index[i].item<int64_t>()];
  // One response a prompt, the whole step in one generate() call (one draw per step over the live
  // rows) from the default CPU generator, which at::multinomial used here before the engine
  // generator: a seeded run draws the same numbers in the same order.
  SamplingOptions sampling;
  sampling.n = 1;
  sampling.batch_size = std::max<int64_t>(b, 1);
  sampling.max_new_tokens = max_new_tokens;
  sampling.temperature = temperature;
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  const std::vector<std::vector<int64_t>> response =
      sample_completions(model, picked, sampling, eos_id, /*pad_id=*/0, generator);
  std::vector<TokenSequence> rows;
  for (size_t i = 0; i < picked.size(); ++i) rows.push_back({&picked[i]->prompt, &response[i]});
  return pack_sequences(rows);
}

TokenScores score_tokens(Model& model, const SequenceTensors& rows, bool want_values, double temperature) {
  ModelInput input;
  input.input_ids = rows.input_ids;
  input.attention_mask = rows.attention_mask;
  input.want_scalar = want_values;
  ModelOutput out = model.forward(input);
  at::Tensor logits = out.logits.to(at::kFloat);
  if (temperature != 1.0) logits = logits / temperature;
  TokenScores scores;
  scores.logps = gather_token_logps(logits, rows.input_ids, rows.response_mask);
  if (want_values) {
    // V for response token t is the value of the state before it: the scalar head at t - 1.
    const at::Tensor scalar = out.scalar.to(at::kFloat);
    const at::Tensor shifted = at::cat({at::zeros({scalar.size(0), 1}, scalar.options()),
                                        scalar.slice(1, 0, scalar.size(1) - 1)}, 1);
    scores.values = shifted * rows.response_mask;
  }
  return scores;
}

}  // namespace prefengine
