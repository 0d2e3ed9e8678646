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

// A metrics row without its timing fields (keys with "time" or "second"): what two runs of the
// same work must agree on.
inline nlohmann::json without_timing(nlohmann::json row) {
  for (auto it = row.begin(); it != row.end();) {
    const std::string& key = it.key();
    if (key.find("time") != std::string::npos || key.find("second") != std::string::npos) {
      it = row.erase(it);
    } else {
      ++it;
    }
  }
  return row;
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

#ifdef PREFENGINE_CLI
// Runs the prefengine executable with `args`, stderr into the output; `env` ("A=1 B=2") before it.
inline CommandResult run_cli(const std::string& args, const std::string& env = "") {
  return run_shell((env.empty() ? "" : env + " ") + std::string(PREFENGINE_CLI) + " " + args + " 2>&1");
}
#endif

// An experiment's header for a tiny transformer over bytes (the byte tokenizer), without its
// stages: text data, generation and checkpoints of a language model in seconds.
inline std::string tiny_lm_yaml(int hidden_size = 32, int max_positions = 128) {
  return "name: tiny-lm\nseed: 3\nthreads: 1\ntokenizer: {kind: byte}\n"
         "model: {plugin: transformer, vocab_size: 259, hidden_size: " + std::to_string(hidden_size) +
         ", intermediate_size: " + std::to_string(2 * hidden_size) + ", num_hidden_layers: 1,\n"
         "        num_attention_heads: 2, max_position_embeddings: " + std::to_string(max_positions) + "}\n";
}

// Toy SFT (30 steps) then DPO (40 steps, SGD), both global batches even so that they split over
// 2 ranks: the run the data-parallel and signal tests start, stop and compare.
inline std::string toy_sft_dpo_yaml(const std::string& name) {
  return "name: " + name + R"(
seed: 3
threads: 1
model: {plugin: toy_mlp, hidden: 16}
distributed: {timeout_s: 60, bucket_mb: 0.001}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2}, batch_size: 4, steps: 30, log_every: 5}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     optimizer: {name: sgd, lr: 0.5}, batch_size: 8, grad_accum: 2, steps: 40, log_every: 5}
)";
}

inline std::string source_path(const std::string& relative) {
  return std::string(PREFENGINE_SOURCE_DIR) + "/" + relative;
}

}  // namespace prefengine::testing
