// The dynamic loader's share of start-up: dlopen libtorch_cpu (RTLD_NOW | RTLD_GLOBAL) and leave
// with _exit, as the engine executable does (engine/cli/main.cpp), so that LibTorch's static
// destructors are not counted; --exit leaves through exit() and runs them. bench/startup_bench.py
// times this process whole, as the floor `prefengine` start-up is measured against. Links nothing
// but libc.
//   build/bin/dlopen_torch_bench [--exit] [LIBRARY]   (default: LibTorch's libtorch_cpu, found at
//                                                      configure time)
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <dlfcn.h>
#include <unistd.h>

int main(int argc, char** argv) {
  const bool normal_exit = argc > 1 && std::strcmp(argv[1], "--exit") == 0;
  const int first = normal_exit ? 2 : 1;
  const char* library = argc > first ? argv[first] : PREFENGINE_TORCH_CPU_LIBRARY;
  if (dlopen(library, RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    std::fprintf(stderr, "error: dlopen %s: %s\n", library, dlerror());
    return 1;
  }
  if (normal_exit) std::exit(0);
  _exit(0);
}
