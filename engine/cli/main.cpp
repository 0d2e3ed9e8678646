// prefengine: the command line. Every subcommand has --help; errors are one line and exit 1.
#include "engine/cli/commands.h"
#include "engine/cli/runtime_defaults.h"

int main(int argc, char** argv) {
  prefengine::runtime::reexec_with_runtime_defaults(argv);  // restarts once (engine/cli/runtime_defaults.h)
  return prefengine::cli::main_entry(argc, argv);
}
