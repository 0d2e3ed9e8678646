#include "engine/sweep/sweep_runner.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <thread>

#include <spdlog/spdlog.h>

#include "engine/sweep/sweep_summary.h"
#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/run_directory.h"

namespace prefengine {
namespace {

pid_t spawn(const std::string& executable, const std::vector<std::string>& args, const std::string& log_path) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(executable.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error(log_path + ": cannot open: " + std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::close(fd);
    ::execv(executable.c_str(), argv.data());
    const char* message = "sweep: exec failed\n";
    (void)!::write(2, message, std::strlen(message));
    ::_exit(127);
  }
  ::close(fd);
  return pid;
}

}  // namespace

SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options) {
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t jobs = options.jobs > 0 ? options.jobs : cores;
  // Plugins, options and data of every point, before anything runs or is written (seeds do not
  // change what validation checks).
  std::string last_point;
  for (const auto& run : plan.runs) {
    if (run.point == last_point) continue;
    last_point = run.point;
    validate_experiment(parse_experiment(run.config_yaml, plan.source + " [" + run.point + "]"));
  }
  RunDirectoryOptions dir_options;
  dir_options.output = options.directory;
  dir_options.overwrite = options.overwrite;
  for (const auto& run : plan.runs) {
    for (auto& input : experiment_inputs(plan.source, run.config_yaml)) dir_options.inputs.push_back(std::move(input));
  }
  const std::string parent = prepare_run_directory(plan.name + "-sweep", dir_options);
  const RunDirectoryLock lock(parent);
  nlohmann::json sweep_status = {{"name", plan.name}, {"config", plan.source}, {"sweep", true},
                                 {"runs", plan.runs.size()}, {"status", "running"}};
  write_run_status(parent, sweep_status);
  ::mkdir((parent + "/configs").c_str(), 0755);
  ::mkdir((parent + "/logs").c_str(), 0755);
  for (const auto& run : plan.runs) {
    std::ofstream out(parent + "/configs/" + run.name + ".yaml");
    out << "# " << plan.source << ", point " << run.point << ", seed " << run.seed << "\n" << run.config_yaml;
    if (!out) throw std::runtime_error(parent + "/configs/" + run.name + ".yaml: cannot write");
  }
  spdlog::info("sweep {}: {} points x {} seeds = {} runs, {} at a time, in {}", plan.source, plan.points.size(),
               plan.seeds.size(), plan.runs.size(), jobs, parent);
  std::map<pid_t, size_t> running;
  std::vector<int> status(plan.runs.size(), -1);
  size_t next = 0;
  SweepResult result;
  result.directory = parent;
  while (next < plan.runs.size() || !running.empty()) {
    while (next < plan.runs.size() && static_cast<int64_t>(running.size()) < jobs) {
      const SweepRun& run = plan.runs[next];
      const pid_t pid = spawn(options.executable,
                              {"run", parent + "/configs/" + run.name + ".yaml", "--output", parent + "/" + run.name,
                               "--overwrite", "--log-level", "warn"},
                              parent + "/logs/" + run.name + ".log");
      running[pid] = next++;
    }
    int wstatus = 0;
    const pid_t done = ::waitpid(-1, &wstatus, 0);
    if (done < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("waitpid failed: ") + std::strerror(errno));
    }
    auto it = running.find(done);
    if (it == running.end()) continue;
    const size_t index = it->second;
    running.erase(it);
    const bool ok = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
    status[index] = ok ? 0 : 1;
    if (ok) {
      ++result.completed;
      spdlog::info("sweep: {} done ({}/{})", plan.runs[index].name, result.completed + result.failed, plan.runs.size());
    } else {
      ++result.failed;
      spdlog::error("sweep: {} failed; see {}/logs/{}.log", plan.runs[index].name, parent, plan.runs[index].name);
    }
  }
  std::vector<SummaryRow> rows;
  for (const auto& point : plan.points) {
    SummaryRow row;
    row.point = point;
    for (size_t i = 0; i < plan.runs.size(); ++i) {
      if (plan.runs[i].point != point) continue;
      if (status[i] != 0) {
        ++row.failed;
        continue;
      }
      ++row.seeds;
      const RunMetricsSummary s = summarize_run(parent + "/" + plan.runs[i].name);
      for (const auto& [name, value] : s.values) row.samples[name].push_back(value);
    }
    rows.push_back(std::move(row));
  }
  write_sweep_summary(parent, rows);
  sweep_status["status"] = "completed";
  sweep_status["completed"] = result.completed;
  sweep_status["failed"] = result.failed;
  write_run_status(parent, sweep_status);
  spdlog::info("sweep: {} completed, {} failed; summary in {}/summary.md", result.completed, result.failed, parent);
  return result;
}

}  // namespace prefengine
