// The engine's generator (engine/generation/generator.h): golden tokens from a hand-made model
// whose greedy continuation is known (next token = last + 1), EOS, left padding, the KV cache
// against full recomputation (on that model and on the transformer plugin's core, which has a real
// cache), which rows each step samples, top-k/top-p, and option errors.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "engine/generation/generator.h"
#include "prefengine/model.h"
#include "transformer.h"
#include "transformer_test_util.h"

namespace prefengine {
namespace {

using prefengine::testing::randomize;

at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  at::Tensor out = at::empty({int64_t(rows.size()), int64_t(rows[0].size())}, at::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) out[i][j] = rows[i][j];
  }
  return out;
}

std::vector<int64_t> row_of(const at::Tensor& t, int64_t row) {
  std::vector<int64_t> out;
  for (int64_t j = 0; j < t.size(1); ++j) out.push_back(t[row][j].item<int64_t>());
  return out;
}

class CountingCache : public KvCache {
 public:
  int64_t length() const override { return length_; }
  int64_t length_ = 0;
};

// Scores token (x + 1) mod V `margin` logits above the others after token x (the others 0):
// greedy decoding continues every row by counting up. Records the shape of every forward's input.
class CountUpModel : public Model {
 public:
  CountUpModel(int64_t vocab, bool with_cache, double margin = 10.0)
      : vocab_(vocab), with_cache_(with_cache), margin_(margin) {}
  ModelOutput forward(const ModelInput& input) override {
    calls.push_back({input.input_ids.size(0), input.input_ids.size(1)});
    if (input.cache != nullptr) static_cast<CountingCache*>(input.cache)->length_ += input.input_ids.size(1);
    ModelOutput out;
    out.logits = at::one_hot((input.input_ids + 1).remainder(vocab_), vocab_).to(at::kFloat) * margin_;
    return out;
  }
  int64_t vocab_size() const override { return vocab_; }
  std::unique_ptr<KvCache> new_cache(int64_t, int64_t) override {
    if (!with_cache_) return nullptr;
    return std::make_unique<CountingCache>();
  }
  std::vector<std::vector<int64_t>> calls;  // [rows, columns] of each forward

 private:
  int64_t vocab_;
  bool with_cache_;
  double margin_;
};

TEST(GenerationTest, GreedyCountsUpFromLeftPaddedPromptsWithAndWithoutCache) {
  const std::vector<int64_t> a = {4, 5}, b = {7}, c = {1, 2, 3};
  const PromptBatch batch = left_pad_prompts({&a, &b, &c}, /*pad_id=*/9);
  EXPECT_EQ(row_of(batch.input_ids, 0), (std::vector<int64_t>{9, 4, 5}));
  EXPECT_EQ(row_of(batch.input_ids, 1), (std::vector<int64_t>{9, 9, 7}));
  EXPECT_EQ(row_of(batch.attention_mask, 1), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(row_of(batch.input_ids, 2), (std::vector<int64_t>{1, 2, 3}));
  GenerationOptions options;
  options.max_new_tokens = 4;
  for (bool with_cache : {true, false}) {
    CountUpModel model(/*vocab=*/10, with_cache);
    const GenerationResult r = generate(model, batch.input_ids, batch.attention_mask, options);
    EXPECT_EQ(row_of(r.completions, 0), (std::vector<int64_t>{6, 7, 8, 9}));
    EXPECT_EQ(row_of(r.completions, 1), (std::vector<int64_t>{8, 9, 0, 1}));  // wraps at V = 10
    EXPECT_EQ(row_of(r.completions, 2), (std::vector<int64_t>{4, 5, 6, 7}));
    EXPECT_EQ(row_of(r.sequences, 1), (std::vector<int64_t>{9, 9, 7, 8, 9, 0, 1}));
    EXPECT_EQ(row_of(r.attention_mask, 1), (std::vector<int64_t>{0, 0, 1, 1, 1, 1, 1}));
    EXPECT_TRUE(r.completion_mask.eq(1).all().item<bool>());
    // With a cache the prompt is run once, then one new token per step; without one, the whole
    // sequence every step.
    const std::vector<std::vector<int64_t>> expected_calls =
        with_cache ? std::vector<std::vector<int64_t>>{{3, 3}, {3, 1}, {3, 1}, {3, 1}}
                   : std::vector<std::vector<int64_t>>{{3, 3}, {3, 4}, {3, 5}, {3, 6}};
    EXPECT_EQ(model.calls, expected_calls) << "with_cache " << with_cache;
  }
  const std::vector<int64_t> empty;
  EXPECT_THROW(left_pad_prompts({&a, &empty}, 0), std::invalid_argument);
}

TEST(GenerationTest, RowsStopAtEosAndOnlyLiveRowsAreRecomputedAndSampled) {
  // Row 0 reaches EOS (6) after 2 tokens, row 1 after 5; max_new_tokens 8 is not reached.
  const at::Tensor ids = ids_tensor({{4}, {1}});
  GenerationOptions options;
  options.max_new_tokens = 8;
  options.eos_id = 6;
  options.pad_id = 0;
  for (bool with_cache : {true, false}) {
    CountUpModel model(10, with_cache);
    const GenerationResult r = generate(model, ids, at::Tensor(), options);
    ASSERT_EQ(r.completions.size(1), 5);
    EXPECT_EQ(row_of(r.completions, 0), (std::vector<int64_t>{5, 6, 0, 0, 0}));
    EXPECT_EQ(row_of(r.completion_mask, 0), (std::vector<int64_t>{1, 1, 0, 0, 0}));
    EXPECT_EQ(row_of(r.completions, 1), (std::vector<int64_t>{2, 3, 4, 5, 6}));
    EXPECT_EQ(row_of(r.completion_mask, 1), (std::vector<int64_t>{1, 1, 1, 1, 1}));
    EXPECT_EQ(completion_tokens(r), (std::vector<std::vector<int64_t>>{{5, 6}, {2, 3, 4, 5, 6}}));
    // The cache holds both rows to the end; recomputation drops the stopped row.
    const std::vector<std::vector<int64_t>> expected_calls =
        with_cache ? std::vector<std::vector<int64_t>>{{2, 1}, {2, 1}, {2, 1}, {2, 1}, {2, 1}}
                   : std::vector<std::vector<int64_t>>{{2, 1}, {2, 2}, {1, 3}, {1, 4}, {1, 5}};
    EXPECT_EQ(model.calls, expected_calls) << "with_cache " << with_cache;
  }

  // Sampling draws for the live rows only, one at::multinomial call per step over their
  // [live rows, V] probabilities. The reference below samples that way from the same seed, with the
  // probabilities written out: after token x, softmax of `margin` at x + 1 and 0 elsewhere.
  const double margin = 1.5;
  options.temperature = 1.0;
  options.max_new_tokens = 8;
  const at::Tensor prompts = ids_tensor({{4}, {1}, {8}});
  for (bool with_cache : {true, false}) {
    CountUpModel model(10, with_cache, margin);
    at::Generator gen = at::detail::createCPUGenerator(123);
    const GenerationResult r = generate(model, prompts, at::Tensor(), options, gen);

    at::Generator replay = at::detail::createCPUGenerator(123);
    std::vector<std::vector<int64_t>> expected(3);
    std::vector<int64_t> last = {4, 1, 8};
    std::vector<bool> done(3, false);
    int64_t stopped_early = 0;
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
      std::vector<int64_t> live;
      for (int64_t i = 0; i < 3; ++i) {
        if (!done[i]) live.push_back(i);
      }
      if (live.empty()) break;
      if (live.size() < 3) ++stopped_early;
      at::Tensor logits = at::zeros({int64_t(live.size()), 10}, at::kFloat);
      for (size_t k = 0; k < live.size(); ++k) logits[k][(last[live[k]] + 1) % 10] = margin;
      const at::Tensor probs = at::softmax(logits / 1.0, -1);
      const at::Tensor picked = at::multinomial(probs, 1, false, replay).squeeze(1);
      for (size_t k = 0; k < live.size(); ++k) {
        const int64_t token = picked[k].item<int64_t>();
        expected[live[k]].push_back(token);
        last[live[k]] = token;
        if (token == options.eos_id) done[live[k]] = true;
      }
    }
    ASSERT_GT(stopped_early, 0) << "the seed must stop a row early for this test to mean anything";
    EXPECT_EQ(completion_tokens(r), expected) << "with_cache " << with_cache;
    EXPECT_TRUE(at::rand({4}, gen).equal(at::rand({4}, replay))) << "with_cache " << with_cache;
  }
}

// Hides the transformer's cache: generation recomputes the whole sequence.
class NoCacheModel : public Model {
 public:
  explicit NoCacheModel(plugins::model::TransformerModel& inner) : inner_(inner) {}
  ModelOutput forward(const ModelInput& input) override {
    if (input.cache) ADD_FAILURE() << "a cache reached a model without one";
    return inner_.forward(input);
  }
  int64_t vocab_size() const override { return inner_.vocab_size(); }

 private:
  plugins::model::TransformerModel& inner_;
};

plugins::model::TransformerConfig small_config(bool bias) {
  plugins::model::TransformerConfig c;
  c.vocab_size = 29;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  c.attention_bias = bias;
  return c;
}

TEST(GenerationTest, TransformerGreedyWithCacheEqualsRecomputation) {
  plugins::model::TransformerModel model(small_config(true));
  randomize(model, 6);
  const at::Tensor ids = ids_tensor({{0, 0, 0, 4, 9}, {3, 1, 4, 1, 5}, {0, 7, 7, 2, 8}});
  const at::Tensor mask = ids_tensor({{0, 0, 0, 1, 1}, {1, 1, 1, 1, 1}, {0, 1, 1, 1, 1}});
  GenerationOptions options;
  options.max_new_tokens = 12;
  options.use_cache = true;
  const GenerationResult cached = generate(model, ids, mask, options);
  options.use_cache = false;
  const GenerationResult recomputed = generate(model, ids, mask, options);
  ASSERT_EQ(cached.completions.sizes(), (std::vector<int64_t>{3, 12}));
  EXPECT_TRUE(cached.completions.equal(recomputed.completions));
  NoCacheModel plain(model);
  options.use_cache = true;
  EXPECT_TRUE(generate(plain, ids, mask, options).completions.equal(cached.completions));
  EXPECT_TRUE(cached.attention_mask.narrow(1, 0, 5).equal(mask));
  EXPECT_TRUE(cached.completion_mask.eq(1).all().item<bool>());  // no EOS: every token is real
  EXPECT_TRUE(cached.sequences.narrow(1, 0, 5).equal(ids));
  // Greedy by hand for row 0 (unpadded): argmax of a full forward, token by token.
  std::vector<int64_t> row = {4, 9};
  for (int step = 0; step < 12; ++step) {
    const auto out = model.forward(ModelInput{ids_tensor({row}), at::Tensor(), true, false, nullptr});
    row.push_back(out.logits[0][int64_t(row.size()) - 1].argmax().item<int64_t>());
    EXPECT_EQ(cached.completions[0][step].item<int64_t>(), row.back()) << "step " << step;
  }
}

TEST(GenerationTest, TransformerStopsAtEosAndSamplesReproducibly) {
  plugins::model::TransformerModel model(small_config(false));
  randomize(model, 7);
  const at::Tensor ids = ids_tensor({{0, 4, 9}, {3, 1, 4}});
  const at::Tensor mask = ids_tensor({{0, 1, 1}, {1, 1, 1}});
  GenerationOptions options;
  options.max_new_tokens = 6;
  const GenerationResult greedy = generate(model, ids, mask, options);
  // Make the first greedy token of row 0 the EOS: row 0 stops after one token.
  options.eos_id = greedy.completions[0][0].item<int64_t>();
  options.pad_id = 28;
  const GenerationResult stopped = generate(model, ids, mask, options);
  EXPECT_EQ(stopped.completion_mask[0][0].item<int64_t>(), 1);
  for (int64_t i = 1; i < stopped.completions.size(1); ++i) {
    EXPECT_EQ(stopped.completion_mask[0][i].item<int64_t>(), 0);
    EXPECT_EQ(stopped.completions[0][i].item<int64_t>(), 28);
  }
  // Sampling: the same seed gives the same tokens, with and without the cache; top_k = 1 is greedy.
  GenerationOptions sample;
  sample.max_new_tokens = 6;
  sample.temperature = 1.0;
  sample.top_p = 0.9;
  sample.seed = 42;
  const at::Tensor sampled = generate(model, ids, mask, sample).completions;
  EXPECT_TRUE(sampled.equal(generate(model, ids, mask, sample).completions));
  sample.use_cache = false;
  EXPECT_TRUE(sampled.equal(generate(model, ids, mask, sample).completions));
  sample.top_k = 1;
  EXPECT_TRUE(generate(model, ids, mask, sample).completions.equal(greedy.completions));
}

TEST(GenerationTest, BadInputsAndOptionsAreErrors) {
  CountUpModel model(10, true);
  const at::Tensor ids = ids_tensor({{0, 4, 9}, {3, 1, 4}});
  const at::Tensor mask = ids_tensor({{0, 1, 1}, {1, 1, 1}});
  GenerationOptions options;
  // Right padding: the last column must be real.
  EXPECT_THROW(generate(model, ids, ids_tensor({{1, 1, 0}, {1, 1, 1}}), options), std::invalid_argument);
  EXPECT_THROW(generate(model, ids, mask.narrow(1, 0, 2), options), std::invalid_argument);
  EXPECT_THROW(generate(model, ids.narrow(1, 0, 0), at::Tensor(), options), std::invalid_argument);
  auto expect_bad = [&](void (*edit)(GenerationOptions&), const std::string& field) {
    GenerationOptions bad;
    edit(bad);
    try {
      generate(model, ids, mask, bad);
      ADD_FAILURE() << field << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  expect_bad([](GenerationOptions& o) { o.top_p = 0.0; }, "top_p");
  expect_bad([](GenerationOptions& o) { o.top_p = 1.5; }, "top_p");
  expect_bad([](GenerationOptions& o) { o.max_new_tokens = 0; }, "max_new_tokens");
  expect_bad([](GenerationOptions& o) { o.temperature = -1; }, "temperature");
  expect_bad([](GenerationOptions& o) { o.top_k = -1; }, "top_k");
  expect_bad([](GenerationOptions& o) { o.pad_id = -1; }, "pad_id");
}

TEST(GenerationTest, TopKAndTopPKeepTheRightTokens) {
  // probs 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps the first two tokens only (0.5 < 0.7 <= 0.8);
  // top_k 3 keeps the first three.
  const at::Tensor logits = at::log(at::tensor({0.5, 0.3, 0.15, 0.05}, at::kFloat)).unsqueeze(0);
  GenerationOptions o;
  o.temperature = 1.0;
  at::Generator gen = at::detail::createCPUGenerator(5);
  auto counts = [&](const GenerationOptions& options) {
    std::vector<int> seen(4, 0);
    for (int i = 0; i < 2000; ++i) seen[sample_next_token(logits, options, gen)[0].item<int64_t>()]++;
    return seen;
  };
  o.top_p = 0.7;
  std::vector<int> seen = counts(o);
  EXPECT_EQ(seen[2] + seen[3], 0);
  // Renormalised: 0.5 / 0.8 = 0.625 of the draws are token 0 (5 standard deviations ~ 0.054).
  EXPECT_NEAR(seen[0] / 2000.0, 0.625, 0.054);
  o.top_p = 1.0;
  o.top_k = 3;
  seen = counts(o);
  EXPECT_EQ(seen[3], 0);
  EXPECT_NEAR(seen[2] / 2000.0, 0.15 / 0.95, 0.041);
  // Temperature 0 is the argmax, whatever the filters.
  o.temperature = 0.0;
  EXPECT_EQ(sample_next_token(logits, o, gen)[0].item<int64_t>(), 0);
}

// generate's memory bound (`prefengine generate --n/--max-new-tokens`): per token of every row, the
// k_proj/v_proj output widths in bytes (the KV cache), 4 bytes a logit and 32 bytes of bookkeeping.
// By hand: small_config has 2 layers, k_proj and v_proj of 2 kv heads x 4 = 8 float rows each:
// 2 * (8 + 8) * 4 = 128 bytes; 29 logits = 116 bytes; +32 = 276 bytes a token; 3 rows x (5 + 7).
TEST(GenerationMemoryTest, KvCacheAndLogitsFromTheModelsShape) {
  plugins::model::TransformerModel model(small_config(false));
  EXPECT_DOUBLE_EQ(generation_memory_bytes(model, 3, 5, 7), 3.0 * 12 * 276);
  // No k_proj/v_proj (no cache): the logits and bookkeeping only, 7 * 4 + 32 = 60 bytes a token.
  CountUpModel count_up(7, /*with_cache=*/false);
  EXPECT_DOUBLE_EQ(generation_memory_bytes(count_up, 2, 3, 5), 2.0 * 8 * 60);
  // Absurd sizes do not overflow.
  EXPECT_GT(generation_memory_bytes(model, 1 << 20, 1, int64_t{1} << 40), 1e20);
  EXPECT_GT(available_memory_bytes(), 0);
}

}  // namespace
}  // namespace prefengine
