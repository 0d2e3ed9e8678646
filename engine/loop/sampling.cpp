#include "engine/loop/sampling.h"

#include <ATen/ATen.h>

#include "engine/data/tokenizer.h"
#include "prefengine/model.h"

namespace prefengine {

SamplingOptions SamplingOptions::read(PluginOptions& o, const std::string& prefix) {
  SamplingOptions s;
  s.n = o.get_int(prefix + ".n", s.n, 1, 1 << 16);
  s.max_new_tokens = o.get_int(prefix + ".max_new_tokens", s.max_new_tokens, 1, 1 << 20);
  s.temperature = o.get_double(prefix + ".temperature", s.temperature, 0, 1e6);
  s.top_k = o.get_int(prefix + ".top_k", s.top_k, 0);
  s.top_p = o.get_double(prefix + ".top_p", s.top_p, 0, 1, /*min_exclusive=*/true);
  s.batch_size = o.get_int(prefix + ".batch_size", s.batch_size, 1, 1 << 16);
  return s;
}

nlohmann::json SamplingOptions::to_json() const {
  return {{"n", n}, {"max_new_tokens", max_new_tokens}, {"temperature", temperature}, {"top_k", top_k},
          {"top_p", top_p}};
}

GenerationOptions generation_options(const SamplingOptions& options, int64_t eos_id, int64_t pad_id) {
  GenerationOptions gen;
  gen.max_new_tokens = options.max_new_tokens;
  gen.temperature = options.temperature;
  gen.top_k = options.top_k;
  gen.top_p = options.top_p;
  gen.eos_id = eos_id;
  gen.pad_id = pad_id;
  gen.validate();
  return gen;
}

std::vector<std::vector<int64_t>> sample_completions(Model& model, const std::vector<const PromptRecord*>& prompts,
                                                     const SamplingOptions& options, int64_t eos_id, int64_t pad_id,
                                                     at::Generator& generator) {
  const GenerationOptions gen = generation_options(options, eos_id, pad_id);
  const size_t n = static_cast<size_t>(options.n);
  const size_t per_batch = static_cast<size_t>(options.batch_size);
  std::vector<std::vector<int64_t>> out;
  out.reserve(prompts.size() * n);
  for (size_t first = 0; first < prompts.size(); first += per_batch) {
    const size_t last = std::min(prompts.size(), first + per_batch);
    // Each prompt n times, left-padded: every row's last column is its last prompt token.
    std::vector<const std::vector<int64_t>*> rows;
    for (size_t p = first; p < last; ++p) {
      if (prompts[p]->prompt.empty()) throw std::invalid_argument(prompts[p]->source + ": the prompt has no tokens");
      for (size_t s = 0; s < n; ++s) rows.push_back(&prompts[p]->prompt);
    }
    const PromptBatch batch = left_pad_prompts(rows, gen.pad_id);
    for (auto& completion : completion_tokens(generate(model, batch.input_ids, batch.attention_mask, gen, generator))) {
      out.push_back(std::move(completion));
    }
  }
  return out;
}

std::vector<std::vector<Sample>> sample_responses_text(Model& model, const Tokenizer& tokenizer,
                                                      const std::vector<const PromptRecord*>& prompts,
                                                      const SamplingOptions& options, at::Generator& generator) {
  const bool was_training = model.is_training();
  model.eval();
  std::vector<std::vector<int64_t>> completions =
      sample_completions(model, prompts, options, tokenizer.eos_id(),
                         tokenizer.pad_id() >= 0 ? tokenizer.pad_id() : 0, generator);
  std::vector<std::vector<Sample>> out(prompts.size());
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (int64_t s = 0; s < options.n; ++s) {
      Sample sample;
      sample.tokens = std::move(completions[p * static_cast<size_t>(options.n) + static_cast<size_t>(s)]);
      sample.stopped = !sample.tokens.empty() && sample.tokens.back() == tokenizer.eos_id();
      sample.text = valid_utf8(tokenizer.decode(sample.tokens));
      out[p].push_back(std::move(sample));
    }
  }
  if (was_training) model.train();
  return out;
}

std::string valid_utf8(const std::string& text) {
  static const char kReplacement[] = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    size_t len = 0;
    uint32_t min = 0;
    if (c < 0x80) len = 1;
    else if (c >= 0xC2 && c <= 0xDF) len = 2, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, min = 0x10000;
    bool ok = len > 0 && i + len <= n;
    uint32_t code = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; ok && k < len; ++k) {
      ok = (s[i + k] & 0xC0) == 0x80;
      code = (code << 6) | (s[i + k] & 0x3F);
    }
    ok = ok && (len == 1 || (code >= min && code <= 0x10FFFF && !(code >= 0xD800 && code <= 0xDFFF)));
    if (ok) {
      out.append(text, i, len);
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

}  // namespace prefengine
