#include "engine/train/progress.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include <spdlog/spdlog.h>

#include "engine/metrics/metrics_logger.h"

namespace prefengine {

using Clock = std::chrono::steady_clock;

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>((s / 60) % 60), static_cast<long long>(s % 60));
  return text;
}

void StepTimer::end(int64_t step) {
  if (step == first_step_) return;
  seconds_ += std::chrono::duration<double>(Clock::now() - start_).count();
  ++steps_;
}

nlohmann::json StepTimer::to_json() const {
  return {{"steps", steps_}, {"seconds", seconds_}, {"steps_per_second", steps_ / std::max(seconds_, 1e-9)}};
}

Progress::Progress(std::string stage, int64_t first_step, int64_t total)
    : stage_(std::move(stage)), first_step_(first_step), total_(total), start_(Clock::now()) {}

void Progress::report(int64_t step, const MetricsRow& row, const std::vector<std::string>& keys) {
  const auto now = Clock::now();
  if (step != total_ && step != first_step_ && now - last_ < std::chrono::seconds(1)) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  // the rate of this invocation's steps (a resumed stage starts at first_step)
  const double rate = static_cast<double>(step - first_step_ + 1) / std::max(elapsed, 1e-9);
  std::ostringstream line;
  line << "[" << stage_ << "] step " << step << "/" << total_;
  for (const auto& k : keys) {
    if (const double* v = row.find(k)) line << "  " << k << " " << *v;
  }
  line.precision(1);
  line << std::fixed << "  " << rate << " steps/s  ETA " << format_duration((total_ - step) / rate);
  spdlog::info("{}", line.str());
}

}  // namespace prefengine
