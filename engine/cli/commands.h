#pragma once
// The subcommands of the prefengine executable.
namespace prefengine::cli {

// Parses argv, runs the subcommand, turns every exception into one "error: ..." line.
int main_entry(int argc, char** argv);

}  // namespace prefengine::cli
