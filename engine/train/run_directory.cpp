#include "engine/train/run_directory.h"

#include <ctime>
#include <stdexcept>

#include <boost/filesystem.hpp>

#include "engine/io/durable_file.h"

namespace prefengine {

namespace fs = boost::filesystem;

std::string prepare_run_directory(const std::string& experiment_name, const RunDirectoryOptions& options) {
  fs::path dir;
  if (!options.output.empty()) {
    dir = options.output;
    if (fs::exists(dir) && !fs::is_directory(dir)) {
      throw std::invalid_argument(dir.string() + ": the output path exists and is not a directory");
    }
    if (fs::exists(dir) && !fs::is_empty(dir)) {
      if (!options.overwrite) {
        throw std::invalid_argument(dir.string() +
                                    ": the output directory holds an earlier run; choose another "
                                    "--output, or pass --overwrite to replace it");
      }
      fs::remove_all(dir);
    }
  } else {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    const fs::path base = fs::path("runs") / (experiment_name + "-" + stamp);
    dir = base;
    for (int i = 2; fs::exists(dir); ++i) dir = base.string() + "-" + std::to_string(i);
  }
  fs::create_directories(dir / "checkpoints");
  return dir.string();
}

void write_run_status(const std::string& directory, const nlohmann::json& status) {
  write_file_durably(directory + "/run.json", status.dump(2) + "\n");
}

void create_reserve(const std::string& directory) {
  write_file_synced(directory + "/.reserve", std::string(64 * 1024, '\0'));
}

void release_reserve(const std::string& directory) {
  boost::system::error_code ignored;
  fs::remove(directory + "/.reserve", ignored);
}

}  // namespace prefengine
