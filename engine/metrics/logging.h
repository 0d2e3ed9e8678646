#pragma once
// spdlog set-up: a coloured console logger and, once a run directory exists, a log file.
#include <string>

namespace prefengine {

// level: trace, debug, info, warn, error, off. Throws std::invalid_argument for another name.
void setup_logging(const std::string& level);
// Adds <path> as a file sink of the default logger (everything at the logger's level).
void add_log_file(const std::string& path);

}  // namespace prefengine
