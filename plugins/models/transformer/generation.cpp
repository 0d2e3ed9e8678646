#include "generation.h"

#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

namespace prefengine::plugins::model {

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
  if (!input_ids.defined() || input_ids.dim() != 2 || input_ids.size(1) < 1) {
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

  at::NoGradGuard no_grad;
  std::unique_ptr<KvCache> cache;
  if (options.use_cache) cache = model.new_cache(b, t + options.max_new_tokens);

  std::vector<at::Tensor> tokens;
  std::vector<at::Tensor> token_masks;
  at::Tensor sequence = ids;
  at::Tensor sequence_mask = mask;
  at::Tensor done = at::zeros({b}, at::TensorOptions().dtype(at::kBool));
  at::Tensor step_ids = ids;
  at::Tensor step_mask = mask;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    ModelInput in;
    in.input_ids = cache ? step_ids : sequence;
    in.attention_mask = cache ? step_mask : sequence_mask;
    in.cache = cache.get();
    const ModelOutput out = model.forward(in);
    const at::Tensor last = out.logits.select(1, out.logits.size(1) - 1);
    at::Tensor next = sample_next_token(last, options, gen);
    const at::Tensor live = done.logical_not();
    next = next.masked_fill(done, options.pad_id);
    const at::Tensor next_mask = live.to(at::kLong);
    if (options.eos_id >= 0) done = done | (next.eq(options.eos_id) & live);
    tokens.push_back(next);
    token_masks.push_back(next_mask);
    step_ids = next.unsqueeze(1).to(ids.device());
    step_mask = next_mask.unsqueeze(1).to(ids.device());
    if (!cache) {
      sequence = at::cat({sequence, step_ids}, 1);
      sequence_mask = at::cat({sequence_mask, step_mask}, 1);
    }
    if (done.all().item<bool>()) break;
  }
  GenerationResult result;
  result.completions = at::stack(tokens, 1).to(ids.device());
  result.completion_mask = at::stack(token_masks, 1).to(ids.device());
  result.sequences = at::cat({ids, result.completions}, 1);
  result.attention_mask = at::cat({mask, result.completion_mask}, 1);
  return result;
}

}  // namespace prefengine::plugins::model
