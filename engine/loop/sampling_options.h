#pragma once
// How responses are sampled (a `sampling:` block): shared by the pairs stage, evaluation by
// generation (`eval.sampling`) and `prefengine generate`. Light on purpose (no ATen): the
// experiment config holds it.
//
//   sampling: {n: 4, max_new_tokens: 64, temperature: 1.0, top_k: 0, top_p: 1.0, batch_size: 8}
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "prefengine/plugin_options.h"

namespace prefengine {

struct SamplingOptions {
  int64_t n = 1;                // samples per prompt
  int64_t max_new_tokens = 64;  // most tokens a sample has
  double temperature = 1.0;     // 0 = greedy
  int64_t top_k = 0;            // 0 = no limit
  double top_p = 1.0;           // 1 = no limit
  int64_t batch_size = 8;       // prompts per generation batch (each n times)

  // Reads `prefix.n`, `prefix.max_new_tokens`, ... from `o` (each optional), range-checked.
  static SamplingOptions read(PluginOptions& o, const std::string& prefix);
  nlohmann::json to_json() const;
};

}  // namespace prefengine
