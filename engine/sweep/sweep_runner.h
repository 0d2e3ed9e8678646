#pragma once
// Runs a sweep's child experiments in child processes of the same executable, up to `jobs` at a
// time, each run with its own run directory under the parent directory:
//   <parent>/configs/<run>.yaml   the child's experiment (sweep/seeds expanded)
//   <parent>/<run>/               the child's run directory (config.yaml has sweep_point and seed)
//   <parent>/logs/<run>.log       the child's console output
//   <parent>/logs/worker-<k>.log  a worker's own output (between runs)
//   <parent>/summary.csv, summary.md   mean and std over seeds per point (sweep_summary.h)
//
// Runs per process: with runs_per_process 1 each run is its own `prefengine run` process; with
// N > 1 each child is a sweep worker (sweep_worker.h) that takes the next run of the queue when
// it finishes one, up to N, so a sweep of short runs pays the process start-up (~1 s: LibTorch)
// once per N runs. Every run's directory is the same as a lone run would write. A run that fails
// is counted and named (run.json's failed_runs, summary.md); a worker that dies (a crash, a kill)
// loses nothing else: the run it was running is run again in a process of its own (its log says
// so), the runs it had not started go to the other workers. Auto (0): toy_mlp runs (seconds each)
// share their workers, up to kToyRunsPerProcess each; other models run one per process (a run of minutes
// does not notice the start-up, and a crash or a leak in one run cannot touch another).
#include <string>

#include "engine/sweep/sweep_plan.h"

namespace prefengine {

struct SweepOptions {
  std::string directory;   // the parent directory (created; must be empty unless overwrite)
  int64_t jobs = 0;        // child processes at once; 0 = the number of cores
  std::string executable;  // the prefengine executable the children run
  bool overwrite = false;  // replace an existing, non-empty parent directory
  int64_t runs_per_process = 0;  // runs one child process runs at most; 0 = auto (see above)
};

struct SweepResult {
  std::string directory;  // the parent directory
  int64_t completed = 0;
  int64_t failed = 0;
  int64_t not_started = 0;   // runs an interrupt left out
  int interrupted_by = 0;    // the signal that interrupted the sweep, or 0
  int64_t runs_per_process = 1;  // the value used (auto resolved)
};

// The auto policy: kToyRunsPerProcess when every run's model is toy_mlp, else 1. Toy runs still get
// a fresh process now and then, so that whatever a run leaves on the heap stays bounded (a per-step
// leak, LibTorch 1.13's Generator::clone in the training loop, grew a worker by ~3 MB a study run
// until it was fixed; tests/memory_growth_test.cpp): at 50 runs the start-up is 2% of its time.
constexpr int64_t kToyRunsPerProcess = 50;
int64_t auto_runs_per_process(const SweepPlan& plan);

// Validates every point (plugins, options, data) first, then runs every child and writes the
// summary (also when some children failed: they are counted and named in run.json and
// summary.md). SIGINT/SIGTERM (Ctrl-C reaches the children too): no run starts after it, the
// running ones stop at a step boundary as `prefengine run` does (or, when only this process got
// the signal, finish); every finished run stays as it is; the summary covers the completed runs
// and run.json says "interrupted" with the number of runs not started.
SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options);

}  // namespace prefengine
