// prefengine: the command line. Every subcommand has --help; errors are one line and exit 1.
#include <iostream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <spdlog/spdlog.h>

#include "engine/cli/commands.h"

namespace po = boost::program_options;

int main(int argc, char** argv) {
  return prefengine::cli::main_entry(argc, argv);
}
