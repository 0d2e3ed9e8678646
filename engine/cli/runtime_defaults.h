#pragma once
// The runtime defaults prefengine gives itself: libgomp and OpenBLAS read their settings once, when
// they are loaded (before main), so a process that wants them restarts itself once with them set.
// Used by the prefengine executable and the benchmarks (header-only: libc and POSIX only).
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace prefengine::runtime {

// libgomp and OpenBLAS read their settings once, when they are loaded (before main), so the
// process starts itself again with two defaults set, unless the user set them:
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

inline void reexec_with_runtime_defaults(char** argv) {
  if (std::getenv("PREFENGINE_NO_REEXEC") != nullptr) return;
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
    __builtin_cpu_init();
    const char* core = nullptr;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
      core = "SkylakeX";
    } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      core = "Haswell";
    }
    if (core != nullptr) {
      setenv("OPENBLAS_CORETYPE", core, 1);
      changed = true;
    }
  }
  if (!changed) return;
  setenv("PREFENGINE_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc): run on with the settings the libraries already have.
}

}  // namespace prefengine::runtime
