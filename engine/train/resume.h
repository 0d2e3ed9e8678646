#pragma once
// Resuming an interrupted run from its latest checkpoint (`prefengine run --resume RUN_DIR`).
#include <cstdint>
#include <optional>
#include <string>

#include "engine/train/checkpoint.h"

namespace prefengine {

struct ResumePoint {
  std::string checkpoint;  // RUN_DIR/checkpoints/<stage>
  CheckpointState state;
};

// The latest checkpoint of `run_directory` (checkpoints/latest); nullopt when there is none.
// Throws std::invalid_argument naming the file when its state.json cannot be resumed from.
std::optional<ResumePoint> find_resume_point(const std::string& run_directory);

// Drops metrics rows after `global_step` from metrics.jsonl and metrics.csv (rows logged after
// the checkpoint, before the interruption), so that the resumed run appends exactly once.
void truncate_metrics(const std::string& run_directory, int64_t global_step);

// PREFENGINE_STOP_AFTER_STEP (tests): the global step after whose checkpoint the run stops with
// an error, as an interruption would; 0 when unset.
int64_t stop_after_global_step();

}  // namespace prefengine
