// The PPO stage's rollouts go through the engine generator (engine/generation/generator.h). They
// must draw exactly what the stage's own sampler drew before (so that seeded toy runs and the
// study's figures stay the same): that sampler is kept here as the reference and both run from
// the same seed of the default CPU generator.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "engine/data/prompt_records.h"
#include "engine/loop/sampling.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/ppo_stage.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/model.h"
#include "test_util.h"

namespace prefengine {
namespace {

// The sampler ppo_stage.cpp had before it used the engine generator: each step, the rows that
// have not stopped, right-padded, the whole prefix recomputed, one at::multinomial call on the
// default generator.
SequenceTensors reference_sample_responses(Model& model, const std::vector<PromptRecord>& prompts,
                                           const at::Tensor& index, int64_t max_new_tokens, int64_t eos_id,
                                           double temperature) {
  at::NoGradGuard no_grad;
  const int64_t b = index.numel();
  std::vector<std::vector<int64_t>> prefix(b), response(b);
  for (int64_t i = 0; i < b; ++i) prefix[i] = prompts[index[i].item<int64_t>()].prompt;
  std::vector<bool> done(b, false);
  for (int64_t t = 0; t < max_new_tokens; ++t) {
    std::vector<int64_t> active;
    std::vector<TokenSequence> rows;
    for (int64_t i = 0; i < b; ++i) {
      if (done[i]) continue;
      active.push_back(i);
      rows.push_back({&prefix[i], nullptr});
    }
    if (active.empty()) break;
    const SequenceTensors packed = pack_sequences(rows);
    ModelInput input;
    input.input_ids = packed.input_ids;
    input.attention_mask = packed.attention_mask;
    const at::Tensor logits = model.forward(input).logits.to(at::kFloat);
    const at::Tensor last = (packed.attention_mask.sum(1) - 1).view({-1, 1, 1}).expand({-1, 1, logits.size(2)});
    const at::Tensor probs = (logits.gather(1, last).squeeze(1) / temperature).softmax(-1);
    const at::Tensor picked = at::multinomial(probs, 1).squeeze(1);
    auto ids = picked.accessor<int64_t, 1>();
    for (size_t k = 0; k < active.size(); ++k) {
      const int64_t i = active[k];
      prefix[i].push_back(ids[k]);
      response[i].push_back(ids[k]);
      if (ids[k] == eos_id) done[i] = true;
    }
  }
  std::vector<TokenSequence> rows;
  for (int64_t i = 0; i < b; ++i) rows.push_back({&prompts[index[i].item<int64_t>()].prompt, &response[i]});
  return pack_sequences(rows);
}

// The seeded toy model and the toy prompts, which the tests below sample. The loader is kept (and
// outlives the model): the model's code is in the plugin library it loaded.
class ToyModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    PluginOptions options;
    options.set_scalar("hidden", "16");
    at::manual_seed(3);
    model = loader.create_model("toy_mlp", options);
  }

  PluginLoader loader;
  std::shared_ptr<Model> model;
  const std::vector<PromptRecord> prompts = read_prompt_records(testing::source_path("configs/toy/data/prompts.jsonl"));
};
class PpoSamplerTest : public ToyModelTest {};
class SampleCompletionsTest : public ToyModelTest {};

TEST_F(PpoSamplerTest, RolloutsDrawWhatTheStagesOwnSamplerDrew) {
  const at::Tensor index = at::tensor({0, 3, 1, 2, 0, 1, 3, 2}, at::kLong);
  struct Case {
    int64_t max_new_tokens;
    int64_t eos_id;
    double temperature;
  };
  bool some_row_stopped_early = false;
  for (const Case c : {Case{1, -1, 1.0}, Case{4, -1, 0.7}, Case{6, 2, 1.0}, Case{6, 0, 1.3}}) {
    at::manual_seed(11);
    const SequenceTensors got = sample_responses(*model, prompts, index, c.max_new_tokens, c.eos_id, c.temperature);
    const at::Tensor got_next = at::rand({8});
    at::manual_seed(11);
    const SequenceTensors want =
        reference_sample_responses(*model, prompts, index, c.max_new_tokens, c.eos_id, c.temperature);
    const at::Tensor want_next = at::rand({8});
    EXPECT_TRUE(got.input_ids.equal(want.input_ids)) << "max_new_tokens " << c.max_new_tokens;
    EXPECT_TRUE(got.attention_mask.equal(want.attention_mask));
    EXPECT_TRUE(got.response_mask.equal(want.response_mask));
    EXPECT_TRUE(got.lengths.equal(want.lengths));
    EXPECT_EQ(got.row_lengths, want.row_lengths);
    // The default generator is left where the old sampler left it: later draws are the same too.
    EXPECT_TRUE(got_next.equal(want_next)) << "max_new_tokens " << c.max_new_tokens;
    if (c.eos_id >= 0 && want.lengths.lt(double(c.max_new_tokens)).any().item<bool>()) some_row_stopped_early = true;
  }
  EXPECT_TRUE(some_row_stopped_early) << "no case stopped a row at EOS: the cases test too little";
}

// sample_completions, which the ppo stage, the pairs stage and `prefengine generate` share: n rows
// a prompt in prompt order, options.batch_size prompts a generate() call drawing in turn from the
// generator (so generate's batch-by-batch calls draw what one call over all prompts draws).
TEST_F(SampleCompletionsTest, BatchesDrawInOrderFromTheGenerator) {
  ASSERT_GE(prompts.size(), 4u);
  const std::vector<const PromptRecord*> picked{&prompts[0], &prompts[1], &prompts[2], &prompts[3]};
  SamplingOptions options;
  options.n = 3;
  options.max_new_tokens = 4;
  options.batch_size = 2;

  at::Generator whole_generator = at::make_generator<at::CPUGeneratorImpl>(5);
  const auto whole = sample_completions(*model, picked, options, /*eos_id=*/-1, /*pad_id=*/0, whole_generator);
  ASSERT_EQ(whole.size(), 12u);
  for (const auto& row : whole) EXPECT_EQ(row.size(), 4u);  // no EOS: every row runs to max_new_tokens
  at::Generator split_generator = at::make_generator<at::CPUGeneratorImpl>(5);
  auto split = sample_completions(*model, {picked[0], picked[1]}, options, -1, 0, split_generator);
  const auto rest = sample_completions(*model, {picked[2], picked[3]}, options, -1, 0, split_generator);
  split.insert(split.end(), rest.begin(), rest.end());
  EXPECT_EQ(split, whole);

  // Greedy: the n rows of a prompt are equal and sit together, prompt after prompt.
  options.temperature = 0;
  model->train();
  const auto greedy = sample_completions(*model, picked, options, -1, 0, whole_generator);
  EXPECT_TRUE(model->is_training());  // the caller's mode is left as it was
  for (size_t p = 0; p < 4; ++p) {
    EXPECT_EQ(greedy[p * 3], greedy[p * 3 + 1]);
    EXPECT_EQ(greedy[p * 3], greedy[p * 3 + 2]);
  }

  PromptRecord empty;
  empty.source = "x.jsonl:7";
  try {
    sample_completions(*model, {picked[0], &empty}, options, -1, 0, whole_generator);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()), "x.jsonl:7: the prompt has no tokens");
  }
}

}  // namespace
}  // namespace prefengine
