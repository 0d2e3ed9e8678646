#pragma once
// A sweep worker: one process that runs several of a sweep's runs one after another, so that a
// sweep of short runs pays the process start-up (loading LibTorch, about a second) once per
// worker instead of once per run. Started by the sweep runner (sweep_runner.h) as
//
//   prefengine run --sweep-worker [--log-level LEVEL]
//
// with its standard input and file descriptor 3 connected to the runner:
//   stdin  one JSON object a line: {"index": I, "config": PATH, "output": DIR, "log": FILE};
//          end of input = no more runs
//   fd 3   one line a finished run: "I completed", "I failed" or "I interrupted"
// Each run goes exactly as `prefengine run CONFIG --output DIR --overwrite --log-level LEVEL`
// would run it (the same steps, in the same order), with its console output (stdout and stderr)
// in FILE. Between runs the worker resets what a run leaves behind in the process: the logger
// (its level, sinks and flush policy) is made afresh, the run seeds ATen's global generator and
// sets the thread count itself (ExperimentRunner::prepare), the run directory's lock, the run's
// plugins and log file are released when the run's objects go out of scope.
// A run that throws is reported "failed" and the worker goes on; SIGINT/SIGTERM stops the current
// run as in `prefengine run` (checkpoint, run.json "interrupted"), reports it and ends the worker
// with 128 + the signal.
#include <string>

namespace prefengine {

// The worker's main loop; returns the process's exit status.
int run_sweep_worker(const std::string& log_level);

// One run as `prefengine run CONFIG --output DIR --overwrite` does it; returns the run directory.
std::string run_experiment_alone(const std::string& config_path, const std::string& output);

}  // namespace prefengine
