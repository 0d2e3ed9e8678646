#pragma once
// Sampling several responses per prompt from a model, as token ids or decoded to text: what
// `prefengine generate`, the pairs stage, the ppo stage's rollouts and evaluation by generation
// share. Generation is the engine's (engine/generation/generator.h: batched, left-padded, the
// model's KV cache).
//
// The options: engine/loop/sampling_options.h.
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <nlohmann/json.hpp>

#include "engine/data/records.h"
#include "engine/generation/generator.h"
#include "engine/loop/sampling_options.h"
#include "prefengine/plugin_options.h"

namespace prefengine {

class Model;
class Tokenizer;

// The generator's options for `options`, validated (std::invalid_argument naming the field).
GenerationOptions generation_options(const SamplingOptions& options, int64_t eos_id, int64_t pad_id);

struct Sample {
  std::vector<int64_t> tokens;  // the generated ids (EOS included when the sample stopped there)
  std::string text;             // decoded; invalid UTF-8 replaced by U+FFFD
  bool stopped = false;         // ended with EOS (else cut at max_new_tokens)
};

// The generated ids of every prompt, options.n samples each: out[p * n + s] (EOS included when
// the row stopped there). options.batch_size prompts (each n times, left-padded with pad_id) go
// through one generate() call, in order, each drawing from `generator`: the same prompts, options
// and generator state give the same samples. A row stops at eos_id (-1: never). The model is run
// as it is (its training mode unchanged). std::invalid_argument naming the prompt's source when a
// prompt has no tokens.
std::vector<std::vector<int64_t>> sample_completions(Model& model, const std::vector<const PromptRecord*>& prompts,
                                                     const SamplingOptions& options, int64_t eos_id, int64_t pad_id,
                                                     at::Generator& generator);

// samples[p][s]: sample s of prompt p. Draws from `generator` (the default CPU generator for
// runs, so that a checkpoint's generator state resumes sampling exactly).
std::vector<std::vector<Sample>> sample_responses_text(Model& model, const Tokenizer& tokenizer,
                                                      const std::vector<const PromptRecord*>& prompts,
                                                      const SamplingOptions& options, at::Generator& generator);

// `text` with every invalid UTF-8 sequence replaced by U+FFFD (graders and JSON need valid text).
std::string valid_utf8(const std::string& text);

}  // namespace prefengine
