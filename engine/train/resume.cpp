#include "engine/train/resume.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>

#include "engine/io/durable_file.h"

namespace prefengine {

namespace fs = boost::filesystem;

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Candidate {
  std::string name;  // the folder's name in checkpoints/
  int copy = 0;      // 0: the stage's own folder, 1: .old, 2: .tmp
  CheckpointState state;
};

// The newest folder of `checkpoints` that verifies; `problems` collects why others do not.
std::optional<Candidate> newest_verified(const std::string& checkpoints, std::vector<std::string>& problems) {
  std::vector<std::string> names;
  boost::system::error_code error;
  for (fs::directory_iterator it(checkpoints, error), end; !error && it != end; it.increment(error)) {
    if (fs::is_directory(it->path())) names.push_back(it->path().filename().string());
  }
  std::sort(names.begin(), names.end());
  std::optional<Candidate> best;
  for (const auto& name : names) {
    Candidate c;
    c.name = name;
    c.copy = ends_with(name, ".old") ? 1 : ends_with(name, ".tmp") ? 2 : 0;
    try {
      c.state = verify_checkpoint(checkpoints + "/" + name);
    } catch (const std::invalid_argument& e) {
      problems.push_back(e.what());
      continue;
    }
    if (!best || c.state.global_step > best->state.global_step ||
        (c.state.global_step == best->state.global_step && c.copy < best->copy)) {
      best = c;
    }
  }
  return best;
}

}  // namespace

std::optional<ResumePoint> find_resume_point(const std::string& run_directory, bool repair) {
  const std::string checkpoints = run_directory + "/checkpoints";
  std::string problem;  // why `latest` cannot be followed
  std::string name;
  {
    std::ifstream latest(checkpoints + "/latest");
    if (!latest) problem = checkpoints + "/latest: missing";
    else if (!std::getline(latest, name) || name.empty()) problem = checkpoints + "/latest: empty";
  }
  if (problem.empty()) {
    ResumePoint point;
    point.checkpoint = checkpoints + "/" + name;
    try {
      point.state = verify_checkpoint(point.checkpoint);
      return point;
    } catch (const CorruptCheckpoint& e) {
      problem = checkpoints + "/latest names '" + name + "', which cannot be resumed: " + e.what();
    }
  }
  std::vector<std::string> problems;
  const std::optional<Candidate> best = newest_verified(checkpoints, problems);
  if (!best) {
    if (problems.empty() && name.empty()) return std::nullopt;  // never checkpointed
    throw std::invalid_argument(run_directory + ": no checkpoint verifies (" +
                                (name.empty() && !problems.empty() ? problems.front() : problem) + ")");
  }
  ResumePoint point;
  point.checkpoint = checkpoints + "/" + best->name;
  point.state = best->state;
  spdlog::warn("{}; resuming from {} (stage '{}', global step {}), the newest checkpoint that verifies", problem,
               point.checkpoint, point.state.stage, point.state.global_step);
  if (repair && best->copy != 0) {
    // The copy becomes the stage's folder, which later stages and resumes load by name.
    const std::string regular = checkpoints + "/" + best->name.substr(0, best->name.size() - 4);
    if (fs::exists(regular)) {
      const std::string aside = run_directory + "/checkpoints.corrupt/" + best->name.substr(0, best->name.size() - 4);
      fs::remove_all(aside);
      fs::create_directories(fs::path(aside).parent_path());
      rename_durably(regular, aside);
      spdlog::warn("moved {} to {}", regular, aside);
    }
    rename_durably(point.checkpoint, regular);
    point.checkpoint = regular;
  }
  if (repair) {
    write_file_durably(checkpoints + "/latest", fs::path(point.checkpoint).filename().string() + "\n");
  }
  return point;
}

void truncate_metrics(const std::string& run_directory, int64_t global_step) {
  // metrics.jsonl: rows up to `global_step`. A last line that is not whole JSON (a kill mid-write)
  // is dropped with a warning; a bad line before the last is an error naming it. metrics.csv is
  // rewritten from metrics.jsonl by the MetricsLogger that continues the run.
  const std::string path = run_directory + "/metrics.jsonl";
  std::ifstream in(path);
  if (!in) return;
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(line);
  }
  in.close();
  std::vector<std::string> kept;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto row = nlohmann::json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    if (row.is_discarded() || !row.is_object() || !row.contains("global_step") ||
        !row["global_step"].is_number_integer()) {
      if (i + 1 == lines.size()) {
        spdlog::warn("{}: dropping its last line, which is incomplete (the run was stopped while writing it)", path);
        continue;
      }
      throw std::invalid_argument(path + ":" + std::to_string(i + 1) +
                                  ": expected a metrics row (a JSON object with global_step)");
    }
    if (row["global_step"].get<int64_t>() <= global_step) kept.push_back(lines[i]);
  }
  std::string text;
  for (const auto& l : kept) text += l + "\n";
  write_file_durably(path, text);
}

int64_t stop_after_global_step() {
  const char* value = std::getenv("PREFENGINE_STOP_AFTER_STEP");
  return value != nullptr ? std::atoll(value) : 0;
}

}  // namespace prefengine
