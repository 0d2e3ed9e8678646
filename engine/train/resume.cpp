#include "engine/train/resume.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/serialize/input-archive.h>

#include "engine/train/flat_optimizer.h"

namespace prefengine {

std::optional<ResumePoint> find_resume_point(const std::string& run_directory) {
  std::ifstream latest(run_directory + "/checkpoints/latest");
  std::string name;
  if (!latest || !std::getline(latest, name) || name.empty()) return std::nullopt;
  ResumePoint point;
  point.checkpoint = run_directory + "/checkpoints/" + name;
  std::ifstream in(point.checkpoint + "/state.json");
  if (!in) throw std::invalid_argument(point.checkpoint + "/state.json: cannot read the checkpoint state");
  point.state = nlohmann::json::parse(in);
  for (const char* key : {"stage_index", "step", "global_step", "sampler"}) {
    if (!point.state.contains(key)) {
      throw std::invalid_argument(point.checkpoint + "/state.json: no '" + key +
                                  "' (written by an older prefengine?): cannot resume from it");
    }
  }
  point.stage_index = point.state["stage_index"].get<size_t>();
  point.step = point.state["step"].get<int64_t>();
  point.global_step = point.state["global_step"].get<int64_t>();
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

void load_optimizer_state(const std::string& checkpoint, FlatOptimizer& optimizer) {
  torch::serialize::InputArchive archive;
  archive.load_from(checkpoint + "/optimizer.pt");
  std::vector<std::pair<std::string, at::Tensor>> state;
  for (const char* name : {"step", "first_moment", "second_moment"}) {
    at::Tensor value;
    if (archive.try_read(name, value)) state.emplace_back(name, value);
  }
  optimizer.load_state(state);
}

nlohmann::json generator_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  const at::Tensor state = generator.get_state().contiguous();
  const uint8_t* bytes = state.data_ptr<uint8_t>();
  return std::vector<int>(bytes, bytes + state.numel());
}

void restore_generator_state(const nlohmann::json& state) {
  const std::vector<int> values = state.get<std::vector<int>>();
  at::Tensor bytes = at::empty({static_cast<int64_t>(values.size())}, at::kByte);
  for (size_t i = 0; i < values.size(); ++i) bytes.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(values[i]);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(bytes);
}

int64_t stop_after_global_step() {
  const char* value = std::getenv("PREFENGINE_STOP_AFTER_STEP");
  return value != nullptr ? std::atoll(value) : 0;
}

}  // namespace prefengine
