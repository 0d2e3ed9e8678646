#include "engine/train/resume.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

namespace prefengine {

std::optional<ResumePoint> find_resume_point(const std::string& run_directory) {
  std::ifstream latest(run_directory + "/checkpoints/latest");
  std::string name;
  if (!latest || !std::getline(latest, name) || name.empty()) return std::nullopt;
  ResumePoint point;
  point.checkpoint = run_directory + "/checkpoints/" + name;
  point.state = read_checkpoint_state(point.checkpoint);
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
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : kept) out << l << "\n";
    out.close();
    if (!out) throw std::runtime_error(tmp + ": cannot write the metrics file");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot replace it");
}

int64_t stop_after_global_step() {
  const char* value = std::getenv("PREFENGINE_STOP_AFTER_STEP");
  return value != nullptr ? std::atoll(value) : 0;
}

}  // namespace prefengine
