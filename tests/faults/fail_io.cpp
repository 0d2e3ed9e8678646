// Fault injection for the reliability tests, loaded with LD_PRELOAD: the FAIL_IO_AT-th call of
// FAIL_IO_OP (write, fsync or rename) on a path containing FAIL_IO_MATCH fails with FAIL_IO_ERRNO
// (ENOSPC, the default, or EIO), as a full disk or a failing device would. A failing write of more
// than one byte first writes half of it (a short write, as a disk filling up returns) and fails
// the call after it. Without FAIL_IO_OP the library changes nothing.
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>
#include <unistd.h>

namespace {

struct Plan {
  const char* op = nullptr;
  const char* match = "";
  long at = 1;
  int error = ENOSPC;
  long calls = 0;     // matching calls so far
  bool short_done = false;
};

Plan& plan() {
  static Plan p = [] {
    Plan q;
    q.op = std::getenv("FAIL_IO_OP");
    if (const char* m = std::getenv("FAIL_IO_MATCH")) q.match = m;
    if (const char* a = std::getenv("FAIL_IO_AT")) q.at = std::atol(a);
    if (const char* e = std::getenv("FAIL_IO_ERRNO")) q.error = std::strcmp(e, "EIO") == 0 ? EIO : ENOSPC;
    return q;
  }();
  return p;
}

bool fd_matches(int fd) {
  char link[64], path[PATH_MAX];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = '\0';
  return std::strstr(path, plan().match) != nullptr;
}

bool armed(const char* op) { return plan().op != nullptr && std::strcmp(plan().op, op) == 0; }

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buf, size_t count) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  if (fd > 2 && armed("write") && fd_matches(fd)) {
    Plan& p = plan();
    const long call = ++p.calls;
    if (call == p.at && count > 1) {
      p.short_done = true;
      return real(fd, buf, count / 2);
    }
    if (call == p.at || (p.short_done && call == p.at + 1)) {
      errno = p.error;
      return -1;
    }
  }
  return real(fd, buf, count);
}

extern "C" int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  if (armed("fsync") && fd_matches(fd) && ++plan().calls == plan().at) {
    errno = plan().error;
    return -1;
  }
  return real(fd);
}

extern "C" int rename(const char* from, const char* to) {
  static auto real = next<int (*)(const char*, const char*)>("rename");
  if (armed("rename") && (std::strstr(from, plan().match) != nullptr || std::strstr(to, plan().match) != nullptr) &&
      ++plan().calls == plan().at) {
    errno = plan().error;
    return -1;
  }
  return real(from, to);
}
