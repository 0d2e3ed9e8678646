#pragma once
// Autoregressive generation for any prefengine::Model: greedy or sampled (temperature, top-k,
// top-p), batched over left-padded prompts, stopping at EOS. Uses the model's KV cache when
// new_cache() returns one, and recomputes the whole sequence at every step otherwise.
#include <cstdint>
#include <optional>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "prefengine/model.h"

namespace prefengine::plugins::model {

struct GenerationOptions {
  int64_t max_new_tokens = 32;  // most tokens generated per row (>= 1)
  double temperature = 0.0;     // softmax temperature; 0 = greedy (argmax)
  int64_t top_k = 0;            // sample among the k most likely tokens; 0 = no limit
  double top_p = 1.0;           // nucleus: smallest set with this much probability; 1 = no limit
  int64_t eos_id = -1;          // a row stops after emitting this token; -1 = never
  int64_t pad_id = 0;           // written after a row has stopped (its mask is 0 there)
  bool use_cache = true;        // false forces full recomputation even when the model has a cache
  uint64_t seed = 0;            // seeds sampling when no generator is passed

  // Throws std::invalid_argument naming the field and the bad value.
  void validate() const;
};

struct GenerationResult {
  at::Tensor sequences;        // [B, T + N] int64: the prompts as given, then the generated tokens
  at::Tensor attention_mask;   // [B, T + N] int64: the prompt mask, then 1 up to and including EOS
  at::Tensor completions;      // [B, N] int64: generated tokens, pad_id after a row stopped
  at::Tensor completion_mask;  // [B, N] int64: 1 for generated tokens (EOS included)
};

// input_ids [B, T] int64, left-padded; attention_mask [B, T] (undefined = all 1). The last
// column must be a real token in every row (right padding is an error). N <= max_new_tokens is
// the number of steps until every row stopped. Runs without gradients; sampling draws from
// `generator` when given (a CPU generator), else from one seeded with options.seed.
GenerationResult generate(Model& model, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask, const GenerationOptions& options,
                          std::optional<at::Generator> generator = std::nullopt);

// One sampling step: [B, V] logits -> [B] int64 token ids (greedy when temperature is 0).
at::Tensor sample_next_token(const at::Tensor& logits, const GenerationOptions& options,
                             at::Generator& generator);

}  // namespace prefengine::plugins::model
