#pragma once
// The run directory: config.yaml, metrics.jsonl, metrics.csv, run.log, run.json, checkpoints/.
//
// A run directory is created atomically (mkdir of a fresh name) and held, for as long as a run or
// a resume uses it, by an advisory lock on RUN_DIR/run.lock (flock; the file records the holder's
// pid). A second run into it or a `--resume` of a live run is refused with the holder's pid.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine {

struct RunDirectoryOptions {
  std::string output;      // the directory to use; empty = a fresh runs/<name>-<time>
  bool overwrite = false;  // allow an existing, non-empty `output` that is a finished prefengine run
  std::vector<std::string> inputs;  // files the experiment reads: an `--overwrite` never deletes them
};

// Creates the run directory and returns its path. An existing non-empty directory is refused
// (std::invalid_argument) unless `overwrite` is set and the directory is a prefengine run (its
// run.json says so) that no process holds and that contains none of `inputs` nor the working
// directory. The caller locks the returned directory (RunDirectoryLock) before writing into it.
std::string prepare_run_directory(const std::string& experiment_name, const RunDirectoryOptions& options);

// The files and folders an experiment reads: its config file and every path-like value of its
// resolved YAML that names an existing file or folder.
std::vector<std::string> experiment_inputs(const std::string& config_source, const std::string& resolved_yaml);

// An advisory, exclusive lock on RUN_DIR/run.lock for this process's lifetime (or until
// destroyed). Not inherited by child processes.
class RunDirectoryLock {
 public:
  // Throws std::invalid_argument naming the holder's pid when another process holds the lock.
  explicit RunDirectoryLock(const std::string& directory);
  ~RunDirectoryLock();
  RunDirectoryLock(const RunDirectoryLock&) = delete;
  RunDirectoryLock& operator=(const RunDirectoryLock&) = delete;

 private:
  int fd_ = -1;
};

// Writes run.json durably (write_file_durably: a crash or a full disk leaves the previous one).
void write_run_status(const std::string& directory, const nlohmann::json& status);

// DIRECTORY/.reserve, 64 KiB held while a run writes, so that its last run.json (status failed or
// completed) can still be written when the disk is full: release_reserve deletes it first.
void create_reserve(const std::string& directory);
void release_reserve(const std::string& directory);

}  // namespace prefengine
