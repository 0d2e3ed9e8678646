// The launcher, build/bin/prefengine (engine/cli/launcher.cpp): it hands the engine executable the
// arguments, stdin/stdout, exit status and pid unchanged, sets each runtime variable only where the
// user has not (none under PREFENGINE_NO_REEXEC), answers --version and --help without LibTorch
// with what the engine itself says, and names the engine it cannot find. The engine is played by
// tests/launcher_probe.cpp, copied next to a copy of the launcher as prefengine-engine.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/cli/build_info.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct Outcome {
  pid_t pid = -1;
  int status = 0;  // waitpid's
  std::string out;
  std::string err;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class Scratch {
 public:
  Scratch() {
    char pattern[] = "/tmp/prefengine-launcher-XXXXXX";
    dir_ = mkdtemp(pattern);
  }
  ~Scratch() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

// The variables the launcher may set, and its switch: removed from the environment the tests start
// from, so that only what a test sets is there.
const char* const kRuntime[] = {"OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "LD_LIBRARY_PATH", "PREFENGINE_NO_REEXEC"};

// Runs `program args...` (args verbatim, no shell) with this process's environment less kRuntime
// plus `env` ("NAME=value"), `input` on stdin; stdout and stderr through files.
Outcome spawn(const std::string& program, const std::vector<std::string>& args, const std::vector<std::string>& env = {},
              const std::string& input = "", const std::string& argv0 = "prefengine") {
  Scratch io;
  const fs::path in = io.dir() / "in", out = io.dir() / "out", err = io.dir() / "err";
  std::ofstream(in, std::ios::binary) << input;
  std::vector<std::string> environment;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    bool runtime = false;
    for (const char* name : kRuntime) runtime = runtime || entry.rfind(std::string(name) + "=", 0) == 0;
    if (!runtime) environment.push_back(entry);
  }
  environment.insert(environment.end(), env.begin(), env.end());
  std::vector<char*> argv{const_cast<char*>(argv0.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  Outcome o;
  o.pid = fork();
  if (o.pid == 0) {
    const int fd_in = open(in.c_str(), O_RDONLY), fd_out = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600),
              fd_err = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd_in, 0);
    dup2(fd_out, 1);
    dup2(fd_err, 2);
    execve(program.c_str(), argv.data(), envp.data());
    _exit(126);
  }
  waitpid(o.pid, &o.status, 0);
  o.out = slurp(out);
  o.err = slurp(err);
  return o;
}

// A copy of the launcher at <dir>/prefengine, with the probe as <dir>/prefengine-engine.
std::string launcher_beside_probe(const fs::path& dir) {
  fs::copy_file(PREFENGINE_CLI, dir / "prefengine");
  fs::copy_file(PREFENGINE_LAUNCHER_PROBE, dir / "prefengine-engine");
  return (dir / "prefengine").string();
}

// The probe's "env NAME=value" line, or "unset".
std::string probed(const std::string& out, const std::string& name) {
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line == "env " + name + " unset") return "unset";
    if (line.rfind("env " + name + "=", 0) == 0) return line.substr(name.size() + 5);
  }
  return "(no line for " + name + ")";
}

// OPENBLAS_CORETYPE as the kernel's CPU flags call for it (the launcher asks CPUID itself).
std::string expected_core_type() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::vector<std::string> flags;
    for (std::string w; words >> w;) flags.push_back(w);
    auto has = [&](const char* f) { return std::find(flags.begin(), flags.end(), f) != flags.end(); };
    if (has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl")) return "SkylakeX";
    if (has("avx2") && has("fma")) return "Haswell";
    return "unset";
  }
  return "unset";
}

const std::string kOpenmpBlas = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
bool has_openmp_blas() { return access((kOpenmpBlas + "/libopenblas.so.0").c_str(), R_OK) == 0; }

TEST(LauncherTest, PassesArgumentsStdinAndPidThroughUnchanged) {
  Scratch s;
  const std::string launcher = launcher_beside_probe(s.dir());
  const std::vector<std::string> args = {"run", "two words", "", "'single'", "\"double\"", "back\\slash", "$HOME",
                                         "--set=a.b=1 2", "tab\there", "ünïcödé", "-", "--version"};
  const Outcome o = spawn(launcher, args, {"PROBE_READ_STDIN=1"}, "line one\nline two", "my-argv0");
  ASSERT_EQ(o.exit_code(), 0) << o.out << o.err;
  EXPECT_EQ(o.err, "");
  std::string expected = "pid " + std::to_string(o.pid) + "\narg 0 8 my-argv0\n";  // exec keeps the pid
  for (size_t i = 0; i < args.size(); ++i) {
    expected += "arg " + std::to_string(i + 1) + " " + std::to_string(args[i].size()) + " " + args[i] + "\n";
  }
  EXPECT_EQ(o.out.substr(0, expected.size()), expected);
  EXPECT_NE(o.out.find("\nstdin line one\nline two\n"), std::string::npos) << o.out;
}

TEST(LauncherTest, PropagatesExitStatusAndSignals) {
  Scratch s;
  const std::string launcher = launcher_beside_probe(s.dir());
  for (int code : {0, 1, 2, 3, 77, 128 + 15, 255}) {
    const Outcome o = spawn(launcher, {"validate", "x.yaml"}, {"PROBE_EXIT=" + std::to_string(code)});
    EXPECT_TRUE(WIFEXITED(o.status));
    EXPECT_EQ(o.exit_code(), code);
  }
  for (int signal : {SIGTERM, SIGINT, SIGKILL}) {
    const Outcome o = spawn(launcher, {"run", "x.yaml"}, {"PROBE_SIGNAL=" + std::to_string(signal)});
    ASSERT_TRUE(WIFSIGNALED(o.status)) << signal;
    EXPECT_EQ(WTERMSIG(o.status), signal);
  }
}

TEST(LauncherTest, SetsEachRuntimeVariableOnlyWhereUnset) {
  Scratch s;
  const std::string launcher = launcher_beside_probe(s.dir());
  const Outcome clean = spawn(launcher, {"run"});
  EXPECT_EQ(probed(clean.out, "OMP_WAIT_POLICY"), "passive");
  EXPECT_EQ(probed(clean.out, "OPENBLAS_CORETYPE"), expected_core_type());
  EXPECT_EQ(probed(clean.out, "LD_LIBRARY_PATH"), has_openmp_blas() ? kOpenmpBlas : "unset");
  // The engine and the processes it starts restart no more.
  EXPECT_EQ(probed(clean.out, "PREFENGINE_NO_REEXEC"), "1");

  // Each one the user set stays as set (an empty value too), the others get their defaults.
  const Outcome user = spawn(launcher, {"run"}, {"OMP_WAIT_POLICY=active", "LD_LIBRARY_PATH="});
  EXPECT_EQ(probed(user.out, "OMP_WAIT_POLICY"), "active");
  EXPECT_EQ(probed(user.out, "LD_LIBRARY_PATH"), "");
  EXPECT_EQ(probed(user.out, "OPENBLAS_CORETYPE"), expected_core_type());
  const Outcome core = spawn(launcher, {"run"}, {"OPENBLAS_CORETYPE=Prescott", "LD_LIBRARY_PATH=/nonexistent"});
  EXPECT_EQ(probed(core.out, "OPENBLAS_CORETYPE"), "Prescott");
  EXPECT_EQ(probed(core.out, "LD_LIBRARY_PATH"), "/nonexistent");
  EXPECT_EQ(probed(core.out, "OMP_WAIT_POLICY"), "passive");

  // PREFENGINE_NO_REEXEC (any value): nothing is set.
  for (const char* off : {"PREFENGINE_NO_REEXEC=1", "PREFENGINE_NO_REEXEC="}) {
    const Outcome o = spawn(launcher, {"run"}, {off});
    EXPECT_EQ(probed(o.out, "OMP_WAIT_POLICY"), "unset") << off;
    EXPECT_EQ(probed(o.out, "OPENBLAS_CORETYPE"), "unset") << off;
    EXPECT_EQ(probed(o.out, "LD_LIBRARY_PATH"), "unset") << off;
    EXPECT_EQ(probed(o.out, "PREFENGINE_NO_REEXEC"), std::string(off).substr(21)) << off;
  }
}

// --version and --help are the launcher's own: they work with no engine beside it, load no
// LibTorch (the dynamic loader's own log), and say exactly what the engine executable says, for
// the settings the engine would run with: the BLAS line is the library the engine really loads.
TEST(LauncherTest, VersionAndHelpWithoutLibTorchSayWhatTheEngineSays) {
  Scratch s;
  fs::copy_file(PREFENGINE_CLI, s.dir() / "prefengine");
  const std::string alone = (s.dir() / "prefengine").string();
  // Defaults applied; none (the engine does not restart); the user's own, where the BLAS is the
  // system's (the engine loads LibTorch once in the last two).
  const std::vector<std::vector<std::string>> envs = {
      {}, {"PREFENGINE_NO_REEXEC=1"}, {"OMP_WAIT_POLICY=active", "OPENBLAS_CORETYPE=Haswell", "LD_LIBRARY_PATH=/nonexistent"}};
  for (const auto& env : envs) {
    const Outcome launcher = spawn(alone, {"--version"}, env);
    const Outcome engine = spawn(PREFENGINE_ENGINE, {"--version"}, env);  // restarts itself unless told not to
    EXPECT_EQ(launcher.exit_code(), 0);
    EXPECT_EQ(engine.exit_code(), 0);
    EXPECT_EQ(launcher.out, engine.out);
    EXPECT_NE(launcher.out.find("prefengine 0."), std::string::npos) << launcher.out;
  }
  if (has_openmp_blas()) {
    EXPECT_NE(spawn(alone, {"--version"}).out.find("blas: " + kOpenmpBlas + "/libopenblas.so.0\n"), std::string::npos);
  }
  // The engine's help, with the loader's log (on stderr) as the control for the check below.
  const Outcome engine_help = spawn(PREFENGINE_ENGINE, {"--help"}, {"LD_DEBUG=libs", "PREFENGINE_NO_REEXEC=1"});
  EXPECT_EQ(engine_help.exit_code(), 0);
  EXPECT_NE(engine_help.err.find("libtorch_cpu"), std::string::npos);
  for (const char* help : {"--help", "-h", "help"}) {
    const Outcome launcher = spawn(alone, {help, "ignored"});
    EXPECT_EQ(launcher.exit_code(), 0);
    EXPECT_EQ(launcher.out, engine_help.out) << help;
    EXPECT_NE(launcher.out.find("usage: prefengine "), std::string::npos);
  }
  const Outcome bare = spawn(alone, {});  // usage on stderr, exit 2, as the engine does
  EXPECT_EQ(bare.exit_code(), 2);
  EXPECT_EQ(bare.err, engine_help.out);
  EXPECT_EQ(bare.out, "");

  // The loader's log: the launcher maps libc and no LibTorch; the engine (the check's control) does.
  const Outcome traced = spawn(alone, {"--version"}, {"LD_DEBUG=libs"});
  EXPECT_NE(traced.err.find("libc.so.6"), std::string::npos) << traced.err;
  for (const char* library : {"libtorch", "libc10", "libprefengine", "libgomp", "libopenblas"}) {
    EXPECT_EQ(traced.err.find(library), std::string::npos) << library << "\n" << traced.err;
  }
}

TEST(LauncherTest, FindsTheInstalledEngine) {
  Scratch s;
  fs::create_directories(s.dir() / "bin");
  fs::copy_file(PREFENGINE_CLI, s.dir() / "bin/prefengine");
  const fs::path engine = s.dir() / "bin" / PREFENGINE_ENGINE_INSTALLED_RELATIVE;
  fs::create_directories(engine.parent_path());
  fs::copy_file(PREFENGINE_LAUNCHER_PROBE, engine);
  const Outcome o = spawn((s.dir() / "bin/prefengine").string(), {"plugins"}, {"PROBE_EXIT=5"});
  EXPECT_EQ(o.exit_code(), 5);
  EXPECT_NE(o.out.find("arg 1 7 plugins\n"), std::string::npos) << o.out << o.err;
}

TEST(LauncherTest, MissingEngineIsOneClearLine) {
  Scratch s;
  fs::copy_file(PREFENGINE_CLI, s.dir() / "prefengine");
  const Outcome o = spawn((s.dir() / "prefengine").string(), {"validate", "configs/toy/dpo.yaml"});
  EXPECT_EQ(o.exit_code(), 127);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  EXPECT_EQ(o.err.rfind("error: prefengine: the engine executable is missing: expected " + (s.dir() / "prefengine-engine").string(), 0), 0u)
      << o.err;
  // Not executable counts as missing.
  fs::copy_file(PREFENGINE_LAUNCHER_PROBE, s.dir() / "prefengine-engine");
  fs::permissions(s.dir() / "prefengine-engine", fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(spawn((s.dir() / "prefengine").string(), {"run"}).exit_code(), 127);
}

}  // namespace
