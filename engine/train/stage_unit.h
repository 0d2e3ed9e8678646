#pragma once
// A stage kind is a unit: it loads its data, builds each micro-batch, calls its loss and names its
// extra metrics. Everything around that (the sampler, micro-batching and gradient accumulation,
// backward, the data-parallel all-reduce, non-finite checks, the optimizer step, metrics, timing
// and progress, checkpoints, resume and the failure policy) is the TrainLoop's
// (engine/train/train_loop.h), the same for every kind.
//
// A kind registers itself by name in engine/train/stages/stage_kinds.cpp:
//   StageKindSpec my_kind_stage_kind();   // in its own file, engine/train/stages/my_kind.cpp
// and one line in stage_kinds(). See docs/architecture.md for a complete small example.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "prefengine/loss.h"

namespace prefengine {

class DataParallel;
class Model;
class RewardSource;
struct MetricsRow;

// What a unit gets from the engine for its stage.
struct StageContext {
  const ExperimentConfig& config;
  const StageOptions& stage;
  size_t index;                         // the stage's position in the experiment
  const std::string& run_directory;     // "" when validating
  std::shared_ptr<Model>& model;        // the policy; a unit may replace it
  Loss* loss;                           // the stage's loss plugin (null for kinds without one)
  DataParallel* dp;                     // null when validating
  std::function<std::shared_ptr<Model>()> make_model;  // a fresh model of the experiment's plugin
  nlohmann::json& report;               // the stage's run.json entry: data counts, reference source
  RewardSource* reward = nullptr;       // overrides the configured reward source (tests, graders)
};

// One step as the loop runs it.
struct StepInfo {
  int64_t step = 0;         // 1-based loop step in the stage
  int64_t steps = 0;        // the stage's total
  bool log_now = false;     // this step writes a metrics row: collect diagnostics
  int64_t micro_batches = 1;  // micro-batches in the current update (the loss is averaged over them)
};

// One optimizer update of a step: its micro-batches, each a list of rows (this rank's share).
using UpdatePlan = std::vector<std::vector<int64_t>>;

class StageUnit {
 public:
  virtual ~StageUnit();

  // Loads the data and builds what the stage needs before its first step (reference log-probs,
  // probes, evaluators). Returns the number of records the loop's sampler draws from. Called
  // with the policy as it is at the stage's start (on resume too).
  virtual int64_t prepare(StageContext& context) = 0;
  // Checks the data without training (`prefengine validate`); defaults to nothing.
  virtual void validate(StageContext& /*context*/) {}

  // Records the loop draws per step (default: batch_size * grad_accum).
  virtual int64_t rows_per_step(const StageOptions& stage) const { return stage.batch_size * stage.grad_accum; }
  // Optimizer updates per loop step (the schedule's length is steps * this). Default 1.
  virtual int64_t updates_per_step() const { return 1; }
  // Called with the step's records (global indices, every rank's): e.g. PPO's rollouts.
  virtual void begin_step(const std::vector<int64_t>& /*records*/, const StepInfo& /*info*/) {}
  // The step's updates. Default: one update of grad_accum micro-batches of batch_size records,
  // each sharded over the ranks. `rng` is the sampler's generator (checkpointed with it).
  virtual std::vector<UpdatePlan> plan(const std::vector<int64_t>& records, const StageOptions& stage,
                                       DataParallel& dp, std::mt19937_64& rng);
  // Forward and loss on one micro-batch. The loop checks the loss, backpropagates it (divided by
  // info.micro_batches) and averages out.metrics over the step's micro-batches.
  virtual LossOutput micro_batch(const std::vector<int64_t>& rows, const StepInfo& info) = 0;
  // Backpropagates the micro-batch's loss, divided by info.micro_batches (default: autograd from
  // out.loss). A unit whose micro_batch computed the gradient in closed form (the direct step of a
  // DirectBackward model) sends it through the model itself instead.
  virtual void backward(const LossOutput& out, const StepInfo& info);
  // After the micro-batch's backward (e.g. to read the gradient of retained tensors).
  virtual void after_backward(const StepInfo& /*info*/) {}

  // Metrics of the step, set right after "loss" (before the loss plugin's metrics): rank-local
  // means that the loop then averages over the ranks with the rest.
  virtual void step_metrics(MetricsRow& /*row*/, const StepInfo& /*info*/) {}
  // Metrics measured after the step's updates, already global (probes, evaluations, diagnostics).
  virtual void end_step(MetricsRow& /*row*/, const StepInfo& /*info*/) {}
  // What a loss that steers itself (Loss::wants_step_feedback) learns about the step, rank-local
  // means; the loop averages them over the ranks.
  virtual void feedback(StepFeedback& /*feedback*/) {}
  // True when step `step` must write a metrics row although log_every does not ask for one (e.g.
  // an evaluation is due).
  virtual bool forces_row(int64_t /*step*/) const { return false; }
  // True when the stage logs the 3D diagnostics the early warning watches (pairwise stages).
  virtual bool logs_3d_diagnostics() const { return false; }
  // The columns the progress line shows.
  virtual std::vector<std::string> progress_keys() const { return {"loss"}; }
  // The records of a micro-batch, for error messages ("file:line, ..."); "" when unknown.
  virtual std::string describe_rows(const std::vector<int64_t>& /*rows*/) const { return ""; }
  // One line for the log at the stage's start, e.g. "pairwise, loss dpo: 64 pairs".
  virtual std::string describe(int64_t records) const = 0;
};

// What autograd hands a micro-batch's loss in StageUnit::backward: 1, or 1/k in a step of k
// micro-batches (the same bits), for losses that give their gradient in closed form.
at::Tensor loss_grad_output(const StepInfo& info);

// A unit's backward for a micro-batch that left its loss's gradient in closed form in `pending`
// (the direct step): hands it to `send` with no autograd at all (InferenceMode), clears it and
// returns true; returns false, doing nothing, when nothing is pending.
template <typename Send>
bool send_direct_gradient(at::Tensor& pending, Send&& send) {
  if (!pending.defined()) return false;
  c10::InferenceMode no_autograd;
  const at::Tensor grad = std::move(pending);
  pending = at::Tensor();
  send(grad);
  return true;
}

// A registered stage kind.
struct StageKindSpec {
  std::string name;         // the `kind:` value
  std::string summary;      // one line for docs and errors
  bool needs_loss = true;   // the stage must name a loss plugin (`loss: {plugin: ...}`)
  std::string default_loss; // the plugin used when the stage names none ("" = required)
  // Reads the kind's own keys from the stage block into `stage` (after the common ones), so
  // `reject_unread` sees them; may check fields across keys with o.fail(). `earlier` names the
  // stages before this one.
  std::function<void(PluginOptions& o, StageOptions& stage, const std::vector<std::string>& earlier)>
      read_options;
  // Throws std::invalid_argument (prefixed with the stage's location) when the loss or the model
  // does not fit this kind.
  std::function<void(const StageOptions& stage, const Loss* loss, const Model& model)> check_fit;
  std::function<std::unique_ptr<StageUnit>()> create;
};

// Every registered kind, in registration order.
const std::vector<StageKindSpec>& stage_kinds();
// The kind named `name`; nullptr when none is.
const StageKindSpec* find_stage_kind(const std::string& name);

// Calls a loss plugin; its exceptions become "loss plugin 'name' failed: ..." (std::runtime_error).
template <typename Call>
LossOutput call_loss_plugin(const std::string& name, Call call) {
  try {
    return call();
  } catch (const std::exception& e) {
    throw std::runtime_error("loss plugin '" + name + "' failed: " + e.what());
  } catch (...) {  // a plugin may throw anything; it must not abort the run
    throw std::runtime_error("loss plugin '" + name + "' failed: it threw something that is not a std::exception");
  }
}

// "file:line, file:line, file:line, ..." of the first three of `rows` (records with a `source`).
template <typename Records>
std::string describe_record_sources(const Records& records, const std::vector<int64_t>& rows) {
  std::string out;
  const size_t n = std::min<size_t>(rows.size(), 3);
  for (size_t i = 0; i < n; ++i) out += (out.empty() ? "" : ", ") + records[static_cast<size_t>(rows[i])].source;
  if (rows.size() > n) out += ", ...";
  return out;
}

// "file:line:col: stage 'name': " for messages about a stage.
std::string stage_prefix(const StageOptions& stage);

}  // namespace prefengine
