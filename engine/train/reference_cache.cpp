#include "engine/train/reference_cache.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include <unistd.h>

#include <ATen/ATen.h>
#include <boost/filesystem.hpp>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <spdlog/spdlog.h>

#include "engine/metrics/error_line.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

// FNV-1a, 64 bits: stable across runs and builds (std::hash is not).
class Fnv1a {
 public:
  void add(const void* data, size_t size) {
    const auto* bytes = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < size; ++i) {
      hash_ ^= bytes[i];
      hash_ *= 1099511628211ULL;
    }
  }
  void add(const std::string& text) {
    add(text.data(), text.size());
    add("\n", 1);
  }
  void add_tensor(const at::Tensor& tensor) {
    const at::Tensor t = tensor.detach().contiguous().cpu();
    add(t.data_ptr(), t.numel() * t.element_size());
    add(std::string(c10::toString(t.scalar_type())));
  }
  std::string hex() const {
    char text[17];
    std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash_));
    return text;
  }

 private:
  uint64_t hash_ = 14695981039346656037ULL;
};

}  // namespace

std::string reference_cache_key(const ExperimentConfig& config, const StageOptions& stage, const Model& model) {
  Fnv1a h;
  h.add("prefengine reference log-probs v1");
  h.add("model " + config.model_plugin);
  for (const auto& [key, entry] : config.model.entries()) {
    std::string value = entry.scalar;
    for (const auto& item : entry.list) value += "," + item;
    h.add(key + "=" + value);
  }
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    h.add(item.key());
    h.add_tensor(item.value());
  }
  for (const auto& item : model.named_buffers(/*recurse=*/true)) {
    h.add(item.key());
    h.add_tensor(item.value());
  }
  const fs::path data(stage.data.path);
  h.add("data " + fs::absolute(data).string());
  h.add(std::to_string(fs::file_size(data)) + " " + std::to_string(fs::last_write_time(data)));
  h.add("max_records " + std::to_string(stage.data.max_records) + " max_prompt_length " +
        std::to_string(stage.data.max_prompt_length) + " max_length " + std::to_string(stage.data.max_length) +
        " max_completion_length " + std::to_string(stage.data.max_completion_length) + " skip_bad_rows " + std::to_string(stage.data.skip_bad_rows));
  if (config.has_tokenizer) {
    h.add("tokenizer " + config.tokenizer.kind + " " + config.tokenizer.path + " " + config.chat_template +
          (config.enable_thinking.has_value() ? (*config.enable_thinking ? " thinking" : " no-thinking") : ""));
    for (const auto& t : config.tokenizer.special_tokens) h.add(t);
    // The chat template and special tokens live in tokenizer_config.json next to the tokenizer.
    if (!config.tokenizer.path.empty()) {
      fs::path dir(config.tokenizer.path);
      if (!fs::is_directory(dir)) dir = dir.parent_path();
      const fs::path tokenizer_config = dir / "tokenizer_config.json";
      if (fs::exists(tokenizer_config)) {
        h.add("tokenizer_config " + std::to_string(fs::file_size(tokenizer_config)) + " " +
              std::to_string(fs::last_write_time(tokenizer_config)));
      }
    }
  }
  return h.hex();
}

std::string reference_cache_directory(const ExperimentConfig& config) {
  std::string dir = config.reference_cache;
  if (dir.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    dir = std::string(home != nullptr ? home : "") + dir.substr(1);
  }
  return dir;
}

void check_reference_cache_directory(const ExperimentConfig& config) {
  const std::string directory = reference_cache_directory(config);
  if (directory.empty()) return;
  const std::string where = config.source + ": reference_cache: '" + directory + "'";
  boost::system::error_code error;
  fs::path existing = fs::absolute(directory);
  while (!fs::exists(existing, error) && existing.has_parent_path()) existing = existing.parent_path();
  if (!fs::is_directory(existing, error)) {
    const std::string what = existing == fs::absolute(directory) ? "is not a directory"
                                                                 : "cannot be created: '" + existing.string() + "' is not a directory";
    throw std::invalid_argument(where + " " + what + " (expected a directory for the reference log-prob cache)");
  }
  if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    throw std::invalid_argument(where + ": '" + existing.string() + "' is not writable (expected a directory the cache can write)");
  }
}

std::optional<at::Tensor> load_cached_reference(const std::string& directory, const std::string& key, int64_t rows) {
  const fs::path path = fs::path(directory) / (key + ".pt");
  if (!fs::exists(path)) return std::nullopt;
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path.string());
  } catch (const std::exception& e) {  // a damaged cache entry is a miss: it is recomputed and replaced
    spdlog::warn("{}: unreadable reference cache entry, recomputing it: {}", path.string(), error_line(e));
    return std::nullopt;
  }
  at::Tensor logps;
  if (!archive.try_read("logps", logps) || logps.dim() != 1 || logps.size(0) != rows) return std::nullopt;
  return logps;
}

void store_cached_reference(const std::string& directory, const std::string& key, const at::Tensor& logps) {
  fs::create_directories(directory);
  const fs::path path = fs::path(directory) / (key + ".pt");
  const fs::path tmp = fs::unique_path(path.string() + ".%%%%%%.tmp");
  torch::serialize::OutputArchive archive;
  archive.write("logps", logps.detach().contiguous());
  archive.save_to(tmp.string());
  fs::rename(tmp, path);
}

}  // namespace prefengine
