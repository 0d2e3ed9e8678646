#pragma once
// The one training loop every stage kind runs in. Per step:
//   1. the sampler draws the step's records (unit.rows_per_step), unit.begin_step (PPO: rollouts);
//   2. for each update of unit.plan: zero the gradients; for each micro-batch: unit.micro_batch
//      (forward + loss), check the loss is a finite scalar, backward (divided by the number of
//      micro-batches), unit.after_backward; then all-reduce the gradients over the ranks, check
//      they are finite, and take the optimizer step;
//   3. a loss that steers itself gets the step's StepFeedback (Loss::on_step);
//   4. on log steps: one metrics row ("loss", the unit's metrics, the plugin's metrics averaged
//      over the micro-batches and ranks, the unit's end-of-step metrics, grad_norm, lr) and the
//      progress line;
//      The stage's evaluation (its `eval:` block, engine/train/evaluation.h) adds its values to the
//      row on the steps it is due, which always write a row;
//   5. every checkpoint_every steps and at the stage's end: a checkpoint (engine/train/checkpoint.h).
// Failure policy: an error inside a step (a plugin that throws, a non-finite loss or gradient)
// writes the state before that step to RUN_DIR/failures/<stage>-step-<N> (the regular checkpoints
// and `latest` are untouched, so the run stays resumable) and rethrows with both places named.
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/train/resume.h"
#include "engine/train/stage_unit.h"

namespace prefengine {

class MetricsLogger;

struct LoopResult {
  int64_t records = 0;  // records the stage drew from
  int64_t steps = 0;    // the stage's total loop steps
};

// Runs `unit` for the stage of `context` (prepare included). `metrics` is null on ranks other
// than 0. `resume` (optional) is a checkpoint of this stage to continue from. global_step counts
// optimizer updates over the run.
LoopResult run_train_loop(StageUnit& unit, StageContext& context, MetricsLogger* metrics, int64_t& global_step,
                          const ResumePoint* resume = nullptr);

// The stage's total loop steps: `steps`, or epochs over `records` at rows_per_step per step.
int64_t stage_steps(const StageOptions& stage, int64_t records, int64_t rows_per_step);

}  // namespace prefengine
