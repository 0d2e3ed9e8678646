#include "engine/train/experiment_runner.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include "engine/cli/export_command.h"
#include "engine/dist/data_parallel.h"
#include "engine/io/durable_file.h"
#include "engine/metrics/error_line.h"
#include "engine/metrics/logging.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/plugins/plugin_factory.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/checkpoint.h"
#include "engine/train/evaluation.h"
#include "engine/train/init_from.h"
#include "engine/train/interrupt.h"
#include "engine/train/resume.h"
#include "engine/train/run_directory.h"
#include "engine/train/stage_unit.h"
#include "engine/train/train_loop.h"
#include "prefengine/loss.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

using Clock = std::chrono::steady_clock;

void configure_threads(int64_t threads) {
  const int64_t n = threads > 0 ? threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(n));
}

}  // namespace

ExperimentRunner::ExperimentRunner(ExperimentConfig config, std::string run_directory)
    : config_(std::move(config)), directory_(std::move(run_directory)) {}

ExperimentRunner::~ExperimentRunner() = default;

std::shared_ptr<Model> ExperimentRunner::make_model() const {
  return create_model(*loader_, config_);
}

void ExperimentRunner::prepare() {
  if (prepared_) return;
  configure_threads(config_.threads);
  at::manual_seed(static_cast<uint64_t>(config_.seed));
  loader_ = std::make_unique<PluginLoader>(config_.plugin_paths);
  model_ = make_model();
  for (const auto& stage : config_.stages) {
    const StageKindSpec& spec = *find_stage_kind(stage.kind);
    std::shared_ptr<Loss> loss;
    if (!stage.loss_plugin.empty()) loss = create_loss(*loader_, stage);
    if (spec.check_fit) spec.check_fit(stage, loss.get(), *model_);
    losses_.push_back(loss);
    units_.push_back(spec.create());
  }
  for (const auto& stage : config_.stages) check_weights_sources(config_, stage, [this] { return make_model(); });
  for (const auto& stage : config_.stages) {  // data.packing: needs a model that takes packed rows
    if (stage.data.packing && !dynamic_cast<const PackedSequences*>(model_.get())) {
      throw std::invalid_argument(stage_prefix(stage) + "data.packing: the model ('" + config_.model_plugin +
                                  "' plugin) takes no packed rows; only models with the PackedSequences capability "
                                  "(the transformer plugin) do");
    }
  }
  for (const auto& stage : config_.stages) {  // export: needs a model that can write itself in HF format
    if (stage.export_hf && !dynamic_cast<const HfExportable*>(model_.get())) {
      throw std::invalid_argument(stage.export_key + ": the model ('" + config_.model_plugin +
                                  "' plugin) cannot be written in Hugging Face format; only the transformer "
                                  "plugin's models can");
    }
  }
  prepared_ = true;
}

void ExperimentRunner::validate() {
  if (validated_) return;
  prepare();
  for (size_t i = 0; i < config_.stages.size(); ++i) {
    nlohmann::json report = nlohmann::json::object();
    StageContext context{config_,  config_.stages[i], i, directory_, model_, losses_[i].get(), nullptr,
                         [this] { return make_model(); }, report};
    units_[i]->validate(context);
    StageEvaluator::validate(context);
  }
  validated_ = true;
}

RunResult ExperimentRunner::run() {
  // Data parallelism: only rank 0 writes the run directory; the others print warnings and errors.
  const DistributedEnv env = DistributedEnv::from_environment();
  const bool writer = env.rank == 0;
  if (!writer) spdlog::set_level(std::max(spdlog::get_level(), spdlog::level::warn));
  if (writer) create_reserve(directory_);  // run.json's last write must succeed on a full disk
  if (writer && !resume_) {
    write_file_durably(directory_ + "/config.yaml", "# resolved from " + config_.source + "\n" + config_.resolved_yaml);
  }
  std::unique_ptr<ScopedLogFile> log_file;
  if (writer) log_file = std::make_unique<ScopedLogFile>(directory_ + "/run.log");
  nlohmann::json status = {{"name", config_.name}, {"config", config_.source}, {"status", "running"}};
  status["stages"] = nlohmann::json::array();
  std::optional<ResumePoint> point;
  if (resume_) {
    point = find_resume_point(directory_, /*repair=*/writer);
    if (!point) {
      // Stopped before its first checkpoint: the run starts again from the beginning, in its folder.
      spdlog::warn("{}: no checkpoint yet; the run starts again from its first step", directory_);
    }
    if (writer) truncate_metrics(directory_, point ? point->state.global_step : 0);
    std::ifstream previous(directory_ + "/run.json");
    const auto old = nlohmann::json::parse(previous, nullptr, /*allow_exceptions=*/false);
    if (point && old.is_object() && old.contains("stages")) {
      const int64_t kept = point->state.stage_index + (point->state.finished() ? 1 : 0);
      for (const auto& entry : old["stages"]) {
        if (entry.contains("index") && entry["index"].get<int64_t>() < kept) status["stages"].push_back(entry);
      }
    }
  }
  if (env.world_size > 1) status["world_size"] = env.world_size;
  if (writer) write_run_status(directory_, status);
  std::unique_ptr<MetricsLogger> metrics;
  try {
    if (writer) metrics = std::make_unique<MetricsLogger>(directory_, /*append=*/resume_);  // may hit a full disk
    std::set<std::string> tensorboard_stages;  // report_to: [tensorboard]
    for (const auto& stage : config_.stages) {
      if (stage.tensorboard) tensorboard_stages.insert(stage.name);
    }
    if (metrics && !tensorboard_stages.empty()) metrics->enable_tensorboard(directory_ + "/tensorboard", tensorboard_stages);
    dp_ = std::make_unique<DataParallel>(create_communicator(config_.distributed, env), config_.distributed);
    for (auto& stage : config_.stages) {  // per_device_train_batch_size: records per rank
      if (stage.per_device_batch_size > 0) stage.batch_size = stage.per_device_batch_size * dp_->world_size();
    }
    if (dp_->world_size() > 1) {
      spdlog::info("data parallel: {} ranks over {}", dp_->world_size(), dp_->communicator().backend());
    }
    prepare();
    spdlog::info("run directory {}", directory_);
    for (auto& stage : config_.stages) {  // pairs written by an earlier stage of this run
      if (!stage.data.from_stage.empty()) stage.data.path = directory_ + "/pairs/" + stage.data.from_stage + ".jsonl";
      if (!stage.eval.from_stage.empty()) stage.eval.path = directory_ + "/pairs/" + stage.eval.from_stage + ".jsonl";
    }
    size_t first_stage = 0;
    if (point) first_stage = begin_resume(*point);
    for (size_t i = first_stage; i < config_.stages.size(); ++i) {
      if (const int signal = dp_->agree_on_signal(pending_interrupt())) {  // between stages
        throw Interrupted(signal, global_step_, "before stage '" + config_.stages[i].name + "'");
      }
      const auto start = Clock::now();
      const int64_t steps_before = global_step_;
      nlohmann::json report = nlohmann::json::object();
      StageContext context{config_,  config_.stages[i], i, directory_, model_, losses_[i].get(), dp_.get(),
                           [this] { return make_model(); }, report, reward_override_};
      const bool mid_stage = point && static_cast<size_t>(point->state.stage_index) == i;
      // The stage's start weights (mid-stage resume too: its reference copies them; the loop then
      // loads the stage's checkpoint over them).
      if (!config_.stages[i].init_from.empty()) apply_init_from(context);
      run_train_loop(*units_[i], context, metrics.get(), global_step_, mid_stage ? &*point : nullptr);
      units_[i].reset();  // the stage's data and reference are no longer needed
      const StageOptions& done = config_.stages[i];
      if (done.export_hf && writer) {
        cli::HfExportSettings settings{done.export_dtype, done.export_max_shard_size};
        cli::export_model_to_hf(config_, *model_, directory_ + "/hf/" + done.name, settings, "stage '" + done.name + "'");
      }
      const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
      nlohmann::json entry = {{"name", config_.stages[i].name},
                              {"index", i},
                              {"steps", global_step_ - steps_before},
                              {"seconds", seconds},
                              {"steps_per_second", (global_step_ - steps_before) / std::max(seconds, 1e-9)}};
      entry.update(report);
      status["stages"].push_back(entry);
      if (writer) write_run_status(directory_, status);
    }
  } catch (const Interrupted& stop) {
    throw interrupted(stop, status, writer);
  } catch (const std::exception& e) {
    status["status"] = "failed";
    status["error"] = error_line(e);  // one line, without LibTorch's backtrace
    status["global_step"] = global_step_;
    if (writer) {
      release_reserve(directory_);  // the room for this write when the disk is full
      try {
        write_run_status(directory_, status);
      } catch (const std::exception& write_error) {
        spdlog::warn("{} (run.json keeps its previous status)", write_error.what());
      }
    }
    throw;
  }
  dp_->communicator().barrier();  // the run is complete when every rank is
  if (dp_->world_size() > 1) {
    spdlog::info("data parallel: {} gradient all-reduces took {:.3f} s (waiting for the slowest rank included)",
                 dp_->all_reduce_calls(), dp_->all_reduce_seconds());
  }
  status["status"] = "completed";
  status["global_step"] = global_step_;
  if (writer) release_reserve(directory_);
  if (writer) write_run_status(directory_, status);
  spdlog::info("done: {} steps; metrics in {}/metrics.jsonl", global_step_, directory_);
  return {directory_, global_step_};
}

Interrupted ExperimentRunner::interrupted(const Interrupted& stop, nlohmann::json& status, bool writer) {
  const std::string name = signal_name(stop.signal());
  status["status"] = "interrupted";
  status["signal"] = name;
  status["global_step"] = global_step_;
  if (writer) write_run_status(directory_, status);
  const bool checkpoint = static_cast<bool>(std::ifstream(directory_ + "/checkpoints/latest"));
  const int world = dp_ ? dp_->world_size() : 1;
  std::string message = "interrupted by " + name + " at step " + std::to_string(global_step_) + " (" + stop.what() + ")";
  if (checkpoint) {
    message += "; resume with: prefengine run --resume " + directory_ + (world > 1 ? " --nproc " + std::to_string(world) : "");
  } else {
    message += "; no checkpoint was written yet: start the run again";
  }
  return Interrupted(stop.signal(), global_step_, message);
}

size_t ExperimentRunner::begin_resume(const ResumePoint& point) {
  const CheckpointState& state = point.state;
  const size_t index = static_cast<size_t>(state.stage_index);
  if (index >= config_.stages.size() || config_.stages[index].name != state.stage) {
    throw std::invalid_argument(point.checkpoint + "/state.json: stage '" + state.stage + "' (index " +
                                std::to_string(index) + ") is not a stage of the run's config.yaml");
  }
  global_step_ = state.global_step;
  spdlog::info("resuming from {} (stage '{}', step {} of {}, global step {})", point.checkpoint, state.stage,
               state.step, state.steps, state.global_step);
  if (state.finished()) {
    // The stage finished: the next one starts from its final weights.
    load_model_weights(point.checkpoint, *model_);
    restore_generator_state(state.generator, point.checkpoint + "/state.json: generator");
    return index + 1;
  }
  // Mid-stage: the stage starts from the weights it started with (its reference is a copy of
  // them); the loop then loads the checkpoint's weights, optimizer, sampler and generator.
  if (index > 0) {
    load_model_weights(directory_ + "/checkpoints/" + config_.stages[index - 1].name, *model_);
  }
  return index;
}

void validate_experiment(const ExperimentConfig& config) {
  ExperimentRunner runner(config, "");
  runner.validate();
}

}  // namespace prefengine
