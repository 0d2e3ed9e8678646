#include "engine/dist/local_launcher.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/dist/rendezvous.h"

namespace prefengine {
namespace {

std::string self_executable() {
  char path[4096];
  const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) throw std::runtime_error(std::string("--nproc: cannot find this executable: ") + std::strerror(errno));
  path[n] = '\0';
  return path;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return "was killed by signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

// Binds (and for the check, listens on) 127.0.0.1:port; returns the bound port or -errno.
int try_bind(int port, bool listen_too) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -errno;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int result = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || (listen_too && ::listen(fd, 1) != 0)) {
    result = -errno;
  } else {
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    result = ntohs(addr.sin_port);
  }
  ::close(fd);
  return result;
}

// SIGINT/SIGTERM to the launcher: recorded here, forwarded to every rank by the wait loop.
volatile std::sig_atomic_t g_forward_signal = 0;
volatile std::sig_atomic_t g_forward_count = 0;

extern "C" void on_launcher_signal(int signal) {
  g_forward_signal = signal;
  g_forward_count = g_forward_count + 1;
}

// The launcher's handlers while the ranks run; the previous ones again afterwards.
class ForwardSignals {
 public:
  ForwardSignals() {
    g_forward_signal = 0;
    g_forward_count = 0;
    struct sigaction action {};
    action.sa_handler = on_launcher_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~ForwardSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }

 private:
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

// The signal a rank reports as an interruption (engine/train/interrupt.h): it exited with
// 128 + SIGINT/SIGTERM, or the signal killed it (a second one); else 0.
int interrupted_by(int status) {
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 128 + SIGINT || WEXITSTATUS(status) == 128 + SIGTERM)) {
    return WEXITSTATUS(status) - 128;
  }
  if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM)) return WTERMSIG(status);
  return 0;
}

const char* const kErrorFileVariable = "PREFENGINE_ERROR_FILE";

// A temporary folder for the ranks' error files (report_error_to_launcher), removed afterwards;
// path is empty when none could be made (the launcher then names ranks by exit status alone).
struct ErrorFiles {
  std::string path;
  ErrorFiles() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/prefengine-launch-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path = pattern;
  }
  ~ErrorFiles() {
    if (path.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

// The stopped_ranks of a rank's error file; empty when there is none.
std::vector<int> read_stopped_ranks(const std::string& file) {
  std::ifstream in(file);
  if (!in) return {};
  const auto json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  std::vector<int> ranks;
  if (json.is_object() && json.contains("stopped_ranks") && json["stopped_ranks"].is_array()) {
    for (const auto& r : json["stopped_ranks"]) {
      if (r.is_number_integer()) ranks.push_back(r.get<int>());
    }
  }
  return ranks;
}

}  // namespace

void report_error_to_launcher(const std::string& message) {
  const char* file = std::getenv(kErrorFileVariable);
  if (file == nullptr || *file == '\0') return;
  nlohmann::json json = {{"message", message}, {"stopped_ranks", stopped_peers()}};
  std::ofstream(file) << json.dump() << "\n";
}

int find_free_port() {
  const int port = try_bind(0, false);
  if (port <= 0) throw std::runtime_error(std::string("--nproc: cannot find a free port: ") + std::strerror(-port));
  return port;
}

void check_port_free(int port) {
  const int result = try_bind(port, true);
  if (result == -EADDRINUSE) {
    throw std::runtime_error("--master-port " + std::to_string(port) +
                             ": the port is already in use on 127.0.0.1 (another run?); choose another port "
                             "or leave --master-port out to use a free one");
  }
  if (result < 0) {
    throw std::runtime_error("--master-port " + std::to_string(port) + ": cannot use the port: " + std::strerror(-result));
  }
}

int launch_local_ranks(const LaunchOptions& options) {
  if (options.nproc < 1) throw std::invalid_argument("--nproc: expected >= 1, got " + std::to_string(options.nproc));
  const std::string exe = self_executable();
  int port = options.master_port;
  if (port == 0) port = find_free_port();
  else check_port_free(port);

  ForwardSignals forward;
  const ErrorFiles errors;
  std::vector<pid_t> pids(options.nproc, -1);
  for (int rank = 0; rank < options.nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGKILL);
      throw std::runtime_error(std::string("--nproc: fork failed: ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphaned ranks if the launcher dies
      // A process group of its own: a terminal's Ctrl-C reaches the launcher alone, which forwards
      // it once (a rank that got it twice would take the second as "stop now").
      ::setpgid(0, 0);
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      for (const auto& [key, value] : options.env) ::setenv(key.c_str(), value.c_str(), 1);
      if (!errors.path.empty()) {
        ::setenv(kErrorFileVariable, (errors.path + "/rank-" + std::to_string(rank) + ".json").c_str(), 1);
      }
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(exe.c_str()));
      for (const auto& a : options.args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      std::fprintf(stderr, "--nproc: rank %d: cannot execute %s: %s\n", rank, exe.c_str(), std::strerror(errno));
      std::_Exit(127);
    }
    pids[rank] = pid;
  }

  int running = options.nproc;
  struct Failure {
    int rank;
    int status;
  };
  std::vector<Failure> failures;  // in the order they were seen, before the launcher stopped anyone
  bool stopping = false;
  int interrupted = 0;  // the signal the ranks were interrupted by (forwarded, or their own)
  std::sig_atomic_t forwarded = 0;
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    if (g_forward_count != forwarded) {
      // Every rank gets the signal and stops at the same step boundary; a second one ends them
      // (their default action), and the grace below bounds ranks that do not end.
      forwarded = g_forward_count;
      const int signal = g_forward_signal;
      if (interrupted == 0) interrupted = signal;
      for (pid_t p : pids) if (p > 0) ::kill(p, signal);
      if (forwarded >= 2 && kill_deadline == std::chrono::steady_clock::time_point::max()) {
        kill_deadline = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(options.grace_s * 1000));
      }
    }
    // Reap everything that has ended since the last look.
    std::vector<Failure> now_failed;
    for (;;) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      for (int r = 0; r < options.nproc; ++r) {
        if (pids[r] != pid) continue;
        pids[r] = -1;
        --running;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
        if (const int signal = interrupted_by(status); signal != 0 && (interrupted == 0 || interrupted == signal)) {
          interrupted = signal;  // stopped at a step boundary (or killed by a second signal): not a failure
          continue;
        }
        if (!stopping) now_failed.push_back({r, status});
      }
    }
    if (!now_failed.empty()) {
      // Ranks that ended together: a crash or a kill is the likelier cause than the error (status
      // 1) that it raises on its peers.
      std::stable_sort(now_failed.begin(), now_failed.end(), [](const Failure& x, const Failure& y) {
        const bool x_peer = WIFEXITED(x.status) && WEXITSTATUS(x.status) == 1;
        const bool y_peer = WIFEXITED(y.status) && WEXITSTATUS(y.status) == 1;
        return !x_peer && y_peer;
      });
      failures.insert(failures.end(), now_failed.begin(), now_failed.end());
      stopping = true;
      // SIGKILL, not SIGTERM: a rank takes SIGTERM as "stop at the next step boundary", which a rank
      // waiting in a collective for the failed one would not reach.
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGKILL);
    }
    if (std::chrono::steady_clock::now() > kill_deadline) {
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::vector<int> stopped;  // the ranks that the first failed rank found had stopped responding
  if (!failures.empty()) stopped = read_stopped_ranks(errors.path + "/rank-" + std::to_string(failures[0].rank) + ".json");
  if (!failures.empty() && !stopped.empty()) {
    // A rank that stopped responding (hung) makes a peer time out: name the one that stopped.
    std::string names;
    for (int r : stopped) names += (names.empty() ? "rank " : ", rank ") + std::to_string(r);
    std::string message = "--nproc " + std::to_string(options.nproc) + ": " + names + " stopped responding (rank " +
                          std::to_string(failures[0].rank) + " waited for it until distributed.timeout_s, then " +
                          describe_status(failures[0].status) + ")";
    throw std::runtime_error(message + "; the other ranks were stopped (see the ranks' errors above)");
  }
  if (!failures.empty()) {
    std::string message = "--nproc " + std::to_string(options.nproc) + ": rank " + std::to_string(failures[0].rank) +
                          " " + describe_status(failures[0].status);
    for (size_t i = 1; i < failures.size(); ++i) {
      message += (i == 1 ? "; then rank " : ", rank ") + std::to_string(failures[i].rank) + " " +
                 describe_status(failures[i].status);
    }
    throw std::runtime_error(message + "; the other ranks were stopped (see the ranks' errors above)");
  }
  return interrupted == 0 ? 0 : 128 + interrupted;
}

}  // namespace prefengine
