#pragma once
// The ppo stage (RLHF-PPO, ALGORITHMS.md): per step, sample one response per prompt of a batch
// from the policy, score it with a reward source, compute the frozen reference's and the value
// head's numbers, let the loss plugin turn them into rewards, advantages and returns
// (prepare_rollout), then run rollout_epochs() passes of minibatch updates over the batch.
// The value head is the policy model's scalar head (value of the state before each response token).
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
class MetricsLogger;
class RewardSource;

struct PpoStageContext {
  const ExperimentConfig& config;
  size_t index;                                     // the stage
  const std::string& directory;                     // the run directory
  MetricsLogger& metrics;
  int64_t& global_step;                             // optimizer steps over all stages
  std::function<std::shared_ptr<Model>()> make_model;  // a fresh model of the experiment's plugin
};

// Throws std::invalid_argument when the loss does not take rollouts or the model has no scalar head.
void check_ppo_loss_fit(const StageOptions& stage, const Loss& loss, const Model& model);

// Reads the prompts (and the probe's pairs) and checks their token ranges.
void validate_ppo_stage_data(const StageOptions& stage, int64_t vocab_size);

// The reward source the stage config names: reward.stage (this run's checkpoint of an earlier
// stage) or reward.checkpoint, loaded into a fresh model with a scalar head.
std::unique_ptr<RewardSource> make_reward_source(const StageOptions& stage, const PpoStageContext& context);

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

// Runs the stage. `model` may be replaced (init_from); `reward` overrides the configured source
// (tests, graders).
void run_ppo_stage(PpoStageContext& context, std::shared_ptr<Model>& model, RolloutLoss& loss,
                   RewardSource* reward = nullptr);

}  // namespace prefengine
