#pragma once
// The run directory: config.yaml, metrics.jsonl, metrics.csv, run.log, run.json, checkpoints/.
#include <string>

#include <nlohmann/json.hpp>

namespace prefengine {

struct RunDirectoryOptions {
  std::string output;      // the directory to use; empty = a fresh runs/<name>-<time>
  bool overwrite = false;  // allow an existing, non-empty `output` (its contents are removed)
};

// Creates the run directory and returns its path. An existing non-empty directory is refused
// (std::invalid_argument) unless `overwrite` is set.
std::string prepare_run_directory(const std::string& experiment_name, const RunDirectoryOptions& options);

// Writes run.json atomically.
void write_run_status(const std::string& directory, const nlohmann::json& status);

}  // namespace prefengine
