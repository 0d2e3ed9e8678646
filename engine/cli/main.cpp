// prefengine-engine: the command line, on libprefengine and LibTorch. Users run the launcher,
// build/bin/prefengine (engine/cli/launcher.cpp), which sets the runtime defaults and execs this;
// started directly, it restarts itself once with them. Every subcommand has --help; errors are
// one line and exit 1.
#include <cstdio>
#include <iostream>

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "engine/cli/commands.h"
#include "engine/cli/runtime_defaults.h"

int main(int argc, char** argv) {
  prefengine::runtime::reexec_with_runtime_defaults(argv);  // restarts once (engine/cli/runtime_defaults.h)
  const int status = prefengine::cli::main_entry(argc, argv);
  // Everything the command opened is closed by now (main_entry's scopes). What exit() would still
  // do is run the static destructors, LibTorch's deregistering each of its thousands of operator
  // kernels one by one: ~12% of `prefengine validate`'s process time (perf, bench/README.md
  // "Start-up"). Flush what is buffered and leave without them.
  spdlog::shutdown();
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
  _exit(status);
}
