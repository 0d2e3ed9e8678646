#pragma once
// The runtime defaults prefengine gives itself: libgomp and OpenBLAS read their settings once, when
// they are loaded (before main), so they must be in the environment before the process that loads
// LibTorch starts. The launcher (engine/cli/launcher.cpp, the `prefengine` users run; it loads no
// LibTorch) sets them and execs the engine executable; the engine executable and the benchmarks,
// started directly, restart themselves once with them instead (reexec_with_runtime_defaults).
// Header-only: libc, libstdc++ and POSIX only, so that the launcher stays free of LibTorch.
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace prefengine::runtime {

// Set in the environment by whoever applied the defaults (and by users who want none): a process
// that sees it applies nothing and does not restart.
inline constexpr const char* kNoReexecVariable = "PREFENGINE_NO_REEXEC";

// The variables the defaults may set, in the order --version prints them.
inline constexpr const char* kRuntimeVariables[] = {"OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "LD_LIBRARY_PATH"};

// Each default is set only where the user has not set the variable:
// - OMP_WAIT_POLICY=passive: ATen's OpenMP threads otherwise spin at every barrier, and on a
//   machine with as many busy processes as cores the spinning thread steals the core from the
//   one doing the work (perf: ~75% of the transformer DPO step in libgomp's spin loop).
// - OPENBLAS_CORETYPE: OpenBLAS does not recognise a virtual CPU that reports a generic model
//   name and falls back to its SSE3 Prescott kernels even where AVX-512 is there.
// Together they made the transformer DPO step several times faster here (bench/README.md).
// - LD_LIBRARY_PATH=<Debian's openblas-openmp directory>, where libopenblas0-openmp is installed
//   and LD_LIBRARY_PATH is not set: LibTorch links libopenblas.so.0 and libblas.so.3, and the
//   pthread build Debian selects by default keeps a second pool of threads that yield-spin
//   between calls next to ATen's OpenMP threads; the OpenMP build shares ATen's pool (and its
//   passive waiting). The small transformer's DPO step is ~10% faster with it (bench/README.md).
inline const char* openmp_openblas_directory() {
  for (const char* dir : {"/usr/lib/x86_64-linux-gnu/openblas-openmp", "/usr/lib/aarch64-linux-gnu/openblas-openmp"}) {
    if (access((std::string(dir) + "/libopenblas.so.0").c_str(), R_OK) == 0) return dir;
  }
  return nullptr;
}

// The OpenBLAS core type for this CPU from CPUID, or nullptr where OpenBLAS's own choice stands.
inline const char* openblas_core_type() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return nullptr;
}

// Sets the defaults in this process's environment where the user has not set them, unless
// PREFENGINE_NO_REEXEC is set. Returns whether it set any (the libraries already loaded in this
// process do not see them; a process started from here does).
inline bool apply_runtime_defaults() {
  if (std::getenv(kNoReexecVariable) != nullptr) return false;
  bool changed = false;
  if (std::getenv("LD_LIBRARY_PATH") == nullptr) {
    if (const char* dir = openmp_openblas_directory()) {
      setenv("LD_LIBRARY_PATH", dir, 1);
      changed = true;
    }
  }
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "passive", 1);
    changed = true;
  }
  if (std::getenv("OPENBLAS_CORETYPE") == nullptr) {
    if (const char* core = openblas_core_type()) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      changed = true;
    }
  }
  return changed;
}

// "runtime: OMP_WAIT_POLICY=... OPENBLAS_CORETYPE=... LD_LIBRARY_PATH=..." as the environment has
// them now (`prefengine --version`'s second line).
inline std::string runtime_settings_line() {
  std::string out = "runtime:";
  for (const char* name : kRuntimeVariables) {
    const char* value = std::getenv(name);
    out += std::string(" ") + name + "=" + (value != nullptr ? value : "(unset)");
  }
  return out;
}

// For an executable that loads LibTorch and was started directly (the engine executable without
// the launcher, the benchmarks): applies the defaults and, where that changed anything, starts
// this executable again with them (LibTorch then loads twice; the launcher avoids that).
inline void reexec_with_runtime_defaults(char** argv) {
  if (!apply_runtime_defaults()) return;
  setenv(kNoReexecVariable, "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): run on with the settings the libraries already have.
}

}  // namespace prefengine::runtime
