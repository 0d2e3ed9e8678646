#include "engine/train/train_loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "engine/dist/data_parallel.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/train/batch_sampler.h"
#include "engine/train/checkpoint.h"
#include "engine/train/evaluation.h"
#include "engine/metrics/early_warning.h"
#include "engine/train/flat_optimizer.h"
#include "engine/train/interrupt.h"
#include "engine/train/progress.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

// The value of a one-element tensor. A CPU fp32 scalar (every step's loss on CPU) is read directly:
// item() costs two dispatched operators, a measurable share of a toy step.
double scalar_value(const at::Tensor& t) {
  if (t.device().is_cpu() && t.scalar_type() == at::kFloat && !t.is_conj() && !t.is_neg()) {
    return static_cast<double>(*t.data_ptr<float>());
  }
  return t.item<double>();
}

// The loss plugin's metrics of a step: the mean over its micro-batches, names in first-seen order.
class PluginMetrics {
 public:
  void add(const std::vector<Metric>& metrics) {
    for (const auto& [name, tensor] : metrics) {
      size_t k = 0;
      while (k < names_.size() && names_[k] != name) ++k;
      if (k == names_.size()) {
        names_.push_back(name);
        sums_.push_back(0);
        counts_.push_back(0);
      }
      // a one-element fp32 CPU metric (the usual batch mean) is read directly: the same value as
      // .to(kDouble).mean().item() (a float widens to double exactly), without four operators
      sums_[k] += tensor.numel() == 1 && tensor.device().is_cpu() && tensor.scalar_type() == at::kFloat
                      ? scalar_value(tensor)
                      : tensor.detach().to(at::kDouble).mean().item<double>();
      ++counts_[k];
    }
  }
  void write(MetricsRow& row) const {
    for (size_t k = 0; k < names_.size(); ++k) row.set(names_[k], sums_[k] / counts_[k]);
  }

 private:
  std::vector<std::string> names_;
  std::vector<double> sums_;
  std::vector<int64_t> counts_;
};

// Averages the finite fields of `feedback` over the ranks (every rank measured the same number of
// rows).
void reduce_feedback(DataParallel& dp, StepFeedback& feedback) {
  double* fields[] = {&feedback.chosen_logps,     &feedback.rejected_logps, &feedback.ref_chosen_logps,
                      &feedback.ref_rejected_logps, &feedback.chosen_tokens,  &feedback.rejected_tokens};
  MetricsRow row;
  for (size_t i = 0; i < 6; ++i) {
    if (std::isfinite(*fields[i])) row.set(std::to_string(i), *fields[i]);
  }
  dp.reduce_means(row, 1.0);
  for (const auto& [name, value] : row.values) *fields[std::stoul(name)] = value;
}

// The names of the model's tensors (gradients when `grads`) holding Inf or NaN: the first few and
// the count, for the error line.
std::string non_finite_tensors(const Model& model, bool grads) {
  std::vector<std::string> names;
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const at::Tensor t = grads ? item.value().grad() : item.value();
    if (t.defined() && !std::isfinite(t.sum(at::kDouble).item<double>())) names.push_back(item.key());
  }
  if (names.empty()) return "";
  std::string out = "'" + names.front() + "'";
  for (size_t i = 1; i < std::min<size_t>(names.size(), 3); ++i) out += ", '" + names[i] + "'";
  if (names.size() > 3) out += " and " + std::to_string(names.size() - 3) + " more";
  return " (in " + out + ")";
}

// A resumed stage's watch sees the rows the stage logged before its checkpoint again, so that it
// fires as in an uninterrupted run.
// Returns the warnings those rows fired (run.json keeps them).
std::vector<ThreeDWarning> replay_rows(ThreeDWatch& watch, const std::string& run_directory, const std::string& stage,
                                       int64_t up_to) {
  std::vector<ThreeDWarning> fired;
  std::ifstream in(run_directory + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("stage", "") != stage || !j.contains("step") || j["step"].get<int64_t>() > up_to) continue;
    MetricsRow row;
    row.stage = stage;
    row.step = j["step"].get<int64_t>();
    for (const auto& [key, value] : j.items()) {
      if (value.is_number() && key != "step" && key != "global_step") row.set(key, value.get<double>());
    }
    for (auto& w : watch.observe(row)) fired.push_back(std::move(w));
  }
  return fired;
}

}  // namespace

int64_t stage_steps(const StageOptions& stage, int64_t records, int64_t rows_per_step) {
  if (stage.steps > 0) return stage.steps;
  return stage.epochs * ((records + rows_per_step - 1) / rows_per_step);
}

LoopResult run_train_loop(StageUnit& unit, StageContext& context, MetricsLogger* metrics, int64_t& global_step,
                          const ResumePoint* resume) {
  const StageOptions& stage = context.stage;
  DataParallel& dp = *context.dp;
  const int64_t records = unit.prepare(context);
  // Before the resume weights load: the evaluator's reference is the policy at the stage's start.
  const std::unique_ptr<StageEvaluator> evaluator = StageEvaluator::create(context);
  Model& model = *context.model;  // after prepare: a unit may have replaced it
  Loss* loss = context.loss;

  FlatParameters flat(model);
  dp.check_batch_size(stage.batch_size, stage.location + ": stage '" + stage.name + "'");
  const int64_t rows_per_step = unit.rows_per_step(stage);
  const int64_t steps = stage_steps(stage, records, rows_per_step);
  FlatOptimizer optimizer(flat, stage.optimizer, steps * unit.updates_per_step());
  BatchSampler sampler(records, stage.data.shuffle,
                       static_cast<uint64_t>(context.config.seed) * 1000003ULL + context.index);
  spdlog::info("stage '{}' ({}), {} steps", stage.name, unit.describe(records), steps);

  const std::string checkpoints = context.run_directory + "/checkpoints";
  // The newest checkpoint whose weights passed every check: named when a step fails.
  std::string last_good = context.index > 0 ? checkpoints + "/" + context.config.stages[context.index - 1].name +
                                                  " (the end of the previous stage)"
                                            : "";
  int64_t first_step = 1;
  if (resume != nullptr) {
    const std::string& dir = resume->checkpoint;
    load_model_weights(dir, model);
    load_optimizer_state(dir, optimizer);
    if (loss != nullptr) load_loss_state(dir, *loss);
    restore_generator_state(resume->state.generator, dir + "/state.json: generator");
    sampler.load(resume->state.sampler, dir + "/state.json");
    if (resume->state.steps != steps) {
      throw std::invalid_argument(dir + "/state.json: steps: expected " + std::to_string(steps) +
                                  " (the stage's steps from its config and data), got " +
                                  std::to_string(resume->state.steps));
    }
    first_step = resume->state.step + 1;
    last_good = dir + " (step " + std::to_string(resume->state.step) + ")";
    context.report["resumed_from_step"] = resume->state.step;
  }
  auto state_at = [&](int64_t step, int64_t global, const BatchSampler& s, const nlohmann::json& generator) {
    CheckpointState state;
    state.stage = stage.name;
    state.kind = stage.kind;
    state.stage_index = static_cast<int64_t>(context.index);
    state.step = step;
    state.steps = steps;
    state.global_step = global;
    state.sampler = s.state();
    state.generator = generator;
    state.scalar_head = model.has_scalar_head();
    return state;
  };

  // A signal during the stage's preparation: stop before its first step (nothing new to save).
  if (const int signal = dp.agree_on_signal(pending_interrupt())) {
    throw Interrupted(signal, global_step, "before stage '" + stage.name + "' step " + std::to_string(first_step));
  }
  // The 3D early warning (engine/metrics/early_warning.h) of stages that log the diagnostics.
  std::unique_ptr<ThreeDWatch> watch;
  std::deque<std::pair<int64_t, at::Tensor>> snapshots;  // on_3d: checkpoint: the last rows' weights
  if (unit.logs_3d_diagnostics() && stage.warn_3d.enabled()) {
    watch = std::make_unique<ThreeDWatch>(stage.warn_3d);
    if (resume != nullptr && !context.run_directory.empty()) {
      for (const auto& w : replay_rows(*watch, context.run_directory, stage.name, resume->state.step)) {
        context.report["warnings"].push_back(w.to_json());
      }
    }
  }
  int64_t last_step = steps;  // on_3d: stop ends the stage early
  // on_3d: checkpoint: the weights of the newest row before the onset (the oldest kept when the
  // onset is the first row seen), weights only, in RUN_DIR/warnings/ (never a resume point).
  auto save_before_onset = [&](const ThreeDWarning& w) -> std::string {
    if (snapshots.empty()) return "";
    auto chosen = snapshots.begin();
    for (auto it = snapshots.begin(); it != snapshots.end(); ++it) {
      if (it->first < w.onset) chosen = it;
    }
    const std::string dir = context.run_directory + "/warnings/" + stage.name + "-" + w.property + "-step-" +
                            std::to_string(chosen->first);
    const at::Tensor now = flat.values().clone();
    {
      at::NoGradGuard no_grad;
      flat.values().copy_(chosen->second);
    }
    CheckpointState state = state_at(chosen->first, global_step, sampler, generator_state());
    state.resumable = false;
    save_checkpoint(dir, model, nullptr, nullptr, state, /*set_latest=*/false);
    {
      at::NoGradGuard no_grad;
      flat.values().copy_(now);
    }
    spdlog::warn("stage '{}': the weights of step {} (before the {} onset) are in {}", stage.name, chosen->first,
                 w.property, dir);
    return dir;
  };
  Progress progress(stage.name, first_step, steps);
  StepTimer timer(first_step);
  const bool feedback_wanted = loss != nullptr && loss->wants_step_feedback();
  // The default generator's state before each step, for the failure folder: copied into one
  // generator made here (Generator::clone() leaks its copy in LibTorch 1.13, ~2.6 KB a step).
  at::Generator generator_before = at::make_generator<at::CPUGeneratorImpl>();
  for (int64_t step = first_step; step <= steps; ++step) {
    timer.begin();
    StepInfo info;
    info.step = step;
    info.steps = steps;
    info.log_now = step == 1 || step % stage.log_every == 0 || step == steps || unit.forces_row(step) ||
                   (evaluator && evaluator->due(step, steps, /*log_row=*/false));
    // The state before this step, for the failure folder.
    const BatchSampler sampler_before = sampler;
    copy_cpu_generator(at::detail::getDefaultCPUGenerator(), generator_before);
    const int64_t global_before = global_step;
    int64_t updates_done = 0;
    double loss_sum = 0, grad_norm = std::nan("");
    int64_t micro_count = 0;
    PluginMetrics plugin_metrics;
    try {
      const std::vector<int64_t> drawn = sampler.next(rows_per_step);
      unit.begin_step(drawn, info);
      const std::vector<UpdatePlan> updates = unit.plan(drawn, stage, dp, sampler.rng());
      if (updates.empty()) ++global_step;  // a step without updates (pairs) still counts as one
      for (size_t u = 0; u < updates.size(); ++u) {
        flat.zero_grad();
        info.micro_batches = static_cast<int64_t>(updates[u].size());
        for (const auto& rows : updates[u]) {
          LossOutput out = unit.micro_batch(rows, info);
          if (!out.loss.defined() || out.loss.numel() != 1) {
            throw std::runtime_error("loss plugin '" + stage.loss_plugin + "' returned no scalar loss");
          }
          const double value = scalar_value(out.loss);
          if (!std::isfinite(value)) {
            const std::string records = unit.describe_rows(rows);
            throw std::runtime_error("loss plugin '" + stage.loss_plugin + "' returned a non-finite loss (" +
                                     std::to_string(value) + ")" +
                                     (records.empty() ? "" : " on the batch with records " + records));
          }
          loss_sum += value;
          ++micro_count;
          unit.backward(out, info);
          unit.after_backward(info);
          if (info.log_now) plugin_metrics.add(out.metrics);
        }
        dp.average_gradients(flat.grads());
        if (!all_finite(flat.grads())) {
          throw std::runtime_error("the gradient is not finite" + non_finite_tensors(model, /*grads=*/true) +
                                   " (loss plugin '" + stage.loss_plugin + "')");
        }
        grad_norm = optimizer.step(/*need_norm=*/info.log_now && u + 1 == updates.size());
        ++updates_done;
        ++global_step;
        if (!optimizer.parameters_finite()) {
          throw std::runtime_error("the parameters are not finite after the optimizer step" +
                                   non_finite_tensors(model, /*grads=*/false) + " (optimizer " +
                                   stage.optimizer.name + ", lr " + std::to_string(optimizer.current_lr()) + ")");
        }
        dp.maybe_inject_fault(global_step);
      }
    } catch (const std::exception& e) {
      std::string where = "stage '" + stage.name + "' step " + std::to_string(step) + ": " + e.what();
      if (dp.is_writer() && !context.run_directory.empty()) {
        const std::string failed = context.run_directory + "/failures/" + stage.name + "-step-" + std::to_string(step);
        CheckpointState state = state_at(step - 1, global_before, sampler_before, generator_state(generator_before));
        state.failure = e.what();
        state.resumable = updates_done == 0;
        try {
          save_checkpoint(failed, model, &optimizer, loss, state, /*set_latest=*/false);
          where += state.resumable ? "; the state before this step is in " + failed
                                   : "; the failing step's state (weights already updated) is in " + failed;
        } catch (const std::exception& write_error) {
          where += "; writing the failure state to " + failed + " failed too: " + write_error.what();
        }
        where += last_good.empty() ? "; no checkpoint was written before it (the run starts again from the beginning)"
                                   : "; the last good checkpoint is " + last_good +
                                         ", where `prefengine run --resume` continues";
      }
      throw std::runtime_error(where);
    }
    if (feedback_wanted) {
      StepFeedback feedback;
      feedback.step = step;
      unit.feedback(feedback);
      reduce_feedback(dp, feedback);
      loss->on_step(feedback);
    }
    if (info.log_now) {
      MetricsRow row;
      row.stage = stage.name;
      row.step = step;
      row.global_step = global_step;
      if (micro_count > 0) {  // a kind without updates (pairs) logs only its own metrics
        row.set("loss", loss_sum / static_cast<double>(micro_count));
        unit.step_metrics(row, info);
        plugin_metrics.write(row);
        // Everything so far is a mean over this rank's rows: make it the mean over all ranks' rows.
        dp.reduce_means(row, static_cast<double>(micro_count));
      }
      unit.end_step(row, info);
      if (evaluator && evaluator->due(step, steps, /*log_row=*/true)) {
        evaluator->measure(step, row);
        // TRL's names of the evaluation metrics (its log history's eval_loss, ...): eval/X -> eval_X.
        std::vector<std::pair<std::string, double>> trl_names;
        for (const auto& [name, value] : row.values) {
          if (name.compare(0, 5, "eval/") == 0) trl_names.emplace_back("eval_" + name.substr(5), value);
        }
        for (const auto& [name, value] : trl_names) row.set(name, value);
      }
      if (watch) {
        for (const ThreeDWarning& w : watch->observe(row)) {
          spdlog::warn("stage '{}' step {}: 3D early warning: {} since step {}: {}", stage.name, step, w.property,
                       w.onset, w.detail);
          nlohmann::json entry = w.to_json();
          if (stage.warn_3d.on_3d == "checkpoint" && dp.is_writer() && !context.run_directory.empty()) {
            entry["checkpoint"] = save_before_onset(w);
          }
          context.report["warnings"].push_back(entry);
          if (stage.warn_3d.on_3d == "stop") last_step = step;
        }
        if (stage.warn_3d.on_3d == "checkpoint") {
          snapshots.emplace_back(step, flat.values().clone());
          while (static_cast<int64_t>(snapshots.size()) > stage.warn_3d.patience + 1) snapshots.pop_front();
        }
      }
      if (updates_done > 0) {
        row.set("grad_norm", grad_norm);
        row.set("lr", optimizer.current_lr());
        row.set("learning_rate", optimizer.current_lr());  // TRL's name
      }
      // TRL's epoch: the records drawn so far over the data set's size (fractional).
      if (records > 0) row.set("epoch", static_cast<double>(step * rows_per_step) / static_cast<double>(records));
      if (metrics != nullptr) {
        metrics->log(row);
        progress.report(step, row, unit.progress_keys());
      }
    }
    timer.end(step);
    if (step == last_step) dp.check_replicas(flat.values(), "stage '" + stage.name + "'");
    // SIGINT/SIGTERM (engine/train/interrupt.h): every rank agrees, so all stop after this step.
    const int signal = dp.agree_on_signal(pending_interrupt());
    if (dp.is_writer() && !context.run_directory.empty() &&
        ((stage.checkpoint_every > 0 && step % stage.checkpoint_every == 0) || step == last_step || signal != 0)) {
      if (metrics != nullptr) metrics->sync();  // the checkpoint's rows are on disk before it is
      CheckpointState state = state_at(step, global_step, sampler, generator_state());
      if (step == last_step) state.steps = last_step;  // a stage ended by on_3d: stop is finished there
      save_checkpoint(checkpoints + "/" + stage.name, model, &optimizer, loss, state);
      last_good = checkpoints + "/" + stage.name + " (step " + std::to_string(step) + ")";
      if (stop_after_global_step() > 0 && stop_after_global_step() == global_step) {
        throw std::runtime_error("stopped after global step " + std::to_string(global_step) +
                                 " (PREFENGINE_STOP_AFTER_STEP)");
      }
    }
    if (signal != 0 && step < last_step) {  // at its last step the stage ends first; the runner stops before the next
      throw Interrupted(signal, global_step, "at stage '" + stage.name + "' step " + std::to_string(step) + " of " +
                                                 std::to_string(steps));
    }
    if (step == last_step && last_step < steps) {
      spdlog::warn("stage '{}' ends at step {} of {} (on_3d: stop)", stage.name, step, steps);
      context.report["stopped_at_step"] = step;
      break;
    }
  }
  context.report["step_time"] = timer.to_json();
  return {records, last_step};
}

}  // namespace prefengine
