// prefengine: the launcher users run. It loads neither LibTorch nor libprefengine (libc and
// libstdc++ only): it answers --version, --help and a bare `prefengine` itself, and for every other
// command sets the runtime defaults (engine/cli/runtime_defaults.h) where the user has not, then
// execs the engine executable with the arguments unchanged. exec keeps the pid, the open files and
// the signal dispositions, so exit status, signals, stdin and stdout are the engine's own, and the
// libraries read their settings when the engine loads them: LibTorch is loaded once.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <unistd.h>

#include "engine/cli/build_info.h"
#include "engine/cli/runtime_defaults.h"
#include "engine/cli/usage.h"

namespace {

using prefengine::runtime::apply_runtime_defaults;

bool readable(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

// The libopenblas.so.0 the dynamic loader will give the engine: the first directory of
// LD_LIBRARY_PATH (as it is now, defaults applied) that holds one, else the system's (the
// multiarch directories ld.so.cache lists, in its order). The engine executable prints the one it
// actually loaded; tests/launcher_test.cpp checks that the two agree.
std::string expected_blas() {
  const std::string file = "libopenblas.so.0";
  if (const char* path = std::getenv("LD_LIBRARY_PATH")) {
    const std::string list = path;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      const std::string dir = list.substr(start, end - start);
      if (!dir.empty() && readable(dir + "/" + file)) return dir + "/" + file;
      start = end + 1;
    }
  }
#if defined(__x86_64__)
  const char* triplet = "x86_64-linux-gnu";
#elif defined(__aarch64__)
  const char* triplet = "aarch64-linux-gnu";
#else
  const char* triplet = "";
#endif
  for (const std::string& dir : {std::string("/lib/") + triplet, std::string("/usr/lib/") + triplet,
                                 std::string("/lib"), std::string("/usr/lib")}) {
    if (readable(dir + "/" + file)) return dir + "/" + file;
  }
  return "(none found)";
}

// This executable's directory, from /proc/self/exe (symbolic links resolved), or "" without /proc.
std::string own_directory() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof buffer - 1);
  if (n <= 0) return "";
  const std::string path(buffer, static_cast<size_t>(n));
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(prefengine::cli::kUsage, stderr);
    return 2;
  }
  if (prefengine::cli::is_top_level_help(argv[1])) {
    std::fputs(prefengine::cli::kUsage, stdout);
    return 0;
  }
  // The settings a command would run with: the engine gets this very environment.
  const bool applied = apply_runtime_defaults();
  if (std::strcmp(argv[1], "--version") == 0) {
    std::printf("prefengine %s (plugin ABI %s)\n%s\nblas: %s\n", PREFENGINE_BUILD_VERSION, PREFENGINE_BUILD_PLUGIN_ABI,
                prefengine::runtime::runtime_settings_line().c_str(), expected_blas().c_str());
    return 0;
  }
  // The engine applies nothing more and does not restart; neither do the processes it starts
  // (sweep points, --nproc ranks), which inherit the environment.
  if (applied) setenv(prefengine::runtime::kNoReexecVariable, "1", 1);
  const std::string dir = own_directory();
  const std::string beside = dir + "/" PREFENGINE_ENGINE_NAME;
  const std::string installed = dir + "/" PREFENGINE_ENGINE_INSTALLED_RELATIVE;
  for (const std::string& engine : {beside, installed}) {
    if (access(engine.c_str(), X_OK) != 0) continue;
    execv(engine.c_str(), argv);
    std::fprintf(stderr, "error: prefengine: cannot start the engine executable %s: %s\n", engine.c_str(),
                 std::strerror(errno));
    return 127;
  }
  std::fprintf(stderr,
               "error: prefengine: the engine executable is missing: expected %s (build tree) or %s (install); "
               "build the prefengine_engine target or reinstall\n",
               beside.c_str(), installed.c_str());
  return 127;
}
