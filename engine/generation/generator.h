#pragma once
// The engine's token generator, for any prefengine::Model: greedy or sampled (temperature, top-k,
// top-p), batched over left-padded prompts, stopping a row at EOS. It uses the model's KV cache
// when new_cache() returns one and recomputes the whole sequence at every step otherwise.
// `prefengine generate` and the PPO stage's rollouts both sample through it.
#include <cstdint>
#include <optional>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "prefengine/model.h"

namespace prefengine {

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
// the number of steps until every row stopped. Runs without gradients. Sampling draws from
// `generator` when given (a CPU generator: logits are moved to the CPU to sample), else from a
// new one seeded with options.seed.
//
// Each step samples the rows that have not stopped, and only those: one at::multinomial call on
// their [live rows, V] probabilities. Without a cache, the model also runs on those rows only.
GenerationResult generate(Model& model, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask, const GenerationOptions& options,
                          std::optional<at::Generator> generator = std::nullopt);

// One sampling step: [B, V] logits -> [B] int64 token ids on the CPU (greedy when temperature is
// 0). Sampling is at::multinomial(softmax(filtered logits / temperature), 1) with `generator`.
at::Tensor sample_next_token(const at::Tensor& logits, const GenerationOptions& options,
                             at::Generator& generator);

// Left-padded prompts for generate(): input_ids [B, T] (pad_id in the padding) and
// attention_mask [B, T], T the longest prompt. Throws std::invalid_argument on an empty prompt.
struct PromptBatch {
  at::Tensor input_ids;
  at::Tensor attention_mask;
};
PromptBatch left_pad_prompts(const std::vector<const std::vector<int64_t>*>& prompts, int64_t pad_id);

// An upper estimate of the bytes generate() holds for `rows` rows of `prompt_length` prompt tokens
// plus `max_new_tokens`, per token of every row: the KV cache (the output widths of every
// parameter named "*k_proj.weight" / "*v_proj.weight", in their element size: the Llama/HF layout;
// 0 for a model without such projections), float32 logits over the vocabulary (a model without a
// cache recomputes them for the whole sequence) and 32 bytes of token/mask bookkeeping. Computed
// in double so that absurd sizes do not overflow. Allocates nothing.
double generation_memory_bytes(const Model& model, int64_t rows, int64_t prompt_length, int64_t max_new_tokens);

// MemAvailable from /proc/meminfo in bytes; -1 when it cannot be read.
double available_memory_bytes();

// The generated tokens of each row (those with completion_mask 1, EOS included), as host vectors.
std::vector<std::vector<int64_t>> completion_tokens(const GenerationResult& result);

}  // namespace prefengine
