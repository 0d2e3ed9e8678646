// Prints toy-DPO training throughput (steps/s per stage) for configs/toy/dpo.yaml, run in-process
// `repeats` times (best of). A benchmark, not a test: it asserts nothing.
//   build/bin/toy_dpo_bench [EXP.yaml] [repeats] [--set key=value ...]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "engine/cli/runtime_defaults.h"

int main(int argc, char** argv) {
  // the runtime settings `prefengine` gives itself (OpenMP waiting, OpenBLAS core and build)
  prefengine::runtime::reexec_with_runtime_defaults(argv);
  namespace fs = boost::filesystem;
  std::string config_path = "configs/toy/dpo.yaml";
  int repeats = 3;
  std::vector<std::string> overrides;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--set" && i + 1 < argc) overrides.push_back(argv[++i]);
    else positional.push_back(arg);
  }
  if (!positional.empty()) config_path = positional[0];
  if (positional.size() > 1) repeats = std::stoi(positional[1]);
  spdlog::set_level(spdlog::level::warn);
  std::map<std::string, double> best;
  std::map<std::string, int64_t> steps;
  for (int r = 0; r < repeats; ++r) {
    prefengine::ExperimentConfig config = prefengine::load_experiment(config_path, overrides);
    const fs::path dir = fs::temp_directory_path() / fs::unique_path("prefengine-bench-%%%%%%%%");
    fs::create_directories(dir / "checkpoints");
    prefengine::ExperimentRunner(config, dir.string()).run();
    std::ifstream in((dir / "run.json").string());
    const auto status = nlohmann::json::parse(in);
    for (const auto& stage : status["stages"]) {
      const std::string name = stage["name"];
      best[name] = std::max(best[name], stage["steps_per_second"].get<double>());
      steps[name] = stage["steps"].get<int64_t>();
    }
    fs::remove_all(dir);
  }
  std::printf("toy_dpo_bench: %s, best of %d\n", config_path.c_str(), repeats);
  for (const auto& [name, rate] : best) {
    std::printf("  stage %-8s %6lld steps  %10.1f steps/s\n", name.c_str(), static_cast<long long>(steps[name]), rate);
  }
  return 0;
}
