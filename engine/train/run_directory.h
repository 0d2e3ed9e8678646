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

// Writes run.json durably (write_file_durably: a crash or a full disk leaves the previous one).
void write_run_status(const std::string& directory, const nlohmann::json& status);

// DIRECTORY/.reserve, 64 KiB held while a run writes, so that its last run.json (status failed or
// completed) can still be written when the disk is full: release_reserve deletes it first.
void create_reserve(const std::string& directory);
void release_reserve(const std::string& directory);

}  // namespace prefengine
