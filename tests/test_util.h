#pragma once
// Small helpers shared by the tests: temporary directories and files, metrics files.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

namespace prefengine::testing {

inline std::string make_temp_dir(const std::string& tag) {
  namespace fs = boost::filesystem;
  fs::path dir = fs::temp_directory_path() / fs::unique_path("prefengine-" + tag + "-%%%%%%%%");
  fs::create_directories(dir);
  return dir.string();
}

inline std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline std::vector<nlohmann::json> read_metrics(const std::string& run_dir, const std::string& stage = "") {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto row = nlohmann::json::parse(line);
    if (stage.empty() || row["stage"] == stage) rows.push_back(row);
  }
  return rows;
}

// Runs a shell command; its exit status (128 + the signal when one ended it) and its stdout
// (append 2>&1 to the command for stderr too).
struct CommandResult {
  int code;
  std::string output;
};
inline CommandResult run_shell(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer{};
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), output};
}

inline std::string source_path(const std::string& relative) {
  return std::string(PREFENGINE_SOURCE_DIR) + "/" + relative;
}

}  // namespace prefengine::testing
