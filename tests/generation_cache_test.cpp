// The transformer's fast KV-cache path (TransformerModel::forward_cached: CPU, float, no
// gradients): with the fused one-token step off (fused_decode: false), bit for bit the same logits
// as the general cached forward (the code every cached forward ran before; it still runs when
// gradients are on); with it on (decode_step.h), the same logits within rounding and the same
// greedy ids, and not taken where it does not apply (LoRA); per-token log-probs of generated text
// equal to one full forward over the whole sequence, a left-padded batch generating what each row
// generates alone, sgemv for single wide rows within rounding of sgemm, and the rotary table against
// the closed-form cos/sin (default, linear and llama3 scaling).
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "engine/generation/generator.h"
#include "prefengine/model.h"
#include "lora.h"
#include "transformer.h"
#include "transformer_test_util.h"

namespace prefengine {
namespace {

using plugins::model::TransformerConfig;
using plugins::model::TransformerModel;
using prefengine::testing::randomize;

at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  at::Tensor out = at::empty({int64_t(rows.size()), int64_t(rows[0].size())}, at::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) out[i][j] = rows[i][j];
  }
  return out;
}

TransformerConfig config(const std::string& type) {
  TransformerConfig c;
  c.vocab_size = 37;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  c.model_type = type;
  c.attention_bias = type == "qwen2";
  if (type == "mistral") c.sliding_window = 4;  // shorter than the sequences below
  return c;
}

// Feeds `ids`/`mask` [B, T] through a cache: the first `prompt` columns at once, then one column a
// step; returns every step's logits [B, T, V] (the prompt's rows included), with or without
// gradient mode (gradient mode on takes the general path).
at::Tensor cached_logits(TransformerModel& model, const at::Tensor& ids, const at::Tensor& mask, int64_t prompt,
                         bool grad_mode_on, int64_t capacity) {
  at::AutoGradMode mode(grad_mode_on);
  auto cache = model.new_cache(ids.size(0), capacity);
  std::vector<at::Tensor> pieces;
  pieces.push_back(model.forward(ModelInput{ids.narrow(1, 0, prompt), mask.narrow(1, 0, prompt), true, false,
                                            cache.get()})
                       .logits.detach());
  for (int64_t i = prompt; i < ids.size(1); ++i) {
    pieces.push_back(
        model.forward(ModelInput{ids.narrow(1, i, 1), mask.narrow(1, i, 1), true, false, cache.get()}).logits.detach());
  }
  EXPECT_EQ(cache->length(), ids.size(1));
  return at::cat(pieces, 1);
}

// Three rows for the cache tests: left padding (row 0), none (row 1), and a row that stops (mask 0
// after its end, row 2).
at::Tensor padded_ids() {
  return ids_tensor({{0, 0, 4, 9, 2, 7, 1, 6, 30, 12, 5}, {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5}, {0, 8, 8, 2, 7, 0, 0, 0, 0, 0, 0}});
}
at::Tensor padded_mask() {
  return ids_tensor({{0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0}});
}

TEST(GenerationCacheTest, FastPathEqualsTheGeneralCachedForwardBitForBit) {
  // Left padding, a row that stops (mask 0 after its end), GQA; llama, qwen2 (q/k/v biases) and
  // mistral (a sliding window shorter than the sequence).
  const at::Tensor ids = padded_ids();
  const at::Tensor mask = padded_mask();
  for (const std::string type : {"llama", "qwen2", "mistral"}) {
    TransformerModel model(config(type));
    randomize(model, 21);
    model.set_fused_decode(false);
    // Capacity 6 makes both paths grow their buffers mid-way.
    const at::Tensor general = cached_logits(model, ids, mask, 4, true, 6);
    const at::Tensor fast = cached_logits(model, ids, mask, 4, false, 6);
    EXPECT_TRUE(fast.equal(general)) << type << ": max difference "
                                     << (fast - general).abs().max().item<double>();
    // The paths share one cache: the general prefill, then fast steps (positions recounted).
    auto cache = model.new_cache(3, 16);
    std::vector<at::Tensor> pieces;
    {
      at::AutoGradMode on(true);
      pieces.push_back(model.forward(ModelInput{ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), true, false, cache.get()})
                           .logits.detach());
    }
    at::NoGradGuard off;
    for (int64_t i = 4; i < ids.size(1); ++i) {
      pieces.push_back(model.forward(ModelInput{ids.narrow(1, i, 1), mask.narrow(1, i, 1), true, false, cache.get()}).logits);
    }
    EXPECT_TRUE(at::cat(pieces, 1).equal(general)) << type;
  }
}

// The largest |a - b| over the largest |b|.
double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

TEST(GenerationCacheTest, FusedDecodeStepEqualsTheGeneralCachedForwardWithinRounding) {
  // The inputs of the bit-for-bit test: left padding, a row that stops, GQA, q/k/v biases, a
  // sliding window shorter than the sequence, buffers growing mid-way; and the wide single rows.
  const at::Tensor ids = padded_ids();
  const at::Tensor mask = padded_mask();
  for (const std::string type : {"llama", "qwen2", "mistral"}) {
    TransformerModel model(config(type));
    randomize(model, 21);
    ASSERT_TRUE(model.fused_decode());
    const at::Tensor general = cached_logits(model, ids, mask, 4, true, 6);
    const at::Tensor fused = cached_logits(model, ids, mask, 4, false, 6);
    // The prompt goes through the operator path: the same bits; the one-token steps to rounding.
    EXPECT_TRUE(fused.narrow(1, 0, 4).equal(general.narrow(1, 0, 4))) << type;
    const at::Tensor steps = fused.narrow(1, 4, ids.size(1) - 4);
    EXPECT_FALSE(steps.equal(general.narrow(1, 4, ids.size(1) - 4))) << type << ": the fused step did not run";
    EXPECT_LT(relative_difference(fused, general), 1e-5) << type;
    // The rows that are real tokens choose the same next token.
    const at::Tensor real = mask.to(at::kBool);
    EXPECT_TRUE(fused.argmax(-1).masked_select(real).equal(general.argmax(-1).masked_select(real))) << type;
  }
  TransformerConfig c = config("llama");
  c.vocab_size = 1100;  // one row with 1024 or more outputs: the vocabulary and the MLP take sgemv
  c.intermediate_size = 1030;
  TransformerModel wide(c);
  randomize(wide, 23, 0.1);
  const at::Tensor row = ids_tensor({{17, 400, 3, 1099, 250, 7, 64, 900}});
  const at::Tensor general = cached_logits(wide, row, at::ones_like(row), 3, true, 8);
  const at::Tensor fused = cached_logits(wide, row, at::ones_like(row), 3, false, 8);
  EXPECT_LT(relative_difference(fused, general), 1e-5);
  EXPECT_TRUE(fused.argmax(-1).equal(general.argmax(-1)));
}

TEST(GenerationCacheTest, FusedAndOperatorDecodeGenerateTheSameIds) {
  // Greedy and sampled (the same generator draws), a left-padded batch and a single row.
  TransformerModel model(config("qwen2"));
  randomize(model, 24);
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 2}, {3, 1, 4, 1, 5, 9}, {7}};
  std::vector<const std::vector<int64_t>*> rows;
  for (const auto& p : prompts) rows.push_back(&p);
  const PromptBatch batch = left_pad_prompts(rows, 0);
  for (const double temperature : {0.0, 1.0}) {
    GenerationOptions options;
    options.max_new_tokens = 16;
    options.temperature = temperature;
    options.seed = 3;
    model.set_fused_decode(true);
    const at::Tensor fused = generate(model, batch.input_ids, batch.attention_mask, options).completions;
    const at::Tensor fused_row = generate(model, ids_tensor({prompts[1]}), at::Tensor(), options).completions;
    model.set_fused_decode(false);
    EXPECT_TRUE(fused.equal(generate(model, batch.input_ids, batch.attention_mask, options).completions))
        << "temperature " << temperature;
    EXPECT_TRUE(fused_row.equal(generate(model, ids_tensor({prompts[1]}), at::Tensor(), options).completions))
        << "temperature " << temperature;
  }
}

TEST(GenerationCacheTest, FusedDecodeStepIsNotTakenWithLoraAdapters) {
  // The fused step knows no adapters: with them the operator path runs (the same bits with the
  // option on and off), and the adapters do change the logits.
  TransformerModel model(config("llama"));
  plugins::model::LoraOptions lora;
  lora.rank = 2;
  lora.target_modules = {"q_proj", "v_proj", "down_proj"};
  model.enable_lora(lora);
  randomize(model, 25);  // the adapters' B too: not the identity
  const at::Tensor ids = ids_tensor({{3, 1, 4, 1, 5, 9, 2, 6}});
  const at::Tensor mask = at::ones_like(ids);
  const at::Tensor fused_on = cached_logits(model, ids, mask, 3, false, 8);
  model.set_fused_decode(false);
  EXPECT_TRUE(fused_on.equal(cached_logits(model, ids, mask, 3, false, 8)));
  model.set_adapters_enabled(false);
  EXPECT_GT(relative_difference(cached_logits(model, ids, mask, 3, false, 8), fused_on), 1e-3);
}

TEST(GenerationCacheTest, GeneratedLogProbsEqualAFullForwardAndPaddedRowsEqualRowsAlone) {
  TransformerModel model(config("llama"));
  randomize(model, 22);
  const std::vector<std::vector<int64_t>> prompts = {{5, 9, 2}, {3, 1, 4, 1, 5, 9}, {7}};
  std::vector<const std::vector<int64_t>*> rows;
  for (const auto& p : prompts) rows.push_back(&p);
  const PromptBatch batch = left_pad_prompts(rows, 0);
  const int64_t n = 10;

  // Greedy by hand through the cache, keeping each chosen token's log-prob.
  at::NoGradGuard no_grad;
  auto cache = model.new_cache(3, 6 + n);
  at::Tensor logits = model.forward(ModelInput{batch.input_ids, batch.attention_mask, true, false, cache.get()}).logits;
  std::vector<at::Tensor> tokens, logps;
  for (int64_t step = 0; step < n; ++step) {
    const at::Tensor last = at::log_softmax(logits.select(1, logits.size(1) - 1).to(at::kDouble), -1);
    const at::Tensor next = last.argmax(-1);
    tokens.push_back(next);
    logps.push_back(last.gather(1, next.unsqueeze(1)).squeeze(1));
    logits = model.forward(ModelInput{next.unsqueeze(1), at::ones({3, 1}, at::kLong), true, false, cache.get()}).logits;
  }
  const at::Tensor generated = at::stack(tokens, 1);  // [3, n]
  // The generator gives the same tokens.
  GenerationOptions options;
  options.max_new_tokens = n;
  EXPECT_TRUE(generate(model, batch.input_ids, batch.attention_mask, options).completions.equal(generated));

  // One full forward (no cache) over prompt + completion: the log-probs of the generated tokens.
  const at::Tensor sequence = at::cat({batch.input_ids, generated}, 1);
  const at::Tensor sequence_mask = at::cat({batch.attention_mask, at::ones({3, n}, at::kLong)}, 1);
  const at::Tensor full =
      at::log_softmax(model.forward(ModelInput{sequence, sequence_mask, true, false, nullptr}).logits.to(at::kDouble), -1);
  const at::Tensor full_logps = full.narrow(1, 5, n).gather(2, generated.unsqueeze(2)).squeeze(2);
  EXPECT_LT((full_logps - at::stack(logps, 1)).abs().max().item<double>(), 1e-5);

  // Each row alone (no padding, batch 1) generates what it generated in the padded batch.
  for (size_t r = 0; r < prompts.size(); ++r) {
    const at::Tensor alone = generate(model, ids_tensor({prompts[r]}), at::Tensor(), options).completions;
    EXPECT_TRUE(alone[0].equal(generated[int64_t(r)])) << "row " << r;
  }
}

TEST(GenerationCacheTest, SingleWideRowsTakeSgemvWithinRounding) {
  // Outputs of 1024 or more (the MLP's gate/up and the vocabulary) take sgemv for one row.
  TransformerConfig c = config("llama");
  c.vocab_size = 1100;
  c.intermediate_size = 1030;
  TransformerModel model(c);
  randomize(model, 23, 0.1);
  const at::Tensor ids = ids_tensor({{17, 400, 3, 1099, 250, 7, 64, 900}});
  const at::Tensor mask = at::ones_like(ids);
  const at::Tensor general = cached_logits(model, ids, mask, 3, true, 8);
  const at::Tensor fast = cached_logits(model, ids, mask, 3, false, 8);
  const double scale = general.abs().max().item<double>();
  EXPECT_LT((fast - general).abs().max().item<double>(), 1e-5 * scale);
  // Greedy ids with the cache equal recomputation without it.
  GenerationOptions options;
  options.max_new_tokens = 12;
  const at::Tensor cached = generate(model, ids, mask, options).completions;
  options.use_cache = false;
  EXPECT_TRUE(cached.equal(generate(model, ids, mask, options).completions));
}

TEST(GenerationCacheTest, RotaryTableEqualsClosedFormCosAndSin) {
  struct Case {
    std::string type;
    double factor;
  };
  for (const Case& k : {Case{"", 1.0}, Case{"linear", 4.0}, Case{"llama3", 8.0}}) {
    TransformerConfig c = config("llama");
    c.hidden_size = 64;  // head size 16: eight frequencies
    c.rope_theta = 500000.0;
    c.rope_scaling_type = k.type;
    c.rope_scaling_factor = k.factor;
    c.rope_original_max_position = 8192;
    TransformerModel model(c);
    const int64_t d = 16;
    // The inverse frequencies by hand, in double (transformers' _compute_llama3_parameters).
    std::vector<double> freq;
    for (int64_t i = 0; i < d / 2; ++i) {
      const double f = std::pow(500000.0, -2.0 * double(i) / double(d));
      if (k.type == "linear") {
        freq.push_back(f / k.factor);
      } else if (k.type == "llama3") {
        const double wavelen = 2 * M_PI / f;
        if (wavelen < 8192.0 / 4.0) {
          freq.push_back(f);
        } else if (wavelen > 8192.0) {
          freq.push_back(f / k.factor);
        } else {
          const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
          freq.push_back((1 - smooth) * f / k.factor + smooth * f);
        }
      } else {
        freq.push_back(f);
      }
    }
    const auto small = model.rotary_table(10);
    ASSERT_GE(small.first.size(0), 10);
    const auto [cos, sin] = model.rotary_table(3000);  // grows
    ASSERT_GE(cos.size(0), 3000);
    ASSERT_EQ(cos.size(1), d);
    EXPECT_EQ(cos.scalar_type(), at::kFloat);
    for (int64_t p : {0, 1, 7, 100, 2999}) {
      // float position times the float frequency, rounded: an angle error of ~1.2e-7 of the angle
      const double tolerance = 1e-6 + 3e-7 * double(p);
      for (int64_t i = 0; i < d; ++i) {
        const double angle = double(p) * freq[size_t(i % (d / 2))];
        EXPECT_NEAR(cos[p][i].item<double>(), std::cos(angle), tolerance) << k.type << " p " << p << " i " << i;
        EXPECT_NEAR(sin[p][i].item<double>(), std::sin(angle), tolerance) << k.type << " p " << p << " i " << i;
      }
    }
  }
}

}  // namespace
}  // namespace prefengine
