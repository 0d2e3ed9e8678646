#pragma once
// `prefengine --help`: printed by the launcher (engine/cli/launcher.cpp, without LibTorch) and by
// the engine executable (engine/cli/commands.cpp) alike. Header-only, no dependencies.

#include <string_view>

namespace prefengine::cli {

inline constexpr const char* kUsage =
    "usage: prefengine [--version] [--help] <command> [<args>]\n"
    "\n"
    "commands:\n"
    "  run EXP.yaml        run an experiment's stages and write a run directory\n"
    "  validate EXP.yaml   check an experiment file, its plugins and data without training\n"
    "  plugins             list the plugins found (name, kind, ABI version, file)\n"
    "  report RUN_DIR...   write report.html (SVG charts) and summary.md/csv for runs\n"
    "  grade               score responses with a grader plugin (math, poem, slogan)\n"
    "  generate            sample completions for a JSONL of prompts from a model or checkpoint\n"
    "  export CHECKPOINT   write a transformer checkpoint as a Hugging Face model folder\n"
    "\n"
    "'prefengine <command> --help' describes a command's options.\n";

// The top-level arguments the launcher answers itself: none (usage on stderr, exit 2), --help.
inline bool is_top_level_help(const char* arg) {
  const std::string_view a(arg);
  return a == "--help" || a == "-h" || a == "help";
}

}  // namespace prefengine::cli
