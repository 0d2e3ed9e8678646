#include "engine/sweep/sweep_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>

#include "engine/sweep/sweep_summary.h"
#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/interrupt.h"
#include "engine/train/run_directory.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

constexpr int kReplyFd = 3;  // the child's end of its pipe to the runner (sweep_worker.h)

// A child process: a lone `prefengine run` of one run, or a sweep worker.
struct Child {
  bool worker = false;
  size_t run = SIZE_MAX;  // the run it is running (SIZE_MAX: a worker between runs)
  int64_t runs_done = 0;  // a worker's finished runs
  int input = -1;         // a worker's stdin (the runner writes its runs there); -1 when closed
  int reply = -1;         // the runner's end of the child's fd 3 (end of file: the child is gone)
  std::string buffer;     // reply text not yet ended by a newline
  std::string log;        // a worker's own log
};

// Starts `executable args` with stdout and stderr in `log_path` (appended to when `append`),
// stdin from `stdin_fd` (when >= 0) and the write end of a fresh pipe as fd 3; returns the pid and
// stores the pipe's read end in `reply`.
pid_t spawn(const std::string& executable, const std::vector<std::string>& args, const std::string& log_path,
            bool append, int stdin_fd, int& reply) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(executable.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0644);
  if (fd < 0) throw std::runtime_error(log_path + ": cannot open: " + std::strerror(errno));
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    ::close(fd);
    throw std::runtime_error(std::string("pipe failed: ") + std::strerror(errno));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // dup2 clears close-on-exec on the copies: 0 (a worker's runs), 1, 2 and 3 reach the child.
    if (stdin_fd >= 0) ::dup2(stdin_fd, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::dup2(pipe_fds[1], kReplyFd);
    ::execv(executable.c_str(), argv.data());
    const char* message = "sweep: exec failed\n";
    (void)!::write(2, message, std::strlen(message));
    ::_exit(127);
  }
  ::close(fd);
  ::close(pipe_fds[1]);
  ::fcntl(pipe_fds[0], F_SETFL, ::fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
  reply = pipe_fds[0];
  return pid;
}

std::string describe_exit(int wstatus) {
  if (WIFSIGNALED(wstatus)) {
    return "was killed by signal " + std::to_string(WTERMSIG(wstatus)) + " (" + strsignal(WTERMSIG(wstatus)) + ")";
  }
  return "exited with status " + std::to_string(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
}

// The last "error: ..." or "interrupted ..." line of a run's log (what it died of), or "".
std::string last_error_line(const std::string& log_path) {
  std::ifstream in(log_path);
  std::string line, found;
  while (std::getline(in, line)) {
    if (line.rfind("error: ", 0) == 0 || line.rfind("interrupted ", 0) == 0 || line.rfind("sweep: ", 0) == 0) {
      found = line;
    }
  }
  return found;
}

void append_line(const std::string& path, const std::string& line) {
  std::ofstream out(path, std::ios::app);
  out << line << "\n";
}

}  // namespace

int64_t auto_runs_per_process(const SweepPlan& plan) {
  for (const auto& run : plan.runs) {
    if (parse_experiment(run.config_yaml, plan.source + " [" + run.point + "]").model_plugin != "toy_mlp") return 1;
  }
  return kToyRunsPerProcess;
}

SweepResult run_sweep(const SweepPlan& plan, const SweepOptions& options) {
  const int64_t cores = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const int64_t jobs = options.jobs > 0 ? options.jobs : cores;
  if (options.runs_per_process < 0) {
    throw std::invalid_argument("--runs-per-process: expected 0 (auto) or more, got " +
                                std::to_string(options.runs_per_process));
  }
  // Plugins, options and data of every point, before anything runs or is written (seeds do not
  // change what validation checks).
  std::string last_point;
  for (const auto& run : plan.runs) {
    if (run.point == last_point) continue;
    last_point = run.point;
    validate_experiment(parse_experiment(run.config_yaml, plan.source + " [" + run.point + "]"));
  }
  const int64_t per_process = options.runs_per_process > 0 ? options.runs_per_process : auto_runs_per_process(plan);
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
  const std::string per_process_text =
      per_process == 1 ? "one run per process" : "up to " + std::to_string(per_process) + " runs per process";
  spdlog::info("sweep {}: {} points x {} seeds = {} runs, {} at a time ({}), in {}", plan.source, plan.points.size(),
               plan.seeds.size(), plan.runs.size(), jobs, per_process_text, parent);
  auto config_of = [&](size_t i) { return parent + "/configs/" + plan.runs[i].name + ".yaml"; };
  auto output_of = [&](size_t i) { return parent + "/" + plan.runs[i].name; };
  auto log_of = [&](size_t i) { return parent + "/logs/" + plan.runs[i].name + ".log"; };

  // A worker's pipe may close under a write (the worker died): that is seen when it is reaped.
  struct sigaction ignore_pipe {}, previous_pipe {};
  ignore_pipe.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ignore_pipe, &previous_pipe);

  std::deque<size_t> queue;  // runs not started, in plan order
  for (size_t i = 0; i < plan.runs.size(); ++i) queue.push_back(i);
  std::deque<size_t> alone;  // runs of a worker that died, each to run again in a process of its own
  std::vector<int> status(plan.runs.size(), -1);  // 0 completed, 1 failed, -1 not started
  std::map<pid_t, Child> children;
  int64_t workers_started = 0;
  SweepResult result;
  result.directory = parent;
  result.runs_per_process = per_process;

  auto finish = [&](size_t index, bool ok) {
    status[index] = ok ? 0 : 1;
    if (ok) {
      ++result.completed;
      spdlog::info("sweep: {} done ({}/{})", plan.runs[index].name, result.completed + result.failed, plan.runs.size());
    } else {
      ++result.failed;
      spdlog::error("sweep: {} failed; see {}", plan.runs[index].name, log_of(index));
    }
  };
  auto close_input = [](Child& child) {
    if (child.input >= 0) ::close(child.input);
    child.input = -1;
  };
  // Hands a worker the next run of the queue, or closes its input (it ends) when it has done its
  // share or the queue is empty.
  auto feed = [&](Child& child) {
    if (queue.empty() || child.runs_done >= per_process) {
      close_input(child);
      return;
    }
    const size_t index = queue.front();
    queue.pop_front();
    child.run = index;
    const std::string line =
        nlohmann::json{{"index", index}, {"config", config_of(index)}, {"output", output_of(index)}, {"log", log_of(index)}}
            .dump() + "\n";
    // A short line on a pipe the worker reads: one write, or the worker is gone (EPIPE), which
    // the reaping below handles (the run is its current run).
    if (::write(child.input, line.data(), line.size()) != static_cast<ssize_t>(line.size())) close_input(child);
  };
  // Reads what a child wrote on its fd 3 (non-blocking); returns false at end of file.
  auto read_replies = [&](Child& child) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(child.reply, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;  // all read; the child lives on
      if (n == 0) return false;
      child.buffer.append(buffer, static_cast<size_t>(n));
      for (size_t end; (end = child.buffer.find('\n')) != std::string::npos;) {
        const std::string line = child.buffer.substr(0, end);
        child.buffer.erase(0, end + 1);
        std::istringstream fields(line);
        size_t index = SIZE_MAX;
        std::string word;
        fields >> index >> word;
        if (!child.worker || index != child.run) {
          spdlog::warn("sweep: a child process wrote an unexpected line on its status pipe: '{}'", line);
          continue;
        }
        finish(index, word == "completed");
        child.run = SIZE_MAX;
        ++child.runs_done;
        if (word == "interrupted") {
          close_input(child);  // it ends (128 + the signal); a new worker takes the next runs
        } else {
          feed(child);
        }
      }
    }
  };
  auto reap = [&](pid_t pid, int wstatus) {
    auto it = children.find(pid);
    if (it == children.end()) return;
    Child& child = it->second;
    if (child.reply >= 0) {
      read_replies(child);  // what it wrote before it ended
      ::close(child.reply);
    }
    close_input(child);
    if (!child.worker) {
      finish(child.run, WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    } else if (child.run != SIZE_MAX && pending_interrupt() != 0) {
      finish(child.run, false);  // interrupted: not run again
    } else if (child.run != SIZE_MAX) {
      const size_t index = child.run;
      spdlog::error("sweep: the worker running {} {} (see {}); running {} again in a process of its own",
                    plan.runs[index].name, describe_exit(wstatus), child.log, plan.runs[index].name);
      append_line(log_of(index), "sweep: the worker process running this run " + describe_exit(wstatus) +
                                     "; the run starts again in a process of its own");
      alone.push_back(index);
    } else if (!(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) && pending_interrupt() == 0) {
      spdlog::warn("sweep: a worker {} between runs (see {})", describe_exit(wstatus), child.log);
    }
    children.erase(it);
  };

  install_interrupt_handlers();  // SIGINT/SIGTERM: no new runs; the running ones stop (or end)
  int interrupted_by = 0;
  while (!queue.empty() || !alone.empty() || !children.empty()) {
    if (pending_interrupt() != 0 && interrupted_by == 0) {
      // Ctrl-C reaches the children too: each stops its run at a step boundary (checkpoint,
      // run.json "interrupted"). A signal to this process alone lets the running runs finish.
      interrupted_by = pending_interrupt();
      spdlog::warn("sweep: interrupted by {}: no new runs; {} not started", signal_name(interrupted_by),
                   queue.size() + alone.size());
      result.not_started = static_cast<int64_t>(queue.size() + alone.size());
      queue.clear();
      alone.clear();
      for (auto& [pid, child] : children) {
        if (child.worker) close_input(child);
      }
    }
    while (static_cast<int64_t>(children.size()) < jobs && (!alone.empty() || !queue.empty())) {
      Child child;
      pid_t pid;
      if (!alone.empty() || per_process == 1) {
        const bool again = !alone.empty();
        std::deque<size_t>& from = again ? alone : queue;
        child.run = from.front();
        from.pop_front();
        if (again) fs::remove_all(output_of(child.run));  // what the dead worker left of it
        pid = spawn(options.executable,
                    {"run", config_of(child.run), "--output", output_of(child.run), "--overwrite", "--log-level", "warn"},
                    log_of(child.run), /*append=*/again, -1, child.reply);
      } else {
        int input[2];
        if (::pipe2(input, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe failed: ") + std::strerror(errno));
        child.worker = true;
        child.log = parent + "/logs/worker-" + std::to_string(++workers_started) + ".log";
        try {
          pid = spawn(options.executable, {"run", "--sweep-worker", "--log-level", "warn"}, child.log,
                      /*append=*/false, input[0], child.reply);
        } catch (...) {
          ::close(input[0]);
          ::close(input[1]);
          throw;
        }
        ::close(input[0]);
        child.input = input[1];
      }
      Child& placed = children.emplace(pid, std::move(child)).first->second;
      if (placed.worker) feed(placed);
    }
    // Wait for a line from a worker or for a child to end (end of file on its pipe).
    std::vector<pollfd> fds;
    std::vector<pid_t> owners;
    for (auto& [pid, child] : children) {
      if (child.reply < 0) continue;
      fds.push_back({child.reply, POLLIN, 0});
      owners.push_back(pid);
    }
    if (!fds.empty()) {
      // The timeout only matters when a run's own child process holds its fd 3 after it ended.
      const int ready = ::poll(fds.data(), fds.size(), 1000);
      if (ready < 0 && errno != EINTR) throw std::runtime_error(std::string("poll failed: ") + std::strerror(errno));
      for (size_t k = 0; ready > 0 && k < fds.size(); ++k) {
        if (fds[k].revents == 0) continue;
        Child& child = children.at(owners[k]);
        if (!read_replies(child)) {  // end of file: the child is ending
          ::close(child.reply);
          child.reply = -1;
          int wstatus = 0;
          while (::waitpid(owners[k], &wstatus, 0) < 0 && errno == EINTR) {
          }
          reap(owners[k], wstatus);
        }
      }
    }
    for (;;) {
      int wstatus = 0;
      const pid_t done = ::waitpid(-1, &wstatus, fds.empty() ? 0 : WNOHANG);
      if (done < 0 && errno == EINTR) continue;
      if (done <= 0) break;
      reap(done, wstatus);
      if (fds.empty()) break;
    }
  }
  sigaction(SIGPIPE, &previous_pipe, nullptr);
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
  // The failed runs by name, with what they died of and where their logs are.
  nlohmann::json failed_runs = nlohmann::json::array();
  std::string failed_text;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    if (status[i] != 1) continue;
    const std::string error = last_error_line(log_of(i));
    failed_runs.push_back({{"run", plan.runs[i].name}, {"log", log_of(i)}, {"error", error}});
    failed_text += "- " + plan.runs[i].name + ": " + (error.empty() ? "(no error line)" : error) + " (log: logs/" +
                   plan.runs[i].name + ".log)\n";
  }
  if (!failed_text.empty()) append_line(parent + "/summary.md", "\n## Failed runs\n\n" + failed_text);
  sweep_status["status"] = interrupted_by != 0 ? "interrupted" : "completed";
  if (interrupted_by != 0) {
    sweep_status["signal"] = signal_name(interrupted_by);
    sweep_status["not_started"] = result.not_started;
  }
  result.interrupted_by = interrupted_by;
  sweep_status["failed_runs"] = failed_runs;
  sweep_status["runs_per_process"] = per_process;
  sweep_status["completed"] = result.completed;
  sweep_status["failed"] = result.failed;
  write_run_status(parent, sweep_status);
  spdlog::info("sweep: {} completed, {} failed; summary in {}/summary.md", result.completed, result.failed, parent);
  return result;
}

}  // namespace prefengine
