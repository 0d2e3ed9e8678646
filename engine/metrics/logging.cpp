#include "engine/metrics/logging.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "prefengine/plugin_options.h"

namespace prefengine {

void setup_logging(const std::string& level) {
  const std::vector<std::string> levels = {"trace", "debug", "info", "warn", "error", "off"};
  if (std::find(levels.begin(), levels.end(), level) == levels.end()) {
    throw std::invalid_argument("--log-level: expected one of trace, debug, info, warn, error, off, got '" +
                                level + "' (did you mean '" + nearest_name(level, levels) + "'?)");
  }
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern("%H:%M:%S %^%-5l%$ %v");
  auto logger = std::make_shared<spdlog::logger>("prefengine", console);
  logger->set_level(spdlog::level::from_str(level));
  // A log file that cannot be written (a full disk) is a warning on the console, once, never an
  // exception out of a log call.
  logger->set_error_handler([](const std::string& message) {
    static bool said = false;
    if (!said) std::fprintf(stderr, "warning: the log file: %s (later lines go to the console only)\n", message.c_str());
    said = true;
  });
  spdlog::set_default_logger(logger);
}

ScopedLogFile::ScopedLogFile(const std::string& path) {
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  file->set_pattern("%Y-%m-%d %H:%M:%S.%e %-5l %v");
  spdlog::default_logger()->sinks().push_back(file);
  spdlog::default_logger()->flush_on(spdlog::level::info);
  sink_ = file;
}

ScopedLogFile::~ScopedLogFile() {
  auto& sinks = spdlog::default_logger()->sinks();
  const auto* mine = static_cast<spdlog::sinks::sink*>(sink_.get());
  sinks.erase(std::remove_if(sinks.begin(), sinks.end(), [&](const spdlog::sink_ptr& s) { return s.get() == mine; }),
              sinks.end());
  try {
    std::static_pointer_cast<spdlog::sinks::sink>(sink_)->flush();
  } catch (const std::exception&) {
    // a full disk: the lines that could not be written are lost, the run's error says why
  }
}

}  // namespace prefengine
