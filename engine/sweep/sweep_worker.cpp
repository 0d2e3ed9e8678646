#include "engine/sweep/sweep_worker.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/metrics/error_line.h"
#include "engine/metrics/logging.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/interrupt.h"
#include "engine/train/run_directory.h"

namespace prefengine {
namespace {

constexpr int kReplyFd = 3;

// Points stdout and stderr at `fd` (after flushing what the previous owner wrote).
void redirect_output(int fd) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
}

void reply(size_t index, const char* status) {
  const std::string line = std::to_string(index) + " " + status + "\n";
  // One short write: atomic on a pipe; a runner that is gone (EPIPE, SIGPIPE ignored) is no error.
  (void)!::write(kReplyFd, line.data(), line.size());
}

}  // namespace

std::string run_experiment_alone(const std::string& config_path, const std::string& output) {
  // The steps of engine/cli/commands.cpp's run_command for one process and no ranks.
  ExperimentConfig config = load_experiment(config_path, {});
  ExperimentRunner runner(config, "");
  runner.validate();
  throw_if_interrupted("while checking the experiment; no run directory was created");
  RunDirectoryOptions dir_options;
  dir_options.output = output;
  dir_options.overwrite = true;
  dir_options.inputs = experiment_inputs(config.source, config.resolved_yaml);
  const std::string directory = prepare_run_directory(config.name, dir_options);
  const RunDirectoryLock lock(directory);
  runner.set_directory(directory);
  runner.run();
  return directory;
}

int run_sweep_worker(const std::string& log_level) {
  install_interrupt_handlers();
  std::signal(SIGPIPE, SIG_IGN);
  const int worker_output = ::dup(1);  // the worker's own log, between runs
  if (worker_output < 0) throw std::runtime_error(std::string("sweep worker: dup: ") + std::strerror(errno));
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    const auto job = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!job.is_object() || !job.contains("index") || !job.contains("config") || !job.contains("output") ||
        !job.contains("log")) {
      throw std::runtime_error("sweep worker: expected {\"index\", \"config\", \"output\", \"log\"} on stdin, got: " + line);
    }
    const size_t index = job["index"].get<size_t>();
    if (const int signal = pending_interrupt()) {  // a signal between runs: stop before this one
      reply(index, "interrupted");
      return 128 + signal;
    }
    const std::string log_path = job["log"].get<std::string>();
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      std::cerr << "sweep worker: " << log_path << ": cannot open: " << std::strerror(errno) << "\n";
      reply(index, "failed");
      continue;
    }
    redirect_output(log_fd);
    ::close(log_fd);
    const char* status = "completed";
    int exit_status = 0;
    try {
      setup_logging(log_level);  // a fresh logger: level, console sink, no run's file sink
      const std::string directory =
          run_experiment_alone(job["config"].get<std::string>(), job["output"].get<std::string>());
      std::cout << directory << "\n";
    } catch (const Interrupted& e) {  // as engine/cli/commands.cpp's main_entry reports them
      std::cerr << e.what() << "\n";
      status = "interrupted";
      exit_status = e.exit_status();
    } catch (const std::exception& e) {
      if (has_backtrace(e) && spdlog::should_log(spdlog::level::debug)) spdlog::debug("full error: {}", e.what());
      std::cerr << "error: " << error_line(e) << "\n";
      status = "failed";
    } catch (...) {
      std::cerr << "error: run: an exception that is not a std::exception\n";
      status = "failed";
    }
    redirect_output(worker_output);
    reply(index, status);
    if (exit_status != 0) return exit_status;
  }
  return 0;
}

}  // namespace prefengine
