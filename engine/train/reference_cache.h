#pragma once
// Reference log-probs cached on disk: a pairwise stage's frozen-copy log-probs depend only on the
// model (plugin, options, weights at stage start), the data file and how it was tokenized, so a
// later run with the same inputs loads them instead of building a reference model.
//
// Enabled by the experiment-level `reference_cache: DIR` (off when empty; a leading "~/" is the
// home directory, e.g. ~/.cache/prefengine/refs). Files are DIR/<key>.pt, written atomically.
#include <optional>
#include <string>

#include <ATen/core/Tensor.h>

#include "engine/config/experiment_config.h"

namespace prefengine {

class Model;

// 16 hex digits: a hash of the model plugin and options, a checksum of every parameter and buffer
// of `model` now, the data file's path, size and modification time, the tokenizer and chat
// template, and the stage's truncation settings.
std::string reference_cache_key(const ExperimentConfig& config, const StageOptions& stage, const Model& model);

// The cache directory (with "~/" expanded); empty when caching is off.
std::string reference_cache_directory(const ExperimentConfig& config);

// Throws std::invalid_argument "<config source>: reference_cache: '<dir>' ..." when the directory
// could not be used to store entries: it exists and is not a writable directory, or it does not
// exist and its nearest existing ancestor is not a writable directory. Nothing is created.
// `prefengine validate` calls it so that a run does not fail after computing the reference.
void check_reference_cache_directory(const ExperimentConfig& config);

// The cached log-probs for `key` when present with `rows` entries; nullopt otherwise.
std::optional<at::Tensor> load_cached_reference(const std::string& directory, const std::string& key, int64_t rows);
void store_cached_reference(const std::string& directory, const std::string& key, const at::Tensor& logps);

}  // namespace prefengine
