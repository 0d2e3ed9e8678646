#pragma once
// Resuming an interrupted run from its latest checkpoint (`prefengine run --resume RUN_DIR`).
// A checkpoint's state.json holds the stage index and step, the batch sampler's state and the
// torch generator's state; optimizer.pt holds the moments and the step count (which is the
// learning-rate schedule's position).
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace prefengine {

class FlatOptimizer;

struct ResumePoint {
  std::string checkpoint;   // RUN_DIR/checkpoints/<stage>
  size_t stage_index = 0;   // the stage the checkpoint belongs to
  int64_t step = 0;         // optimizer steps done in that stage
  int64_t global_step = 0;  // optimizer steps done in the run
  nlohmann::json state;     // the whole state.json
};

// The latest checkpoint of `run_directory` (checkpoints/latest); nullopt when there is none.
// Throws std::invalid_argument when state.json lacks what resuming needs.
std::optional<ResumePoint> find_resume_point(const std::string& run_directory);

// Drops metrics rows after `global_step` from metrics.jsonl and metrics.csv (rows logged after
// the checkpoint, before the interruption), so that the resumed run appends exactly once.
void truncate_metrics(const std::string& run_directory, int64_t global_step);

void load_optimizer_state(const std::string& checkpoint, FlatOptimizer& optimizer);

// The default CPU generator's state, as a JSON list of bytes, and back.
nlohmann::json generator_state();
void restore_generator_state(const nlohmann::json& state);

// PREFENGINE_STOP_AFTER_STEP (tests): the global step after whose checkpoint the run stops with
// an error, as an interruption would; 0 when unset.
int64_t stop_after_global_step();

}  // namespace prefengine
