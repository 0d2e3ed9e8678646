#pragma once
// Runs a sweep's child experiments as separate `prefengine run` processes, up to `jobs` at a
// time, each with its own run directory under the parent directory:
//   <parent>/configs/<run>.yaml   the child's experiment (sweep/seeds expanded)
//   <parent>/<run>/               the child's run directory (config.yaml has sweep_point and seed)
//   <parent>/logs/<run>.log       the child's console output
//   <parent>/summary.csv, summary.md   mean and std over seeds per point (sweep_summary.h)
#include <string>

#include "engine/sweep/sweep_plan.h"

namespace prefengine {

struct SweepOptions {
  std::string directory;   // the parent directory (created; must be empty unless overwrite)
  int64_t jobs = 0;        // child processes at once; 0 = the number of cores
  std::string executable;  // the prefengine executable the children run
  bool overwrite = false;  // replace an existing, non-empty parent directory
};

struct SweepResult {
  std::string directory;  // the parent directory
  int64_t completed = 0;
  int64_t failed = 0;
};

// Validates every point (plugins, options, data) first, then runs every child and writes the summary (also when some children failed: they are counted
// and named in the log).
SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options);

}  // namespace prefengine
