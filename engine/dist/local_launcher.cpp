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
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <thread>

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

}  // namespace

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

void launch_local_ranks(const LaunchOptions& options) {
  if (options.nproc < 1) throw std::invalid_argument("--nproc: expected >= 1, got " + std::to_string(options.nproc));
  const std::string exe = self_executable();
  int port = options.master_port;
  if (port == 0) port = find_free_port();
  else check_port_free(port);

  std::vector<pid_t> pids(options.nproc, -1);
  for (int rank = 0; rank < options.nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGKILL);
      throw std::runtime_error(std::string("--nproc: fork failed: ") + std::strerror(errno));
    }
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // no orphaned ranks if the launcher dies
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(options.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      for (const auto& [key, value] : options.env) ::setenv(key.c_str(), value.c_str(), 1);
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
  auto kill_deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
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
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && !stopping) now_failed.push_back({r, status});
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
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGTERM);
      kill_deadline = std::chrono::steady_clock::now() +
                      std::chrono::milliseconds(static_cast<int64_t>(options.grace_s * 1000));
    }
    if (std::chrono::steady_clock::now() > kill_deadline) {
      for (pid_t p : pids) if (p > 0) ::kill(p, SIGKILL);
      kill_deadline = std::chrono::steady_clock::time_point::max();
    }
    if (running > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
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
}

}  // namespace prefengine
