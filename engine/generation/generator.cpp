#include "engine/generation/generator.h"

#include <algorithm>
#include <fstream>
#include <limits>
#include <sstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

namespace prefengine {

void GenerationOptions::validate() const {
  auto fail = [](const std::string& field, const std::string& what, const std::string& value) {
    throw std::invalid_argument("generation: " + field + " must be " + what + ", got " + value);
  };
  if (max_new_tokens < 1) fail("max_new_tokens", ">= 1", std::to_string(max_new_tokens));
  if (!(temperature >= 0)) fail("temperature", ">= 0", std::to_string(temperature));
  if (top_k < 0) fail("top_k", ">= 0", std::to_string(top_k));
  if (!(top_p > 0 && top_p <= 1)) fail("top_p", "in (0, 1]", std::to_string(top_p));
  if (pad_id < 0) fail("pad_id", ">= 0", std::to_string(pad_id));
}

double generation_memory_bytes(const Model& model, int64_t rows, int64_t prompt_length, int64_t max_new_tokens) {
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  double kv_per_token = 0;
  for (const auto& item : model.named_parameters(true)) {
    if ((ends_with(item.key(), "k_proj.weight") || ends_with(item.key(), "v_proj.weight")) && item.value().dim() >= 1) {
      kv_per_token += static_cast<double>(item.value().size(0)) * static_cast<double>(item.value().element_size());
    }
  }
  const double per_token = kv_per_token + 4.0 * static_cast<double>(model.vocab_size()) + 32.0;
  return static_cast<double>(rows) * (static_cast<double>(prompt_length) + static_cast<double>(max_new_tokens)) *
         per_token;
}

double available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    double kib = -1;
    if (fields >> kib) return kib * 1024.0;
  }
  return -1;
}

at::Tensor sample_next_token(const at::Tensor& logits, const GenerationOptions& options,
                             at::Generator& generator) {
  at::Tensor scores = logits.to(at::kCPU, at::kFloat);
  if (options.temperature == 0.0) return scores.argmax(-1);
  scores = scores / options.temperature;
  const int64_t v = scores.size(-1);
  const float minus_inf = -std::numeric_limits<float>::infinity();
  if (options.top_k > 0 && options.top_k < v) {
    const at::Tensor kth = std::get<0>(scores.topk(options.top_k, -1)).narrow(-1, options.top_k - 1, 1);
    scores = scores.masked_fill(scores.lt(kth), minus_inf);
  }
  if (options.top_p < 1.0) {
    auto sorted = scores.sort(-1, /*descending=*/true);
    const at::Tensor sorted_scores = std::get<0>(sorted);
    const at::Tensor order = std::get<1>(sorted);
    const at::Tensor probs = at::softmax(sorted_scores, -1);
    // Drop a token when the tokens ranked above it already hold top_p; the first always stays.
    const at::Tensor drop_sorted = (probs.cumsum(-1) - probs).gt(options.top_p);
    const at::Tensor drop = at::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    scores = scores.masked_fill(drop, minus_inf);
  }
  const at::Tensor probs = at::softmax(scores, -1);
  return at::multinomial(probs, 1, /*replacement=*/false, generator).squeeze(-1);
}

GenerationResult generate(Model& model, const at::Tensor& input_ids,
                          const at::Tensor& attention_mask, const GenerationOptions& options,
                          std::optional<at::Generator> generator) {
  options.validate();
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(0) < 1 || input_ids.size(1) < 1) {
    throw std::invalid_argument("generate: input_ids must be a non-empty [B, T] tensor");
  }
  const int64_t b = input_ids.size(0);
  const int64_t t = input_ids.size(1);
  const at::Tensor ids = input_ids.to(at::kLong);
  const at::Tensor mask = attention_mask.defined() ? attention_mask.to(ids.device(), at::kLong)
                                                   : at::ones_like(ids);
  if (mask.sizes() != ids.sizes()) {
    throw std::invalid_argument("generate: attention_mask must have the shape of input_ids");
  }
  if (!mask.select(1, t - 1).ne(0).all().item<bool>()) {
    throw std::invalid_argument(
        "generate: the last column of every prompt must be a real token (use left padding)");
  }
  at::Generator gen = generator ? *generator : at::detail::createCPUGenerator(options.seed);

  std::vector<at::Tensor> tokens;
  std::vector<at::Tensor> token_masks;
  {
    // No autograd at all while generating (InferenceMode also skips the autograd and view
    // bookkeeping of every operation); the results are built after this scope, as normal tensors.
    c10::InferenceMode inference;
    std::unique_ptr<KvCache> cache;
    if (options.use_cache) cache = model.new_cache(b, t + options.max_new_tokens);

    const bool can_stop = options.eos_id >= 0;
    bool all_live = true;  // no row has stopped (kept on the host: no sync while no row can stop)
    const at::Tensor all_ones = at::ones({b}, at::kLong);
    at::Tensor sequence = ids;
    at::Tensor sequence_mask = mask;
    at::Tensor done = at::zeros({b}, at::TensorOptions().dtype(at::kBool));
    at::Tensor step_ids = ids;
    at::Tensor step_mask = mask;
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      // Rows still generating; all of them until the first EOS.
      const at::Tensor live_rows = all_live ? at::Tensor() : done.logical_not().nonzero().squeeze(1);
      ModelInput in;
      if (cache) {
        // The cache holds every row: stopped rows are fed pad tokens with mask 0.
        in.input_ids = step_ids;
        in.attention_mask = step_mask;
        in.cache = cache.get();
      } else if (all_live) {
        in.input_ids = sequence;
        in.attention_mask = sequence_mask;
      } else {
        const at::Tensor rows = live_rows.to(ids.device());
        in.input_ids = sequence.index_select(0, rows);
        in.attention_mask = sequence_mask.index_select(0, rows);
      }
      const ModelOutput out = model.forward(in);
      at::Tensor last = out.logits.select(1, out.logits.size(1) - 1);
      if (cache && !all_live) last = last.index_select(0, live_rows.to(last.device()));
      const at::Tensor sampled = sample_next_token(last, options, gen);
      at::Tensor next = sampled;
      if (!all_live) {
        next = at::full({b}, options.pad_id, at::kLong);
        next.index_copy_(0, live_rows, sampled);
      }
      // 1 for the rows live before this step (a row's EOS is part of its completion).
      const at::Tensor next_mask = all_live ? all_ones : done.logical_not().to(at::kLong);
      if (can_stop) done = done | (next.eq(options.eos_id) & next_mask.to(at::kBool));
      tokens.push_back(next);
      token_masks.push_back(next_mask);
      step_ids = next.unsqueeze(1).to(ids.device());
      step_mask = next_mask.unsqueeze(1).to(ids.device());
      if (!cache) {
        sequence = at::cat({sequence, step_ids}, 1);
        sequence_mask = at::cat({sequence_mask, step_mask}, 1);
      }
      if (can_stop) {
        const int64_t stopped = done.sum().item<int64_t>();
        if (stopped == b) break;
        all_live = stopped == 0;
      }
    }
  }
  GenerationResult result;
  result.completions = at::stack(tokens, 1).to(ids.device());
  result.completion_mask = at::stack(token_masks, 1).to(ids.device());
  result.sequences = at::cat({ids, result.completions}, 1);
  result.attention_mask = at::cat({mask, result.completion_mask}, 1);
  return result;
}

PromptBatch left_pad_prompts(const std::vector<const std::vector<int64_t>*>& prompts, int64_t pad_id) {
  int64_t width = 1;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i]->empty()) {
      throw std::invalid_argument("generate: prompt " + std::to_string(i) + " has no tokens");
    }
    width = std::max<int64_t>(width, static_cast<int64_t>(prompts[i]->size()));
  }
  const int64_t rows = static_cast<int64_t>(prompts.size());
  PromptBatch batch;
  batch.input_ids = at::full({rows, width}, pad_id, at::kLong);
  batch.attention_mask = at::zeros({rows, width}, at::kLong);
  auto ids = batch.input_ids.accessor<int64_t, 2>();
  auto mask = batch.attention_mask.accessor<int64_t, 2>();
  for (int64_t row = 0; row < rows; ++row) {
    const std::vector<int64_t>& prompt = *prompts[row];
    const int64_t offset = width - static_cast<int64_t>(prompt.size());
    for (size_t t = 0; t < prompt.size(); ++t) {
      ids[row][offset + static_cast<int64_t>(t)] = prompt[t];
      mask[row][offset + static_cast<int64_t>(t)] = 1;
    }
  }
  return batch;
}

std::vector<std::vector<int64_t>> completion_tokens(const GenerationResult& result) {
  const at::Tensor tokens = result.completions.to(at::kCPU).contiguous();
  const at::Tensor mask = result.completion_mask.to(at::kCPU).contiguous();
  auto tokens_a = tokens.accessor<int64_t, 2>();
  auto mask_a = mask.accessor<int64_t, 2>();
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(tokens.size(0)));
  for (int64_t row = 0; row < tokens.size(0); ++row) {
    for (int64_t t = 0; t < tokens.size(1); ++t) {
      if (mask_a[row][t] != 0) out[static_cast<size_t>(row)].push_back(tokens_a[row][t]);
    }
  }
  return out;
}

}  // namespace prefengine
