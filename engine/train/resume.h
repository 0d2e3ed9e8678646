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

// The latest checkpoint of `run_directory` (checkpoints/latest), verified (verify_checkpoint);
// nullopt when there is none. When `latest` is missing or empty or names a checkpoint that is
// missing, partial or corrupted, the newest checkpoint folder that verifies (stage folders and
// their .old/.tmp copies; ties: the stage's own folder, then .old, then .tmp) is taken with a
// warning naming the problem and the choice. With `repair` (the writing rank) a chosen .old/.tmp
// copy is renamed to its stage's folder (a corrupted one there moves to checkpoints.corrupt/) and
// `latest` rewritten. Throws std::invalid_argument naming the run folder and the first problem
// when no checkpoint verifies, and naming the file when a verified state.json cannot be resumed.
std::optional<ResumePoint> find_resume_point(const std::string& run_directory, bool repair = true);

// Drops metrics rows after `global_step` from metrics.jsonl and metrics.csv (rows logged after
// the checkpoint, before the interruption), so that the resumed run appends exactly once.
void truncate_metrics(const std::string& run_directory, int64_t global_step);

// PREFENGINE_STOP_AFTER_STEP (tests): the global step after whose checkpoint the run stops with
// an error, as an interruption would; 0 when unset.
int64_t stop_after_global_step();

}  // namespace prefengine
