// Prints toy-DPO training throughput (steps/s per stage) for configs/toy/dpo.yaml, run in-process
// `repeats` times (best of), then what bounds the toy step: ATen operators dispatched per step of
// each stage (counted with a RecordFunction callback), the cost of one small ATen operator, and
// the 1-thread fp32 matmul rate. A benchmark, not a test: it asserts nothing.
//   build/bin/toy_dpo_bench [EXP.yaml] [repeats] [--set key=value ...] [--no-floor]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "engine/cli/runtime_defaults.h"

namespace {

namespace fs = boost::filesystem;

// Runs the experiment once in a fresh temporary folder; returns run.json.
nlohmann::json run_once(const std::string& config_path, const std::vector<std::string>& overrides) {
  prefengine::ExperimentConfig config = prefengine::load_experiment(config_path, overrides);
  const fs::path dir = fs::temp_directory_path() / fs::unique_path("prefengine-bench-%%%%%%%%");
  fs::create_directories(dir / "checkpoints");
  prefengine::ExperimentRunner(config, dir.string()).run();
  std::ifstream in((dir / "run.json").string());
  const auto status = nlohmann::json::parse(in);
  fs::remove_all(dir);
  return status;
}

std::atomic<int64_t> g_ops{0};
bool g_by_name = false;
std::map<std::string, int64_t> g_names;  // --ops-detail: operator name -> calls

// ATen operators entered (top-level and nested) while running the experiment.
int64_t count_ops(const std::string& config_path, std::vector<std::string> overrides) {
  g_ops = 0;
  const auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        g_ops.fetch_add(1, std::memory_order_relaxed);
        if (g_by_name) ++g_names[fn.name()];
        return nullptr;
      }).scopes({at::RecordScope::FUNCTION}));
  run_once(config_path, overrides);
  at::removeCallback(handle);
  return g_ops.load();
}

template <typename F>
double best_seconds_per_call(int64_t calls, F&& f) {
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < calls; ++i) f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, s / static_cast<double>(calls));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  // the runtime settings `prefengine` gives itself (OpenMP waiting, OpenBLAS core and build)
  prefengine::runtime::reexec_with_runtime_defaults(argv);
  std::string config_path = "configs/toy/dpo.yaml";
  int repeats = 3;
  bool floor = true;
  std::vector<std::string> overrides;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--set" && i + 1 < argc) overrides.push_back(argv[++i]);
    else if (arg == "--no-floor") floor = false;
    else if (arg == "--ops-detail") g_by_name = true;
    else positional.push_back(arg);
  }
  if (!positional.empty()) config_path = positional[0];
  if (positional.size() > 1) repeats = std::stoi(positional[1]);
  spdlog::set_level(spdlog::level::err);
  std::map<std::string, std::vector<double>> rates, step_rates;
  std::map<std::string, int64_t> steps;
  std::vector<std::string> order;
  for (int r = 0; r < repeats; ++r) {
    const auto status = run_once(config_path, overrides);
    for (const auto& stage : status["stages"]) {
      const std::string name = stage["name"];
      if (r == 0) order.push_back(name);
      rates[name].push_back(stage["steps_per_second"].get<double>());
      step_rates[name].push_back(stage["step_time"]["steps_per_second"].get<double>());
      steps[name] = stage["steps"].get<int64_t>();
    }
  }
  const auto best = [](std::vector<double> v) { return *std::max_element(v.begin(), v.end()); };
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf("toy_dpo_bench: %s, %d repeats (stage: the whole stage; step: the loop's steps after the first)\n",
              config_path.c_str(), repeats);
  for (const auto& name : order) {
    std::printf("  stage %-8s %6lld steps  stage best %9.1f median %9.1f steps/s   step best %9.1f median %9.1f\n",
                name.c_str(), static_cast<long long>(steps[name]), best(rates[name]), median(rates[name]),
                best(step_rates[name]), median(step_rates[name]));
  }
  if (!floor) return 0;

  // Operators per step: the difference of two runs that differ only in one stage's steps.
  std::printf("ATen operators per step (RecordFunction count, log steps included):\n");
  const int64_t low = 200, high = 600;
  for (const auto& name : order) {
    std::vector<std::string> base = overrides;
    for (const auto& other : order) {
      if (other != name) base.push_back("stages." + other + ".steps=1");
    }
    std::vector<std::string> a = base, b = base;
    a.push_back("stages." + name + ".steps=" + std::to_string(low));
    b.push_back("stages." + name + ".steps=" + std::to_string(high));
    g_names.clear();
    const int64_t ops_b = count_ops(config_path, b);
    const std::map<std::string, int64_t> names_b = g_names;
    g_names.clear();
    const double per_step = static_cast<double>(ops_b - count_ops(config_path, a)) / static_cast<double>(high - low);
    std::printf("  stage %-8s %8.1f operators/step\n", name.c_str(), per_step);
    for (const auto& [op, calls] : names_b) {
      const auto it = g_names.find(op);
      const double per = static_cast<double>(calls - (it == g_names.end() ? 0 : it->second)) / (high - low);
      if (per >= 0.5) std::printf("      %-40s %6.2f\n", op.c_str(), per);
    }
  }

  // The floor: what one small operator costs, and the matmul rate the toy's FLOPs run at.
  at::set_num_threads(1);
  const at::Tensor a = at::rand({16}), b = at::rand({16});
  at::Tensor out = at::empty({16});
  const double add_out = best_seconds_per_call(200000, [&] { at::add_out(out, a, b); });
  const double add_new = best_seconds_per_call(200000, [&] { (void)at::add(a, b); });
  const at::Tensor x = at::rand({32, 64}), w = at::rand({64, 64});
  at::Tensor y = at::empty({32, 64});
  const double mm_small = best_seconds_per_call(20000, [&] { at::mm_out(y, x, w.t()); });
  const at::Tensor big_a = at::rand({512, 512}), big_b = at::rand({512, 512});
  at::Tensor big_c = at::empty({512, 512});
  const double mm_big = best_seconds_per_call(20, [&] { at::mm_out(big_c, big_a, big_b); });
  std::printf("floor, 1 thread: add_out of 16 floats %.2f us, add (allocating) %.2f us; mm [32x64]x[64x64] %.2f us "
              "(%.1f GFLOP/s); mm 512^3 %.1f GFLOP/s\n",
              add_out * 1e6, add_new * 1e6, mm_small * 1e6, 2.0 * 32 * 64 * 64 / mm_small / 1e9,
              2.0 * 512 * 512 * 512 / mm_big / 1e9);
  return 0;
}
