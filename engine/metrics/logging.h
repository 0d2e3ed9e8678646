#pragma once
// spdlog set-up: a coloured console logger and, once a run directory exists, a log file.
#include <memory>
#include <string>

namespace prefengine {

// level: trace, debug, info, warn, error, off. Throws std::invalid_argument for another name.
void setup_logging(const std::string& level);
// Adds <path> as a file sink of the default logger (everything at the logger's level) for as
// long as the returned handle lives: a run's log file gets that run's lines only.
class ScopedLogFile {
 public:
  explicit ScopedLogFile(const std::string& path);
  ~ScopedLogFile();
  ScopedLogFile(const ScopedLogFile&) = delete;
  ScopedLogFile& operator=(const ScopedLogFile&) = delete;

 private:
  std::shared_ptr<void> sink_;
};

}  // namespace prefengine
