#include "engine/train/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <yaml-cpp/yaml.h>

#include "engine/io/durable_file.h"

namespace prefengine {

namespace fs = boost::filesystem;

namespace {

// True when `inner` is `outer` or lies inside it (both made absolute and normalised; symlinks
// resolved where the paths exist).
bool is_within(const fs::path& inner, const fs::path& outer) {
  boost::system::error_code error;
  const fs::path a = fs::weakly_canonical(fs::absolute(inner), error);
  const fs::path b = fs::weakly_canonical(fs::absolute(outer), error);
  auto ai = a.begin();
  for (auto bi = b.begin(); bi != b.end(); ++bi, ++ai) {
    if (*bi == "." && std::next(bi) == b.end()) break;  // a trailing "/." of a folder
    if (ai == a.end() || *ai != *bi) return false;
  }
  return true;
}

// The reason `dir` may not be replaced by --overwrite, or "" when it may.
std::string overwrite_refusal(const fs::path& dir, const std::vector<std::string>& inputs) {
  const fs::path status_path = dir / "run.json";
  std::ifstream in(status_path.string());
  const auto status = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!in || status.is_discarded() || !status.is_object() || !status.contains("status") ||
      !status.contains("name")) {
    return "it is not a prefengine run (no run.json naming a run), so --overwrite will not delete it";
  }
  boost::system::error_code error;
  if (is_within(fs::current_path(error), dir)) {
    return "it holds the working directory, so --overwrite will not delete it";
  }
  for (const auto& input : inputs) {
    if (is_within(input, dir)) return "it holds '" + input + "', an input of the experiment, so --overwrite will not delete it";
  }
  return "";
}

}  // namespace

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
      const std::string refusal = overwrite_refusal(dir, options.inputs);
      if (!refusal.empty()) throw std::invalid_argument(dir.string() + ": " + refusal);
      {
        const RunDirectoryLock live(dir.string());  // refused while another process runs in it
        // Out of the way in one rename, then deleted: the name is free before anything is removed.
        const fs::path doomed = dir.string() + ".removing-" + std::to_string(::getpid());
        fs::remove_all(doomed);
        fs::rename(dir, doomed);
        fs::remove_all(doomed);
      }
    } else if (fs::exists(dir)) {
      fs::remove(dir);  // an empty folder: created afresh below, so that creation is one mkdir
    }
    if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
    if (!fs::create_directory(dir)) {
      throw std::invalid_argument(dir.string() + ": another process created this directory at the same time");
    }
  } else {
    char stamp[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
    const fs::path base = fs::path("runs") / (experiment_name + "-" + stamp);
    fs::create_directories(base.parent_path());
    dir = base;
    for (int i = 2; !fs::create_directory(dir); ++i) dir = base.string() + "-" + std::to_string(i);
  }
  fs::create_directories(dir / "checkpoints");
  return dir.string();
}

std::vector<std::string> experiment_inputs(const std::string& config_source, const std::string& resolved_yaml) {
  std::vector<std::string> inputs;
  if (!config_source.empty() && fs::exists(config_source)) inputs.push_back(config_source);
  std::function<void(const YAML::Node&)> walk = [&](const YAML::Node& node) {
    if (node.IsScalar()) {
      const std::string& value = node.Scalar();
      boost::system::error_code error;
      if (!value.empty() && value.size() < 4096 && value.find('\n') == std::string::npos &&
          fs::exists(value, error)) {
        inputs.push_back(value);
      }
    } else if (node.IsSequence()) {
      for (const auto& item : node) walk(item);
    } else if (node.IsMap()) {
      for (const auto& kv : node) walk(kv.second);
    }
  };
  try {
    walk(YAML::Load(resolved_yaml));
  } catch (const YAML::Exception&) {
    // the config was parsed before; nothing more to find
  }
  return inputs;
}

RunDirectoryLock::RunDirectoryLock(const std::string& directory) {
  const std::string path = directory + "/run.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error(path + ": cannot open the run's lock file: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char buffer[64] = {0};
    const ssize_t n = ::pread(fd_, buffer, sizeof buffer - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (error != EWOULDBLOCK) throw std::runtime_error(path + ": cannot lock: " + std::strerror(error));
    std::string holder = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    throw std::invalid_argument(directory + ": the run is in use by another process (pid " +
                                (holder.empty() ? std::string("unknown") : holder) +
                                "); wait for it to end or stop it first");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    throw std::runtime_error(path + ": cannot write the lock file: " + std::strerror(error));
  }
}

RunDirectoryLock::~RunDirectoryLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock; the file stays (removing it would race)
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
