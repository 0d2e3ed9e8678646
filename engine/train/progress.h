#pragma once
// Timing and console progress of a stage's loop.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine {

struct MetricsRow;

// "H:MM:SS", or "?" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);

// Steady-state step time of a stage: every step after the stage's first (allocator and caches
// warm up there), without checkpoint writes. run.json reports it as the stage's "step_time".
class StepTimer {
 public:
  explicit StepTimer(int64_t first_step) : first_step_(first_step) {}
  void begin() { start_ = std::chrono::steady_clock::now(); }
  // call after the step's work (metrics included), before any checkpoint write
  void end(int64_t step);
  nlohmann::json to_json() const;

 private:
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
  double seconds_ = 0;
  int64_t steps_ = 0;
};

// Console progress: at most one line a second (and the first and last step), so the log stays
// readable: "[stage] step 10/100  loss 0.69 ...  12.3 steps/s  ETA 0:00:07".
class Progress {
 public:
  Progress(std::string stage, int64_t first_step, int64_t total);
  void report(int64_t step, const MetricsRow& row, const std::vector<std::string>& keys);

 private:
  std::string stage_;
  int64_t first_step_;
  int64_t total_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace prefengine
