#include "engine/train/resume.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>

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
  auto filter = [&](const std::string& path, bool csv) {
    std::ifstream in(path);
    if (!in) return;
    std::vector<std::string> kept;
    std::string line;
    bool header = csv;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      if (header) {
        kept.push_back(line);
        header = false;
        continue;
      }
      int64_t row_step = 0;
      if (csv) {
        // stage,step,global_step,...
        const size_t first = line.find(',');
        const size_t second = line.find(',', first + 1);
        row_step = std::stoll(line.substr(second + 1));
      } else {
        row_step = nlohmann::json::parse(line).at("global_step").get<int64_t>();
      }
      if (row_step <= global_step) kept.push_back(line);
    }
    in.close();
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      for (const auto& l : kept) out << l << "\n";
      if (!out) throw std::runtime_error(tmp + ": cannot write the metrics file");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot replace it");
  };
  filter(run_directory + "/metrics.jsonl", false);
  filter(run_directory + "/metrics.csv", true);
}

int64_t stop_after_global_step() {
  const char* value = std::getenv("PREFENGINE_STOP_AFTER_STEP");
  return value != nullptr ? std::atoll(value) : 0;
}

}  // namespace prefengine
