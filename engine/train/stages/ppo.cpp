// The ppo stage (RLHF-PPO): per step, sample one response per prompt of the batch from the policy,
// score it with the reward source, compute the frozen reference's log-probs and the value head's
// values, let the RolloutLoss turn them into rewards, advantages and returns (prepare_rollout),
// then run rollout_epochs() passes of minibatch updates over the batch (one optimizer update per
// minibatch). The value head is the policy's scalar head. Rollout helpers: engine/train/ppo_stage.h.
#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "engine/config/yaml_options.h"
#include "engine/data/prompt_records.h"
#include "engine/data/token_records.h"
#include "engine/dist/data_parallel.h"
#include "engine/metrics/diagnostics.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/train/checkpoint.h"
#include "engine/train/init_from.h"
#include "engine/train/ppo_stage.h"
#include "engine/train/reward_source.h"
#include "engine/train/sequence_batch.h"
#include "engine/train/stage_unit.h"
#include "prefengine/model.h"
#include "prefengine/rollout_loss.h"

namespace prefengine {
namespace {

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask) {
  return (x * mask).sum() / mask.sum().clamp_min(1);
}

class PpoStage : public StageUnit {
 public:
  int64_t prepare(StageContext& context) override {
    const StageOptions& stage = context.stage;
    opt_ = stage.ppo;
    loss_ = dynamic_cast<RolloutLoss*>(context.loss);
    loss_name_ = stage.loss_plugin;
    if (context.dp != nullptr && context.dp->world_size() > 1) {
      throw std::invalid_argument(stage_prefix(stage) +
                                  "the ppo stage runs in one process; data parallelism covers sft and pairwise stages");
    }
    PpoPrompts prompts = load_ppo_prompts(context.config, stage);
    prompts_ = std::move(prompts.records);
    eos_id_ = opt_.eos_id >= 0 || !prompts.text ? opt_.eos_id : prompts.eos_id;
    model_ = context.model.get();
    if (!model_->has_scalar_head()) model_->add_scalar_head();  // the value head
    if (context.reward != nullptr) {
      reward_ = context.reward;
    } else {
      owned_reward_ = make_reward_source(context.config, stage, context.run_directory, context.make_model);
      reward_ = owned_reward_.get();
    }
    reference_ = make_frozen_reference(context);  // after the value head: the copy has it too
    if (!opt_.probe_path.empty() && dynamic_cast<const SingleTokenResponses*>(model_) != nullptr) {
      const auto pairs = read_pair_records(opt_.probe_path);
      if (ResponseDistributionProbe::applicable(pairs)) {
        probe_ = std::make_unique<ResponseDistributionProbe>(pairs, model_->vocab_size());
      }
    }
    b_ = stage.batch_size;
    minibatch_ = opt_.minibatch_size > 0 ? std::min(opt_.minibatch_size, b_) : b_;
    minibatches_ = (b_ + minibatch_ - 1) / minibatch_;
    epochs_ = std::max(1, loss_->rollout_epochs());
    model_->train();
    return static_cast<int64_t>(prompts_.size());
  }

  void validate(StageContext& context) override {
    validate_ppo_stage_data(context.config, context.stage, context.model->vocab_size());
    check_prompt_ids(*context.model, load_ppo_prompts(context.config, context.stage).records);
    if (!context.stage.ppo.reward_grader.plugin.empty()) {  // the grader and its options, as run makes them
      (void)make_reward_source(context.config, context.stage, context.run_directory, context.make_model);
    }
    // An outside reward model (reward.checkpoint) is loaded as run will load it: a missing,
    // damaged or mis-shaped model.pt is found before training.
    if (!context.stage.ppo.reward_checkpoint.empty()) {
      auto reward = context.make_model();
      reward->add_scalar_head();
      load_model_weights(context.stage.ppo.reward_checkpoint, *reward);
    }
  }

  int64_t rows_per_step(const StageOptions& stage) const override { return stage.batch_size; }
  int64_t updates_per_step() const override { return epochs_ * minibatches_; }

  void begin_step(const std::vector<int64_t>& records, const StepInfo& /*info*/) override {
    const at::Tensor prompt_index = at::tensor(records, at::kLong);
    rows_ = sample_responses(*model_, prompts_, prompt_index, opt_.max_new_tokens, eos_id_, opt_.temperature);
    batch_ = RolloutBatch();
    at::NoGradGuard no_grad;
    const TokenScores old = score_tokens(*model_, rows_, true, opt_.temperature);
    batch_.old_logps = old.logps;
    batch_.old_values = old.values;
    batch_.ref_logps = score_tokens(*reference_, rows_, false, opt_.temperature).logps;
    batch_.scores = reward_->score(rows_, prompt_index, prompts_).to(at::kFloat);
    batch_.mask = rows_.response_mask;
    call_loss_plugin(loss_name_, [&] {
      loss_->prepare_rollout(batch_);
      return LossOutput();
    });
    if (!batch_.advantages.defined() || !batch_.returns.defined()) {
      throw std::runtime_error("loss plugin '" + loss_name_ + "' filled no advantages or returns in prepare_rollout");
    }
  }

  // rollout_epochs() passes over the batch in a fresh order each, one update per minibatch.
  std::vector<UpdatePlan> plan(const std::vector<int64_t>& /*records*/, const StageOptions& /*stage*/,
                               DataParallel& /*dp*/, std::mt19937_64& rng) override {
    std::vector<UpdatePlan> updates;
    std::vector<int64_t> order(static_cast<size_t>(b_));
    for (int64_t e = 0; e < epochs_; ++e) {
      for (int64_t i = 0; i < b_; ++i) order[static_cast<size_t>(i)] = i;
      std::shuffle(order.begin(), order.end(), rng);
      for (int64_t m = 0; m < minibatches_; ++m) {
        const int64_t lo = m * minibatch_, hi = std::min(b_, lo + minibatch_);
        updates.push_back({std::vector<int64_t>(order.begin() + lo, order.begin() + hi)});
      }
    }
    return updates;
  }

  LossOutput micro_batch(const std::vector<int64_t>& picked, const StepInfo& info) override {
    const at::Tensor sel = at::tensor(picked, at::kLong);
    // select() drops columns that are padding in every picked row; the rollout tensors keep the
    // batch's width, so pad the minibatch's scores back to it
    const SequenceTensors sub = rows_.select(picked);
    const int64_t pad = rows_.input_ids.size(1) - sub.input_ids.size(1);
    const TokenScores now = score_tokens(*model_, sub, true, opt_.temperature);
    RolloutBatch mb;
    mb.logps = pad > 0 ? at::constant_pad_nd(now.logps, {0, pad}) : now.logps;
    mb.values = pad > 0 ? at::constant_pad_nd(now.values, {0, pad}) : now.values;
    mb.old_logps = batch_.old_logps.index_select(0, sel);
    mb.ref_logps = batch_.ref_logps.index_select(0, sel);
    mb.old_values = batch_.old_values.index_select(0, sel);
    mb.scores = batch_.scores.index_select(0, sel);
    mb.rewards = batch_.rewards.defined() ? batch_.rewards.index_select(0, sel) : at::Tensor();
    mb.advantages = batch_.advantages.index_select(0, sel);
    mb.returns = batch_.returns.index_select(0, sel);
    mb.mask = batch_.mask.index_select(0, sel);
    mb.want_metrics = info.log_now;
    return call_loss_plugin(loss_name_, [&] { return loss_->rollout(mb); });
  }

  void end_step(MetricsRow& row, const StepInfo& /*info*/) override {
    const at::Tensor mask = batch_.mask;
    row.set("ppo/mean_score", batch_.scores.mean().item<double>());
    row.set("ppo/kl", ((batch_.old_logps - batch_.ref_logps) * mask).sum(1).mean().item<double>());
    row.set("ppo/mean_return", masked_mean(batch_.returns, mask).item<double>());
    row.set("ppo/response_length", mask.sum(1).mean().item<double>());
    if (probe_) probe_->measure(*model_, row);
  }

  std::vector<std::string> progress_keys() const override {
    return {"loss", "ppo/mean_score", "ppo/kl", "probs/chosen"};
  }

  std::string describe(int64_t records) const override {
    return "ppo, loss " + loss_name_ + ": " + std::to_string(records) + " prompts, " + std::to_string(epochs_) +
           " epochs x " + std::to_string(minibatches_) + " minibatches per rollout; " + reward_->describe();
  }

 private:
  PpoStageOptions opt_;
  RolloutLoss* loss_ = nullptr;
  std::string loss_name_;
  Model* model_ = nullptr;
  std::vector<PromptRecord> prompts_;
  RewardSource* reward_ = nullptr;
  std::unique_ptr<RewardSource> owned_reward_;
  std::shared_ptr<Model> reference_;
  std::unique_ptr<ResponseDistributionProbe> probe_;
  int64_t eos_id_ = -1;
  int64_t b_ = 0, minibatch_ = 0, minibatches_ = 1, epochs_ = 1;
  SequenceTensors rows_;
  RolloutBatch batch_;
};

}  // namespace

StageKindSpec ppo_stage_kind() {
  StageKindSpec spec;
  spec.name = "ppo";
  spec.summary = "RLHF-PPO: rollouts scored by a reward model, KL to the frozen reference";
  spec.read_options = [](PluginOptions& o, StageOptions& stage, const std::vector<std::string>& earlier) {
    stage.reference = o.get_choice("reference", stage.reference, {"frozen_copy", "none"});
    PpoStageOptions& ppo = stage.ppo;
    ppo.reward_stage = o.get_string("reward.stage", "");
    ppo.reward_checkpoint = o.get_string("reward.checkpoint", "");
    ppo.probe_path = o.get_string("probe.path", "");
    ppo.max_new_tokens = o.get_int(trl_key(o, "max_new_tokens", "max_completion_length"), ppo.max_new_tokens, 1, 1 << 20);
    ppo.eos_id = o.get_int("eos_id", ppo.eos_id, -1);
    ppo.temperature = o.get_double("temperature", ppo.temperature, 0, 1e6, /*min_exclusive=*/true);
    ppo.minibatch_size = o.get_int("minibatch_size", 0, 0, 1 << 20);
    ppo.reward_grader = read_grader_options(o, "reward.grader");  // reward: {grader: math} or {grader: {plugin, ...}}
    ppo.reward_center = o.get_double("reward.center", ppo.reward_center);
    ppo.reward_half_range = o.get_double("reward.half_range", ppo.reward_half_range, 0, 1e300, /*min_exclusive=*/true);
    const int sources = !ppo.reward_stage.empty() + !ppo.reward_checkpoint.empty() + !ppo.reward_grader.plugin.empty();
    if (sources != 1) {
      o.fail("reward", "exactly one of reward.stage (an earlier stage of this experiment), reward.checkpoint "
             "or reward.grader (a grader plugin)", sources == 0 ? "none" : "several");
    }
    if (ppo.reward_grader.plugin.empty() && (o.has("reward.center") || o.has("reward.half_range"))) {
      o.fail("reward.center", "reward.center and reward.half_range only with reward.grader", "a reward model");
    }
    if (stage.reference != "frozen_copy") {
      o.fail("reference", "frozen_copy (PPO's KL penalty needs the reference)", "'" + stage.reference + "'");
    }
    if (stage.grad_accum != 1) {
      o.fail("grad_accum", "1 (a ppo stage makes one update per minibatch: see minibatch_size)",
             std::to_string(stage.grad_accum));
    }
    if (!ppo.reward_stage.empty() && std::find(earlier.begin(), earlier.end(), ppo.reward_stage) == earlier.end()) {
      o.fail("reward.stage", "the name of an earlier stage (a ppo stage reads its checkpoint)",
             "'" + ppo.reward_stage + "'");
    }
  };
  spec.check_fit = [](const StageOptions& stage, const Loss* loss, const Model& model) {
    if (dynamic_cast<const RolloutLoss*>(loss) == nullptr) {
      throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                  "' takes preference pairs, not rollouts (a ppo stage needs e.g. loss: {plugin: ppo})");
    }
    if (!model.supports_scalar_head()) {
      throw std::invalid_argument(stage_prefix(stage) + "the model has no scalar head for the value function "
                                  "and the reward model");
    }
  };
  spec.create = [] { return std::make_unique<PpoStage>(); };
  return spec;
}

}  // namespace prefengine
