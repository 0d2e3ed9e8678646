#pragma once
// The ppo stage's rollout helpers (the stage itself: engine/train/stages/ppo.cpp): sampling
// responses, scoring their tokens with the policy, the reference and the value head (the policy's
// scalar head: the value of the state before each response token), and the reward source.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/config/experiment_config.h"
#include "engine/data/records.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/rollout_loss.h"

namespace prefengine {

class Model;
class RewardSource;

// The stage's prompts: pre-tokenized ({"prompt_ids", ...}) or text ({"prompt", "reference"?},
// tokenized with the experiment's tokenizer; their responses then stop at its EOS).
struct PpoPrompts {
  std::vector<PromptRecord> records;
  bool text = false;
  int64_t eos_id = -1;  // the tokenizer's EOS for text prompts
};
PpoPrompts load_ppo_prompts(const ExperimentConfig& config, const StageOptions& stage);

// Reads the prompts (and the probe's pairs) and checks their token ranges.
void validate_ppo_stage_data(const ExperimentConfig& config, const StageOptions& stage, int64_t vocab_size);

// The reward source the stage config names: reward.stage (this run's checkpoint of an earlier
// stage) or reward.checkpoint, loaded into a fresh model (make_model) with a scalar head; or
// reward.grader, a grader plugin scoring the decoded response (GraderRewardSource).
std::unique_ptr<RewardSource> make_reward_source(const ExperimentConfig& config, const StageOptions& stage,
                                                 const std::string& run_directory,
                                                 const std::function<std::shared_ptr<Model>()>& make_model);

// Samples a response for every prompt in `index`: up to max_new_tokens tokens, stopping a row at
// eos_id. Returns prompt + response rows (response_mask marks the sampled tokens). Samples with the
// engine generator (engine/generation/generator.h: the model's KV cache when it has one) from the
// default CPU generator.
SequenceTensors sample_responses(Model& model, const std::vector<PromptRecord>& prompts,
                                 const at::Tensor& index, int64_t max_new_tokens, int64_t eos_id,
                                 double temperature);

// Per-token log-probs of the response tokens ([B, T], 0 elsewhere) and, when asked, the value of
// the state before each response token (the scalar head one position earlier).
struct TokenScores {
  at::Tensor logps;
  at::Tensor values;
};
TokenScores score_tokens(Model& model, const SequenceTensors& rows, bool want_values, double temperature);

}  // namespace prefengine
