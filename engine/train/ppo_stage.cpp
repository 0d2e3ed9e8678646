#include "engine/train/ppo_stage.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <stdexcept>

#include <ATen/CPUGeneratorImpl.h>
#include <spdlog/spdlog.h>

#include "engine/data/prompt_records.h"
#include "engine/data/token_records.h"
#include "engine/generation/generator.h"
#include "engine/metrics/diagnostics.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/train/checkpoint.h"
#include "engine/train/flat_optimizer.h"
#include "engine/train/reward_source.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

std::string stage_prefix(const StageOptions& stage) {
  return stage.location + ": stage '" + stage.name + "': ";
}

// Prompt indices for rollouts: a seeded permutation per epoch, wrapping, as for pairs.
class PromptSampler {
 public:
  PromptSampler(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed)
      : n_(n), batch_size_(batch_size), shuffle_(shuffle), rng_(seed) {}
  at::Tensor next() {
    std::vector<int64_t> out;
    while (static_cast<int64_t>(out.size()) < batch_size_) {
      if (cursor_ == static_cast<int64_t>(order_.size())) {
        order_.resize(n_);
        for (int64_t i = 0; i < n_; ++i) order_[i] = i;
        if (shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
        cursor_ = 0;
      }
      out.push_back(order_[cursor_++]);
    }
    return at::tensor(out, at::kLong);
  }
  std::mt19937_64& rng() { return rng_; }

 private:
  int64_t n_, batch_size_;
  bool shuffle_;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
};

at::Tensor masked_mean(const at::Tensor& x, const at::Tensor& mask) {
  return (x * mask).sum() / mask.sum().clamp_min(1);
}

}  // namespace

void check_ppo_loss_fit(const StageOptions& stage, const Loss& loss, const Model& model) {
  if (dynamic_cast<const RolloutLoss*>(&loss) == nullptr) {
    throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                "' takes preference pairs, not rollouts (a ppo stage needs e.g. loss: {plugin: ppo})");
  }
  if (!model.supports_scalar_head()) {
    throw std::invalid_argument(stage_prefix(stage) + "the model has no scalar head for the value function "
                                "and the reward model");
  }
}

void validate_ppo_stage_data(const StageOptions& stage, int64_t vocab_size) {
  (void)read_prompt_records(stage.data.path, stage.data.max_records);
  if (!stage.ppo.probe_path.empty()) check_token_range(read_pair_records(stage.ppo.probe_path), vocab_size);
}

std::unique_ptr<RewardSource> make_reward_source(const StageOptions& stage, const PpoStageContext& context) {
  const std::string dir = !stage.ppo.reward_checkpoint.empty()
                              ? stage.ppo.reward_checkpoint
                              : context.directory + "/checkpoints/" + stage.ppo.reward_stage;
  auto model = context.make_model();
  model->add_scalar_head();
  load_model_weights(dir, *model);
  return std::make_unique<RewardModelSource>(std::move(model), dir);
}

SequenceTensors sample_responses(Model& model, const std::vector<PromptRecord>& prompts,
                                 const at::Tensor& index, int64_t max_new_tokens, int64_t eos_id,
                                 double temperature) {
  const int64_t b = index.numel();
  std::vector<const std::vector<int64_t>*> prompt_rows(b);
  for (int64_t i = 0; i < b; ++i) prompt_rows[i] = &prompts[index[i].item<int64_t>()].prompt;
  GenerationOptions options;
  options.max_new_tokens = max_new_tokens;
  options.eos_id = eos_id;
  options.temperature = temperature;
  // The default CPU generator, which at::multinomial used here before the engine generator: a
  // seeded run draws the same numbers in the same order (one call per step over the live rows).
  const PromptBatch batch = left_pad_prompts(prompt_rows, /*pad_id=*/0);
  const GenerationResult result = generate(model, batch.input_ids, batch.attention_mask, options,
                                           at::detail::getDefaultCPUGenerator());
  const std::vector<std::vector<int64_t>> response = completion_tokens(result);
  std::vector<TokenSequence> rows;
  for (int64_t i = 0; i < b; ++i) rows.push_back({prompt_rows[i], &response[i]});
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

void run_ppo_stage(PpoStageContext& context, std::shared_ptr<Model>& model, RolloutLoss& loss, RewardSource* reward) {
  const ExperimentConfig& config = context.config;
  const StageOptions& stage = config.stages[context.index];
  const PpoStageOptions& opt = stage.ppo;
  const std::vector<PromptRecord> prompts = read_prompt_records(stage.data.path, stage.data.max_records);

  if (!opt.init_from.empty()) {
    auto fresh = context.make_model();
    load_model_weights(context.directory + "/checkpoints/" + opt.init_from, *fresh);
    model = fresh;
    spdlog::info("stage '{}': policy reloaded from stage '{}'", stage.name, opt.init_from);
  }
  if (!model->has_scalar_head()) model->add_scalar_head();  // the value head

  std::unique_ptr<RewardSource> owned;
  if (reward == nullptr) {
    owned = make_reward_source(stage, context);
    reward = owned.get();
  }
  auto reference = context.make_model();
  reference->add_scalar_head();
  copy_weights(*model, *reference);
  reference->eval();
  for (auto& p : reference->parameters()) p.set_requires_grad(false);

  std::unique_ptr<ResponseDistributionProbe> probe;
  if (!opt.probe_path.empty() && dynamic_cast<const SingleTokenResponses*>(model.get()) != nullptr) {
    const auto pairs = read_pair_records(opt.probe_path);
    if (ResponseDistributionProbe::applicable(pairs)) {
      probe = std::make_unique<ResponseDistributionProbe>(pairs, model->vocab_size());
    }
  }

  const int64_t b = stage.batch_size;
  const int64_t minibatch = opt.minibatch_size > 0 ? std::min(opt.minibatch_size, b) : b;
  const int64_t minibatches = (b + minibatch - 1) / minibatch;
  const int64_t epochs = std::max(1, loss.rollout_epochs());
  const int64_t steps = stage.steps > 0 ? stage.steps
                                        : stage.epochs * ((static_cast<int64_t>(prompts.size()) + b - 1) / b);

  model->train();
  FlatParameters flat(*model);
  FlatOptimizer optimizer(flat, stage.optimizer, steps * epochs * minibatches);
  PromptSampler sampler(static_cast<int64_t>(prompts.size()), b, stage.data.shuffle,
                        static_cast<uint64_t>(config.seed) * 1000003ULL + context.index);
  const std::string checkpoint_dir = context.directory + "/checkpoints/" + stage.name;
  spdlog::info("stage '{}' (ppo, loss {}): {} prompts, {} rollout steps x {} epochs x {} minibatches; {}",
               stage.name, stage.loss_plugin, prompts.size(), steps, epochs, minibatches, reward->describe());
  const auto start = std::chrono::steady_clock::now();
  auto last_report = start;

  for (int64_t step = 1; step <= steps; ++step) {
    const bool log_now = step == 1 || step % stage.log_every == 0 || step == steps;
    const at::Tensor prompt_index = sampler.next();
    const SequenceTensors rows = sample_responses(*model, prompts, prompt_index, opt.max_new_tokens, opt.eos_id,
                                                  opt.temperature);
    RolloutBatch batch;
    {
      at::NoGradGuard no_grad;
      const TokenScores old = score_tokens(*model, rows, true, opt.temperature);
      batch.old_logps = old.logps;
      batch.old_values = old.values;
      batch.ref_logps = score_tokens(*reference, rows, false, opt.temperature).logps;
      batch.scores = reward->score(rows, prompt_index, prompts).to(at::kFloat);
      batch.mask = rows.response_mask;
      loss.prepare_rollout(batch);
    }
    if (!batch.advantages.defined() || !batch.returns.defined()) {
      throw std::runtime_error(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                               "' filled no advantages or returns in prepare_rollout");
    }
    std::map<std::string, std::vector<double>> sums;
    double loss_sum = 0, grad_norm = 0;
    int64_t updates = 0;
    std::vector<int64_t> order(b);
    for (int64_t e = 0; e < epochs; ++e) {
      for (int64_t i = 0; i < b; ++i) order[i] = i;
      std::shuffle(order.begin(), order.end(), sampler.rng());
      for (int64_t m = 0; m < minibatches; ++m) {
        const int64_t lo = m * minibatch, hi = std::min(b, lo + minibatch);
        const std::vector<int64_t> picked(order.begin() + lo, order.begin() + hi);
        const at::Tensor sel = at::tensor(picked, at::kLong);
        // select() drops columns that are padding in every picked row; the rollout tensors keep
        // the batch's width, so pad the minibatch's scores back to it
        const SequenceTensors sub = rows.select(picked);
        const int64_t width = rows.input_ids.size(1);
        flat.zero_grad();
        const TokenScores now = score_tokens(*model, sub, true, opt.temperature);
        const int64_t pad = width - sub.input_ids.size(1);
        RolloutBatch mb;
        mb.logps = pad > 0 ? at::constant_pad_nd(now.logps, {0, pad}) : now.logps;
        mb.values = pad > 0 ? at::constant_pad_nd(now.values, {0, pad}) : now.values;
        mb.old_logps = batch.old_logps.index_select(0, sel);
        mb.ref_logps = batch.ref_logps.index_select(0, sel);
        mb.old_values = batch.old_values.index_select(0, sel);
        mb.scores = batch.scores.index_select(0, sel);
        mb.rewards = batch.rewards.defined() ? batch.rewards.index_select(0, sel) : at::Tensor();
        mb.advantages = batch.advantages.index_select(0, sel);
        mb.returns = batch.returns.index_select(0, sel);
        mb.mask = batch.mask.index_select(0, sel);
        LossOutput out = loss.rollout(mb);
        if (!out.loss.defined() || out.loss.numel() != 1) {
          throw std::runtime_error(stage_prefix(stage) + "step " + std::to_string(step) + ": loss plugin '" +
                                   stage.loss_plugin + "' returned no scalar loss");
        }
        const double value = out.loss.item<double>();
        if (!std::isfinite(value)) {
          throw std::runtime_error(stage_prefix(stage) + "step " + std::to_string(step) + ": loss plugin '" +
                                   stage.loss_plugin + "' returned a non-finite loss (" + std::to_string(value) +
                                   "); the last good checkpoint is " + checkpoint_dir);
        }
        out.loss.backward();
        grad_norm = optimizer.step();
        ++context.global_step;
        loss_sum += value;
        ++updates;
        for (const auto& [name, tensor] : out.metrics) {
          sums[name].push_back(tensor.detach().to(at::kDouble).mean().item<double>());
        }
      }
    }
    if (log_now) {
      MetricsRow row;
      row.stage = stage.name;
      row.step = step;
      row.global_step = context.global_step;
      row.set("loss", loss_sum / std::max<int64_t>(updates, 1));
      for (const auto& [name, values] : sums) {
        double s = 0;
        for (double v : values) s += v;
        row.set(name, s / values.size());
      }
      const at::Tensor mask = batch.mask;
      row.set("ppo/mean_score", batch.scores.mean().item<double>());
      row.set("ppo/kl", ((batch.old_logps - batch.ref_logps) * mask).sum(1).mean().item<double>());
      row.set("ppo/mean_return", masked_mean(batch.returns, mask).item<double>());
      row.set("ppo/response_length", mask.sum(1).mean().item<double>());
      if (probe) probe->measure(*model, row);
      row.set("grad_norm", grad_norm);
      row.set("lr", optimizer.current_lr());
      context.metrics.log(row);
      const auto now = std::chrono::steady_clock::now();
      if (step == 1 || step == steps || now - last_report > std::chrono::seconds(1)) {
        last_report = now;
        const double* chosen = row.find("probs/chosen");
        spdlog::info("[{}] step {}/{}  loss {:.4f}  score {:.4f}  kl {:.4f}{}", stage.name, step, steps,
                     loss_sum / std::max<int64_t>(updates, 1), batch.scores.mean().item<double>(),
                     row.find("ppo/kl") ? *row.find("ppo/kl") : 0.0,
                     chosen ? "  probs/chosen " + std::to_string(*chosen) : std::string());
      }
    }
    if ((stage.checkpoint_every > 0 && step % stage.checkpoint_every == 0) || step == steps) {
      save_checkpoint(checkpoint_dir, *model, &optimizer,
                      {{"stage", stage.name}, {"step", step}, {"global_step", context.global_step}});
    }
  }
}

}  // namespace prefengine
