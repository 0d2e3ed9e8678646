#include "engine/train/experiment_runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "engine/data/stage_data.h"
#include "engine/data/token_records.h"
#include "engine/dist/data_parallel.h"
#include "engine/metrics/diagnostics.h"
#include "engine/metrics/logging.h"
#include "engine/metrics/metrics_logger.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/checkpoint.h"
#include "engine/train/flat_optimizer.h"
#include "engine/train/pairwise_eval.h"
#include "engine/train/ppo_stage.h"
#include "engine/train/reference_cache.h"
#include "engine/train/resume.h"
#include "engine/train/run_directory.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/pairwise_loss.h"
#include "prefengine/rollout_loss.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

using Clock = std::chrono::steady_clock;

// Batches of indices over [0, n): a fresh seeded permutation per epoch, wrapping across epochs,
// so every batch has exactly `batch_size` rows.
class BatchSampler {
 public:
  BatchSampler(int64_t n, int64_t batch_size, bool shuffle, uint64_t seed)
      : n_(n), batch_size_(batch_size), shuffle_(shuffle), rng_(seed) {
    next_epoch();
  }
  std::vector<int64_t> next() {
    std::vector<int64_t> batch;
    batch.reserve(batch_size_);
    while (static_cast<int64_t>(batch.size()) < batch_size_) {
      if (cursor_ == n_) next_epoch();
      batch.push_back(order_[cursor_++]);
    }
    return batch;
  }
  // For checkpoints: the generator, this epoch's order and the position in it.
  nlohmann::json state() const {
    std::ostringstream rng;
    rng << rng_;
    return {{"rng", rng.str()}, {"order", order_}, {"cursor", cursor_}};
  }
  void load(const nlohmann::json& state) {
    std::istringstream rng(state.at("rng").get<std::string>());
    rng >> rng_;
    order_ = state.at("order").get<std::vector<int64_t>>();
    cursor_ = state.at("cursor").get<int64_t>();
  }

 private:
  void next_epoch() {
    order_.resize(n_);
    for (int64_t i = 0; i < n_; ++i) order_[i] = i;
    if (shuffle_) std::shuffle(order_.begin(), order_.end(), rng_);
    cursor_ = 0;
  }
  int64_t n_;
  int64_t batch_size_;
  bool shuffle_;
  std::mt19937_64 rng_;
  std::vector<int64_t> order_;
  int64_t cursor_ = 0;
};

int64_t total_steps(const StageOptions& stage, int64_t records) {
  if (stage.steps > 0) return stage.steps;
  const int64_t per_step = stage.batch_size * stage.grad_accum;
  return stage.epochs * ((records + per_step - 1) / per_step);
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  return text;
}

// Steady-state step time of a stage: every step after the stage's first (allocator and caches
// warm up there), without checkpoint writes. run.json reports it as the stage's "step_time".
class StepTimer {
 public:
  explicit StepTimer(int64_t first_step) : first_step_(first_step) {}
  void begin() { start_ = Clock::now(); }
  // call after the step's work (metrics included), before any checkpoint write
  void end(int64_t step) {
    if (step == first_step_) return;
    seconds_ += std::chrono::duration<double>(Clock::now() - start_).count();
    ++steps_;
  }
  nlohmann::json to_json() const {
    return {{"steps", steps_}, {"seconds", seconds_}, {"steps_per_second", steps_ / std::max(seconds_, 1e-9)}};
  }

 private:
  int64_t first_step_;
  Clock::time_point start_;
  double seconds_ = 0;
  int64_t steps_ = 0;
};

// Console progress: at most one line a second (and the last step), so the log stays readable.
class Progress {
 public:
  Progress(std::string stage, int64_t total) : stage_(std::move(stage)), total_(total), start_(Clock::now()) {}
  void report(int64_t step, const MetricsRow& row, const std::vector<std::string>& keys) {
    const auto now = Clock::now();
    if (step != total_ && step != 1 && now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double rate = step / std::max(elapsed, 1e-9);
    std::ostringstream line;
    line << "[" << stage_ << "] step " << step << "/" << total_;
    for (const auto& k : keys) {
      if (const double* v = row.find(k)) line << "  " << k << " " << *v;
    }
    line.precision(1);
    line << std::fixed << "  " << rate << " steps/s  ETA " << format_duration((total_ - step) / rate);
    spdlog::info("{}", line.str());
  }

 private:
  std::string stage_;
  int64_t total_;
  Clock::time_point start_;
  Clock::time_point last_{};
};

std::string at_location(const PluginOptions& options, const std::string& key) {
  auto it = options.entries().find(key);
  const std::string where = it != options.entries().end() && !it->second.location.empty()
                                ? it->second.location
                                : options.location();
  const std::string path = options.path().empty() ? key : options.path() + "." + key;
  return where.empty() ? path : where + ": " + path;
}

PluginOptions copy_options(const PluginOptions& options) {
  PluginOptions copy(options.path(), options.location());
  for (const auto& [key, entry] : options.entries()) copy.set(key, entry);
  return copy;
}

// Creates a plugin from a config block, putting an "unknown ... plugin" error at the block's
// `plugin:` key (option errors already name their keys).
template <typename Create>
auto create_from_block(const PluginOptions& block, const char* kind, Create create) {
  PluginOptions options = copy_options(block);
  (void)options.get_string("plugin", "");  // consumed by the engine, not by the plugin
  try {
    return create(options);
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    if (message.rfind(std::string("unknown ") + kind + " plugin", 0) == 0) {
      throw std::invalid_argument(at_location(block, "plugin") + ": " + message);
    }
    throw;
  }
}

std::shared_ptr<Model> create_model(const PluginLoader& loader, const ExperimentConfig& config) {
  return create_from_block(config.model, "model", [&](PluginOptions& options) {
    return loader.create_model(config.model_plugin, options);
  });
}

std::shared_ptr<Loss> create_loss(const PluginLoader& loader, const StageOptions& stage) {
  return create_from_block(stage.loss, "loss", [&](PluginOptions& options) {
    return loader.create_loss(stage.loss_plugin, options);
  });
}

std::string describe_sources(const std::vector<PairRecord>& records, const std::vector<int64_t>& index) {
  std::string out;
  const size_t n = std::min<size_t>(index.size(), 3);
  for (size_t i = 0; i < n; ++i) out += (out.empty() ? "" : ", ") + records[index[i]].source;
  if (index.size() > n) out += ", ...";
  return out;
}

void check_loss_plugin_fit(const StageOptions& stage, const Loss& loss, const Model& model) {
  const LossRequirements req = loss.requirements();
  if (dynamic_cast<const PairwiseLoss*>(&loss) == nullptr) {
    throw std::invalid_argument(stage.location + ": stage '" + stage.name + "': loss plugin '" +
                                stage.loss_plugin + "' takes rollouts, not preference pairs");
  }
  if (req.reference_logps && stage.reference == "none") {
    throw std::invalid_argument(stage.location + ": stage '" + stage.name + "': loss plugin '" +
                                stage.loss_plugin + "' needs reference log-probs, but the stage says reference: none");
  }
  if (req.scalar_head && !model.supports_scalar_head()) {
    throw std::invalid_argument(stage.location + ": stage '" + stage.name + "': loss plugin '" +
                                stage.loss_plugin + "' needs a scalar head, which this model does not have");
  }
}

// The stage's checkpoint, with what resuming needs; then the test hook that simulates an
// interruption (PREFENGINE_STOP_AFTER_STEP).
void save_stage_checkpoint(const std::string& directory, const Model& model, const FlatOptimizer& optimizer,
                           const StageOptions& stage, size_t index, int64_t step, int64_t steps,
                           int64_t global_step, const BatchSampler& sampler) {
  save_checkpoint(directory + "/checkpoints/" + stage.name, model, &optimizer,
                  {{"stage", stage.name}, {"stage_index", index}, {"step", step}, {"steps", steps},
                   {"global_step", global_step}, {"sampler", sampler.state()}, {"generator", generator_state()}});
  if (stop_after_global_step() == global_step) {
    throw std::runtime_error("stopped after global step " + std::to_string(global_step) +
                             " (PREFENGINE_STOP_AFTER_STEP)");
  }
}

void configure_threads(int64_t threads) {
  const int64_t n = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(n));
}

}  // namespace

ExperimentRunner::ExperimentRunner(ExperimentConfig config, std::string run_directory)
    : config_(std::move(config)), directory_(std::move(run_directory)) {}

ExperimentRunner::~ExperimentRunner() = default;

void ExperimentRunner::prepare() {
  if (prepared_) return;
  configure_threads(config_.threads);
  at::manual_seed(static_cast<uint64_t>(config_.seed));
  loader_ = std::make_unique<PluginLoader>(config_.plugin_paths);
  model_ = create_model(*loader_, config_);
  for (const auto& stage : config_.stages) {
    if (stage.kind != StageKind::kSft) {
      auto loss = create_loss(*loader_, stage);
      if (stage.kind == StageKind::kPpo) check_ppo_loss_fit(stage, *loss, *model_);
      else check_loss_plugin_fit(stage, *loss, *model_);
      losses_.push_back(loss);
    } else {
      losses_.push_back(nullptr);
    }
  }
  prepared_ = true;
}

RunResult ExperimentRunner::run() {
  // Data parallelism: only rank 0 writes the run directory; the others print warnings and errors.
  const DistributedEnv env = DistributedEnv::from_environment();
  const bool writer = env.rank == 0;
  if (!writer) spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));
  if (writer && !resume_) {
    std::ofstream out(directory_ + "/config.yaml");
    out << "# resolved from " << config_.source << "\n" << config_.resolved_yaml;
  }
  if (writer) add_log_file(directory_ + "/run.log");
  nlohmann::json status = {{"name", config_.name}, {"config", config_.source}, {"status", "running"}};
  status["stages"] = nlohmann::json::array();
  std::optional<ResumePoint> point;
  if (resume_) {
    point = find_resume_point(directory_);
    if (!point) throw std::invalid_argument(directory_ + ": no checkpoint to resume from (checkpoints/latest)");
    if (writer) truncate_metrics(directory_, point->global_step);
    std::ifstream previous(directory_ + "/run.json");
    const auto old = nlohmann::json::parse(previous, nullptr, /*allow_exceptions=*/false);
    if (old.is_object() && old.contains("stages")) {
      for (const auto& entry : old["stages"]) {
        const bool finished = point->step >= point->state.value("steps", int64_t{0});
        if (entry.contains("index") && entry["index"].get<size_t>() < point->stage_index + (finished ? 1 : 0)) {
          status["stages"].push_back(entry);
        }
      }
    }
  }
  if (env.world_size > 1) status["world_size"] = env.world_size;
  if (writer) write_run_status(directory_, status);
  std::unique_ptr<MetricsLogger> metrics;
  if (writer) metrics = std::make_unique<MetricsLogger>(directory_, /*append=*/resume_);
  metrics_ = metrics.get();
  try {
    dp_ = std::make_unique<DataParallel>(create_communicator(config_.distributed, env), config_.distributed);
    if (dp_->world_size() > 1) {
      spdlog::info("data parallel: {} ranks over {}", dp_->world_size(), dp_->communicator().backend());
    }
    prepare();
    spdlog::info("run directory {}", directory_);
    size_t first_stage = 0;
    if (point) {
      resume_point_ = std::make_shared<ResumePoint>(*point);
      first_stage = begin_resume();
    }
    for (size_t i = first_stage; i < config_.stages.size(); ++i) {
      const auto start = Clock::now();
      const int64_t steps_before = global_step_;
      stage_report_ = nlohmann::json::object();
      if (config_.stages[i].kind == StageKind::kSft) run_sft(i);
      else if (config_.stages[i].kind == StageKind::kPpo) run_ppo(i);
      else run_pairwise(i);
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      nlohmann::json entry = {{"name", config_.stages[i].name},
                              {"index", i},
                              {"steps", global_step_ - steps_before},
                              {"seconds", seconds},
                              {"steps_per_second", (global_step_ - steps_before) / std::max(seconds, 1e-9)}};
      entry.update(stage_report_);
      status["stages"].push_back(entry);
      if (writer) write_run_status(directory_, status);
    }
  } catch (const std::exception& e) {
    status["status"] = "failed";
    status["error"] = e.what();
    status["global_step"] = global_step_;
    if (writer) write_run_status(directory_, status);
    metrics_ = nullptr;
    throw;
  }
  dp_->communicator().barrier();  // the run is complete when every rank is
  if (dp_->world_size() > 1) {
    spdlog::info("data parallel: {} gradient all-reduces took {:.3f} s (waiting for the slowest rank included)",
                 dp_->all_reduce_calls(), dp_->all_reduce_seconds());
  }
  status["status"] = "completed";
  status["global_step"] = global_step_;
  if (writer) write_run_status(directory_, status);
  metrics_ = nullptr;
  spdlog::info("done: {} steps; metrics in {}/metrics.jsonl", global_step_, directory_);
  return {directory_, global_step_};
}

void ExperimentRunner::run_sft(size_t index) {
  const StageOptions& stage = config_.stages[index];
  StageDataStats data_stats;
  std::vector<SftRecord> records = load_stage_sft(config_, stage, &data_stats);
  stage_report_["data"] = data_stats.to_json();
  check_token_range(records, model_->vocab_size());
  const int64_t n = static_cast<int64_t>(records.size());
  const int64_t vocab = model_->vocab_size();
  dp_->broadcast_module(*model_);  // every rank starts the stage from rank 0's weights
  // Rows: prompt + completion (completion records), prompt alone (distribution records).
  std::vector<TokenSequence> rows;
  at::Tensor targets = at::zeros({n, vocab}, at::kFloat);
  std::vector<int64_t> is_distribution(n, 0);
  for (int64_t i = 0; i < n; ++i) {
    rows.push_back({&records[i].prompt, records[i].completion.empty() ? nullptr : &records[i].completion});
    if (!records[i].distribution.empty()) {
      is_distribution[i] = 1;
      targets[i] = at::tensor(records[i].distribution, at::kDouble).to(at::kFloat);
    }
  }
  const SequenceTensors packed = pack_sequences(rows);
  const at::Tensor distribution_rows = at::tensor(is_distribution, at::kLong).to(at::kBool);
  const bool any_distribution = std::count(is_distribution.begin(), is_distribution.end(), 1) > 0;
  const bool any_completion = std::count(is_distribution.begin(), is_distribution.end(), 0) > 0;

  model_->train();
  FlatParameters flat(*model_);
  dp_->check_batch_size(stage.batch_size, stage.location + ": stage '" + stage.name + "'");
  const int64_t steps = total_steps(stage, n);
  FlatOptimizer optimizer(flat, stage.optimizer, steps);
  BatchSampler sampler(n, stage.batch_size, stage.data.shuffle,
                       static_cast<uint64_t>(config_.seed) * 1000003ULL + index);
  Progress progress(stage.name, steps);
  spdlog::info("stage '{}' (sft): {} records, {} steps", stage.name, n, steps);
  int64_t first_step = 1;
  if (const nlohmann::json* state = resume_stage(index, optimizer)) {
    sampler.load(state->at("sampler"));
    first_step = state->at("step").get<int64_t>() + 1;
  }
  StepTimer timer(first_step);
  for (int64_t step = first_step; step <= steps; ++step) {
    timer.begin();
    flat.zero_grad();
    double loss_sum = 0;
    for (int64_t micro = 0; micro < stage.grad_accum; ++micro) {
      const std::vector<int64_t> rows_index = dp_->shard(sampler.next());
      const at::Tensor batch_index = at::tensor(rows_index, at::kLong);
      const SequenceTensors batch = packed.select(rows_index);
      const at::Tensor dist = any_distribution && any_completion ? distribution_rows.index_select(0, batch_index)
                                                                 : at::Tensor();
      ModelInput input;
      input.input_ids = batch.input_ids;
      input.attention_mask = batch.attention_mask;
      const at::Tensor logits = model_->forward(input).logits.to(at::kFloat);
      at::Tensor per_row;
      if (any_distribution) {
        // Cross-entropy to the target distribution of the token after the prompt.
        at::Tensor scores;
        if (logits.size(1) == 1) {
          scores = logits.select(1, 0);
        } else {
          at::Tensor last = (batch.attention_mask.sum(1) - 1).view({-1, 1, 1}).expand({-1, 1, logits.size(2)});
          scores = logits.gather(1, last).squeeze(1);
        }
        per_row = soft_target_cross_entropy(scores, targets.index_select(0, batch_index));
      }
      if (any_completion) {
        // Mean token negative log-likelihood of the completion.
        at::Tensor nll = -sequence_logps(logits, batch.input_ids, batch.response_mask) / batch.lengths.clamp_min(1);
        per_row = per_row.defined() ? at::where(dist, per_row, nll) : nll;
      }
      at::Tensor loss = per_row.mean();
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        throw std::runtime_error("stage '" + stage.name + "' step " + std::to_string(step) +
                                 ": the SFT loss is not finite (" + std::to_string(value) + ")");
      }
      loss_sum += value;
      (loss / static_cast<double>(stage.grad_accum)).backward();
    }
    dp_->average_gradients(flat.grads());
    const bool last = step == steps;
    const bool log_now = step == 1 || step % stage.log_every == 0 || last;
    const double grad_norm = optimizer.step(/*need_norm=*/log_now);
    ++global_step_;
    dp_->maybe_inject_fault(global_step_);
    if (step == 1 || step % stage.log_every == 0 || last) {
      MetricsRow row;
      row.stage = stage.name;
      row.step = step;
      row.global_step = global_step_;
      row.set("loss", loss_sum / stage.grad_accum);
      dp_->reduce_means(row, static_cast<double>(stage.batch_size / dp_->world_size()));
      row.set("grad_norm", grad_norm);
      row.set("lr", optimizer.current_lr());
      if (metrics_) metrics_->log(row);
      if (metrics_) progress.report(step, row, {"loss"});
    }
    timer.end(step);
    if (last) dp_->check_replicas(flat.values(), "stage '" + stage.name + "'");
    if (dp_->is_writer() && ((stage.checkpoint_every > 0 && step % stage.checkpoint_every == 0) || last)) {
      save_stage_checkpoint(directory_, *model_, optimizer, stage, index, step, steps, global_step_, sampler);
    }
  }
  stage_report_["step_time"] = timer.to_json();
}

void ExperimentRunner::run_pairwise(size_t index) {
  const StageOptions& stage = config_.stages[index];
  PairwiseLoss& loss = dynamic_cast<PairwiseLoss&>(*losses_[index]);
  const LossRequirements req = loss.requirements();
  StageDataStats data_stats;
  std::vector<PairRecord> records = load_stage_pairs(config_, stage, &data_stats);
  stage_report_["data"] = data_stats.to_json();
  check_token_range(records, model_->vocab_size());
  const int64_t n = static_cast<int64_t>(records.size());
  if (req.scalar_head && !model_->has_scalar_head()) model_->add_scalar_head();
  dp_->broadcast_module(*model_);  // rank 0's weights, before the reference copies them

  // Rows 0..n-1: prompt + chosen; rows n..2n-1: prompt + rejected; one packing, one width.
  std::vector<TokenSequence> rows;
  for (const auto& r : records) rows.push_back({&r.prompt, &r.chosen});
  for (const auto& r : records) rows.push_back({&r.prompt, &r.rejected});
  const SequenceTensors packed = pack_sequences(rows);

  // Reference log-probs: a frozen copy of the policy as it is now, computed once, then dropped.
  at::Tensor ref_logps;
  if (req.reference_logps) ref_logps = reference_logps(index, packed);

  std::unique_ptr<ResponseDistributionProbe> probe;
  if (dynamic_cast<const SingleTokenResponses*>(model_.get()) != nullptr && ResponseDistributionProbe::applicable(records)) {
    probe = std::make_unique<ResponseDistributionProbe>(records, model_->vocab_size());
  }

  const auto evaluator = make_pairwise_evaluator(stage, req, *model_);

  model_->train();
  FlatParameters flat(*model_);
  dp_->check_batch_size(stage.batch_size, stage.location + ": stage '" + stage.name + "'");
  const int64_t steps = total_steps(stage, n);
  FlatOptimizer optimizer(flat, stage.optimizer, steps);
  BatchSampler sampler(n, stage.batch_size, stage.data.shuffle,
                       static_cast<uint64_t>(config_.seed) * 1000003ULL + index);
  Progress progress(stage.name, steps);
  spdlog::info("stage '{}' (pairwise, loss {}): {} pairs, {} steps", stage.name, stage.loss_plugin, n, steps);
  const std::string checkpoint_dir = directory_ + "/checkpoints/" + stage.name;
  int64_t first_step = 1;
  if (const nlohmann::json* state = resume_stage(index, optimizer)) {
    sampler.load(state->at("sampler"));
    first_step = state->at("step").get<int64_t>() + 1;
  }

  StepTimer timer(first_step);
  for (int64_t step = first_step; step <= steps; ++step) {
    timer.begin();
    bool log_now = step == 1 || step % stage.log_every == 0 || step == steps;
    const bool eval_now = evaluator && evaluator->due(step, log_now);
    log_now = log_now || eval_now;
    flat.zero_grad();
    std::vector<std::vector<at::Tensor>> metric_values;
    std::vector<std::string> metric_names;
    std::vector<at::Tensor> grad_w, grad_l, logp_w, logp_l;
    double loss_sum = 0;
    for (int64_t micro = 0; micro < stage.grad_accum; ++micro) {
      const std::vector<int64_t> batch_index = dp_->shard(sampler.next());
      const int64_t b = static_cast<int64_t>(batch_index.size());
      std::vector<int64_t> rows_index = batch_index;  // chosen rows, then the rejected rows
      for (int64_t i : batch_index) rows_index.push_back(i + n);
      const SequenceTensors batch = packed.select(rows_index);
      SequenceScores scores = score_sequences(*model_, batch, req.policy_logps, req.scalar_head, req.token_logps);
      PairwiseBatch pairs;
      pairs.chosen_lengths = batch.lengths.slice(0, 0, b);
      pairs.rejected_lengths = batch.lengths.slice(0, b);
      at::Tensor logps_all;
      if (req.policy_logps) {
        // A leaf-like handle on the log-probs, so autograd reports dL/dlogp for the diagnostics.
        logps_all = scores.logps;
        if (log_now && logps_all.requires_grad()) logps_all.retain_grad();
        // one split (one autograd node) rather than two slices
        const std::vector<at::Tensor> halves = logps_all.split(b);
        pairs.chosen_logps = halves[0];
        pairs.rejected_logps = halves[1];
        if (req.token_logps) {
          pairs.chosen_token_logps = scores.token_logps.slice(0, 0, b);
          pairs.rejected_token_logps = scores.token_logps.slice(0, b);
          pairs.chosen_mask = batch.response_mask.slice(0, 0, b);
          pairs.rejected_mask = batch.response_mask.slice(0, b);
        }
      }
      if (req.reference_logps) {
        const at::Tensor ref = ref_logps.index_select(0, at::tensor(rows_index, at::kLong));
        pairs.ref_chosen_logps = ref.slice(0, 0, b);
        pairs.ref_rejected_logps = ref.slice(0, b);
      }
      pairs.want_metrics = log_now;
      if (req.scalar_head) {
        pairs.chosen_rewards = scores.scalar.slice(0, 0, b);
        pairs.rejected_rewards = scores.scalar.slice(0, b);
      }
      LossOutput out;
      try {
        out = loss.pairwise(pairs);
      } catch (const std::exception& e) {
        if (dp_->is_writer()) save_checkpoint(checkpoint_dir, *model_, &optimizer,
                        {{"stage", stage.name}, {"step", step - 1}, {"global_step", global_step_}, {"note", "last good state before a failure"}});
        throw std::runtime_error("stage '" + stage.name + "' step " + std::to_string(step) + ": loss plugin '" +
                                 stage.loss_plugin + "' failed: " + e.what() + " (last good checkpoint: " +
                                 checkpoint_dir + ")");
      }
      if (!out.loss.defined() || out.loss.numel() != 1) {
        throw std::runtime_error("stage '" + stage.name + "' step " + std::to_string(step) + ": loss plugin '" +
                                 stage.loss_plugin + "' returned no scalar loss");
      }
      const double value = out.loss.item<double>();
      if (!std::isfinite(value)) {
        if (dp_->is_writer()) save_checkpoint(checkpoint_dir, *model_, &optimizer,
                        {{"stage", stage.name}, {"step", step - 1}, {"global_step", global_step_}, {"note", "last good state before a failure"}});
        throw std::runtime_error("stage '" + stage.name + "' step " + std::to_string(step) + ": loss plugin '" +
                                 stage.loss_plugin + "' returned a non-finite loss (" + std::to_string(value) +
                                 ") on the batch with records " + describe_sources(records, batch_index) +
                                 "; the last good checkpoint is " + checkpoint_dir);
      }
      loss_sum += value;
      if (stage.grad_accum == 1) out.loss.backward();
      else (out.loss / static_cast<double>(stage.grad_accum)).backward();
      if (log_now) {
        if (logps_all.defined() && logps_all.grad().defined()) {
          // per-pair dL_i/dlogp: the loss is a mean over b pairs and grad_accum micro-batches
          const at::Tensor g = logps_all.grad() * static_cast<double>(b * stage.grad_accum);
          grad_w.push_back(g.slice(0, 0, b));
          grad_l.push_back(g.slice(0, b));
          logp_w.push_back(logps_all.detach().slice(0, 0, b));
          logp_l.push_back(logps_all.detach().slice(0, b));
        }
        for (const auto& [name, tensor] : out.metrics) {
          auto it = std::find(metric_names.begin(), metric_names.end(), name);
          if (it == metric_names.end()) {
            metric_names.push_back(name);
            metric_values.emplace_back();
            it = metric_names.end() - 1;
          }
          metric_values[it - metric_names.begin()].push_back(tensor.detach().to(at::kDouble).mean());
        }
      }
    }
    dp_->average_gradients(flat.grads());
    const double grad_norm = optimizer.step(/*need_norm=*/log_now);
    ++global_step_;
    dp_->maybe_inject_fault(global_step_);
    if (log_now) {
      MetricsRow row;
      row.stage = stage.name;
      row.step = step;
      row.global_step = global_step_;
      row.set("loss", loss_sum / stage.grad_accum);
      if (!logp_w.empty()) {
        row.set("logps/chosen", at::cat(logp_w).mean().item<double>());
        row.set("logps/rejected", at::cat(logp_l).mean().item<double>());
      }
      for (size_t m = 0; m < metric_names.size(); ++m) {
        row.set(metric_names[m], at::stack(metric_values[m]).mean().item<double>());
      }
      // Everything so far is a mean over this rank's pairs: make it the mean over all ranks' pairs.
      dp_->reduce_means(row, static_cast<double>(stage.batch_size / dp_->world_size() * stage.grad_accum));
      if (probe) probe->measure(*model_, row);
      if (eval_now) evaluator->measure(*model_, loss, row);
      if (!grad_w.empty()) {
        add_gradient_diagnostics(dp_->gather_rows(at::cat(grad_w)), dp_->gather_rows(at::cat(grad_l)),
                                 dp_->gather_rows(at::cat(logp_w)), dp_->gather_rows(at::cat(logp_l)), row);
      }
      row.set("grad_norm", grad_norm);
      row.set("lr", optimizer.current_lr());
      if (metrics_) metrics_->log(row);
      if (metrics_) progress.report(step, row, {"loss", "probs/chosen", "probs/rejected", "probs/unseen", "logps/chosen",
                                  "logps/rejected", "grad/rejected_log10"});
    }
    timer.end(step);
    if (step == steps) dp_->check_replicas(flat.values(), "stage '" + stage.name + "'");
    if (dp_->is_writer() && ((stage.checkpoint_every > 0 && step % stage.checkpoint_every == 0) || step == steps)) {
      save_stage_checkpoint(directory_, *model_, optimizer, stage, index, step, steps, global_step_, sampler);
    }
  }
  stage_report_["step_time"] = timer.to_json();
}

void ExperimentRunner::run_ppo(size_t index) {
  if (dp_->world_size() > 1) {
    throw std::invalid_argument(config_.stages[index].location + ": stage '" + config_.stages[index].name +
                                "': the ppo stage runs in one process; data parallelism covers sft and pairwise stages");
  }
  PpoStageContext context{config_, index, directory_, *metrics_, global_step_,
                          [this] { return create_model(*loader_, config_); }};
  run_ppo_stage(context, model_, dynamic_cast<RolloutLoss&>(*losses_[index]));
}

at::Tensor ExperimentRunner::reference_logps(size_t index, const SequenceTensors& packed) {
  const StageOptions& stage = config_.stages[index];
  const int64_t rows = packed.rows();
  const std::string cache_dir = reference_cache_directory(config_);
  std::string key;
  if (!cache_dir.empty()) {
    key = reference_cache_key(config_, stage, *model_);
    if (auto cached = load_cached_reference(cache_dir, key, rows)) {
      spdlog::info("stage '{}': reference log-probs for {} sequences from {}/{}.pt", stage.name, rows, cache_dir, key);
      stage_report_["reference"] = "cache";
      return *cached;
    }
  }
  // A frozen copy of the policy as it is now, used once, then dropped.
  auto reference = create_model(*loader_, config_);
  if (model_->has_scalar_head()) reference->add_scalar_head();
  copy_weights(*model_, *reference);
  reference->eval();
  at::NoGradGuard no_grad;
  // Each rank scores its shard of the rows; every rank gets them all back.
  at::Tensor logps = dp_->sharded_rows(rows, [&](int64_t shard_begin, int64_t shard_end) {
    std::vector<at::Tensor> chunks;
    const int64_t chunk = std::max<int64_t>(stage.batch_size, 64);
    for (int64_t start = shard_begin; start < shard_end; start += chunk) {
      const int64_t end = std::min(shard_end, start + chunk);
      std::vector<int64_t> part_index;
      for (int64_t i = start; i < end; ++i) part_index.push_back(i);
      const SequenceTensors part = packed.select(part_index);
      chunks.push_back(score_sequences(*reference, part, true, false).logps);
    }
    return at::cat(chunks);
  });
  stage_report_["reference"] = "computed";
  if (!cache_dir.empty() && dp_->is_writer()) {
    store_cached_reference(cache_dir, key, logps);
    stage_report_["reference"] = "computed, cached";
  }
  spdlog::info("stage '{}': reference log-probs computed for {} sequences", stage.name, rows);
  return logps;
}

size_t ExperimentRunner::begin_resume() {
  const ResumePoint& point = *resume_point_;
  if (point.stage_index >= config_.stages.size() || config_.stages[point.stage_index].name != point.state.value("stage", "")) {
    throw std::invalid_argument(point.checkpoint + ": its stage does not match the run's config.yaml");
  }
  global_step_ = point.global_step;
  spdlog::info("resuming from {} (stage '{}', step {}, global step {})", point.checkpoint,
               config_.stages[point.stage_index].name, point.step, point.global_step);
  if (point.state.contains("steps") && point.step >= point.state["steps"].get<int64_t>()) {
    // The stage finished: the next one starts from its final weights.
    load_model_weights(point.checkpoint, *model_);
    if (point.state.contains("generator")) restore_generator_state(point.state["generator"]);
    resume_point_.reset();
    return point.stage_index + 1;
  }
  // Mid-stage: the stage starts from the weights it started with (its reference is a copy of
  // them); resume_stage() then loads the checkpoint's weights.
  if (point.stage_index > 0) {
    load_model_weights(directory_ + "/checkpoints/" + config_.stages[point.stage_index - 1].name, *model_);
  }
  return point.stage_index;
}

const nlohmann::json* ExperimentRunner::resume_stage(size_t index, FlatOptimizer& optimizer) {
  if (!resume_point_ || resume_point_->stage_index != index) return nullptr;
  load_model_weights(resume_point_->checkpoint, *model_);
  load_optimizer_state(resume_point_->checkpoint, optimizer);
  if (resume_point_->state.contains("generator")) restore_generator_state(resume_point_->state["generator"]);
  resume_state_ = resume_point_->state;
  stage_report_["resumed_from_step"] = resume_state_["step"];
  resume_point_.reset();
  return &resume_state_;
}

void validate_experiment(const ExperimentConfig& config) {
  ExperimentRunner runner(config, "");
  runner.prepare();
  const int64_t vocab = runner.model().vocab_size();
  for (const auto& stage : config.stages) {
    if (stage.kind == StageKind::kSft) {
      check_token_range(load_stage_sft(config, stage), vocab);
    } else if (stage.kind == StageKind::kPpo) {
      validate_ppo_stage_data(stage, vocab);
    } else {
      check_token_range(load_stage_pairs(config, stage), vocab);
    }
  }
}

}  // namespace prefengine
