#pragma once
// The subcommands of the prefengine executable.
#include <string>

namespace prefengine::cli {

// Parses argv, runs the subcommand, turns every exception into one "error: ..." line.
int main_entry(int argc, char** argv);

// Throws std::invalid_argument when `output` names the same file as `input` (writing it would
// destroy the input): "<option>: ... is the input file".
void refuse_output_over_input(const std::string& input, const std::string& output, const char* option);

}  // namespace prefengine::cli
