// The language-model path through the engine: text datasets as stage data, resume, the reference
// log-prob cache, `prefengine generate`, and a short run of configs/lm/arith.yaml.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/data/stage_data.h"
#include "engine/train/checkpoint.h"
#include "engine/train/experiment_runner.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/plugin_loader.h"
#include "test_util.h"

namespace prefengine {
namespace {

using testing::read_metrics;

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(testing::read_file(path)); }

std::string run_yaml(const std::string& yaml, const std::string& tag, const std::vector<std::string>& overrides = {}) {
  const std::string dir = testing::make_temp_dir(tag);
  ExperimentRunner runner(parse_experiment(yaml, tag + ".yaml", overrides), dir);
  runner.run();
  return dir;
}

using CliResult = testing::CommandResult;

CliResult cli(const std::string& args, const std::string& env = "") { return testing::run_cli(args, env); }

std::string tiny_lm_stage(const std::string& kind, const std::string& data, int steps = 3) {
  std::string s = testing::tiny_lm_yaml() + "stages:\n  - {name: s, kind: " + kind + ", data: " + data +
                  ", optimizer: {lr: 1.0e-3}, batch_size: 2, steps: " + std::to_string(steps) + ", log_every: 1";
  if (kind == "pairwise") s += ", loss: {plugin: dpo, beta: 0.1}";
  return s + "}\n";
}

TEST(StageDataTest, TextPairsAreTokenizedAndCountedInRunJson) {
  const std::string dir = testing::make_temp_dir("text-pairs");
  const std::string data = testing::write_file(dir + "/pairs.jsonl",
      "{\"prompt\": \"Q: 1+1?\", \"chosen\": \" 2\", \"rejected\": \" 3 is a long wrong answer\"}\n"
      "\n"
      "{\"prompt\": \"Q: 2+2?\", \"chosen\": \" 4\", \"rejected\": \" 5\"}\n");
  const std::string yaml = tiny_lm_stage("pairwise", "{path: " + data + ", max_length: 12}");
  ExperimentConfig config = parse_experiment(yaml, "pairs.yaml");
  StageDataStats stats;
  const auto records = load_stage_pairs(config, config.stages[0], &stats);
  ASSERT_EQ(records.size(), 2u);
  // BOS + "Q: 1+1?" (7 bytes) = 8 prompt tokens; 12 - 8 = 4 response tokens at most.
  EXPECT_EQ(records[0].prompt.size(), 8u);
  EXPECT_EQ(records[0].prompt.front(), 256);
  EXPECT_EQ(records[0].chosen, (std::vector<int64_t>{' ', '2', 257}));
  EXPECT_EQ(records[0].rejected, (std::vector<int64_t>{' ', '3', ' ', 'i'}));
  EXPECT_EQ(records[0].source, data + ":1");
  EXPECT_EQ(records[1].source, data + ":3");
  EXPECT_EQ(stats.format, "standard");
  EXPECT_EQ(stats.rows, 2);
  EXPECT_EQ(stats.truncated_rows, 1);

  const std::string run_dir = run_yaml(yaml, "text-pairs-run");
  const auto status = read_json(run_dir + "/run.json");
  EXPECT_EQ(status["status"], "completed");
  EXPECT_EQ(status["stages"][0]["data"]["truncated_rows"], 1);
  EXPECT_EQ(status["stages"][0]["data"]["records"], 2);
  EXPECT_EQ(status["stages"][0]["data"]["format"], "standard");
  EXPECT_NE(testing::read_file(run_dir + "/run.log").find("1 truncated, 0 skipped"), std::string::npos);
}

TEST(StageDataTest, BadRowIsAnErrorNamingStageFileAndLine) {
  const std::string dir = testing::make_temp_dir("bad-rows");
  const std::string data = testing::write_file(dir + "/pairs.jsonl",
      "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n"
      "{\"prompt\": \"a\", \"chosen\": \"b\"}\n"
      "{\"prompt\": \"d\", \"chosen\": \"e\", \"rejected\": \"f\"}\n");
  ExperimentConfig config = parse_experiment(tiny_lm_stage("pairwise", "{path: " + data + "}"), "bad.yaml");
  try {
    load_stage_pairs(config, config.stages[0]);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("bad.yaml:", 0), 0u) << message;
    EXPECT_NE(message.find("stage 's': " + data + ":2: expected"), std::string::npos) << message;
  }
  EXPECT_THROW(validate_experiment(config), std::invalid_argument);
  // skip_bad_rows: the row is counted, not fatal
  const std::string run_dir =
      run_yaml(tiny_lm_stage("pairwise", "{path: " + data + ", skip_bad_rows: true}"), "bad-rows-skip");
  const auto status = read_json(run_dir + "/run.json");
  EXPECT_EQ(status["stages"][0]["data"]["skipped_rows"], 1);
  EXPECT_EQ(status["stages"][0]["data"]["records"], 2);
}

TEST(StageDataTest, TextDataNeedsATokenizerBlock) {
  const std::string dir = testing::make_temp_dir("no-tokenizer");
  const std::string data = testing::write_file(dir + "/sft.jsonl", "{\"text\": \"hello\"}\n");
  std::string yaml = tiny_lm_stage("sft", "{path: " + data + "}");
  yaml.replace(yaml.find("tokenizer: {kind: byte}\n"), 24, "");
  ExperimentConfig config = parse_experiment(yaml, "t.yaml");
  try {
    load_stage_sft(config, config.stages[0]);
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no `tokenizer:` block"), std::string::npos) << e.what();
  }
}

// The pairs and ppo stages read their text prompts through load_stage_prompts: the stage's data
// options apply and errors carry the stage's prefix.
TEST(StageDataTest, TextPromptsTakeTheStagesDataOptions) {
  const std::string dir = testing::make_temp_dir("text-prompts");
  const std::string data = testing::write_file(dir + "/prompts.jsonl",
      "{\"prompt\": \"Q: 1+1?\", \"reference\": \"2\"}\n"
      "{\"nothing\": 1}\n"
      "{\"prompt\": \"Q: 2+2?\"}\n"
      "{\"prompt\": \"Q: 3+3?\"}\n");
  ExperimentConfig config = parse_experiment(
      tiny_lm_stage("sft", "{path: " + data + ", max_prompt_length: 4, skip_bad_rows: true, max_records: 2}"), "p.yaml");
  const StagePrompts prompts = load_stage_prompts(config, config.stages[0], "test prompts");
  ASSERT_EQ(prompts.records.size(), 2u);  // the bad row skipped, the last one past max_records
  // BOS + the prompt's last 3 bytes
  EXPECT_EQ(prompts.records[0].prompt, (std::vector<int64_t>{256, '+', '1', '?'}));
  EXPECT_EQ(prompts.records[0].reference, std::optional<std::string>("2"));
  EXPECT_EQ(prompts.records[1].source, data + ":3");
  ASSERT_NE(prompts.tokenizer, nullptr);
  EXPECT_EQ(prompts.tokenizer->eos_id(), 257);

  config = parse_experiment(tiny_lm_stage("sft", "{path: " + data + "}"), "p.yaml");
  try {
    load_stage_prompts(config, config.stages[0], "test prompts");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.rfind("p.yaml:", 0), 0u) << message;
    EXPECT_NE(message.find("stage 's': " + data + ":2:"), std::string::npos) << message;
  }
  std::string yaml = tiny_lm_stage("sft", "{path: " + data + "}");
  yaml.replace(yaml.find("tokenizer: {kind: byte}\n"), 24, "");
  config = parse_experiment(yaml, "p.yaml");
  try {
    load_stage_prompts(config, config.stages[0], "test prompts");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("stage 's': test prompts needs a tokenizer"), std::string::npos) << e.what();
  }
}

TEST(StageDataTest, PretokenizedFilesRefuseSkipBadRows) {
  const std::string yaml = std::string(R"(name: t
model: {plugin: toy_mlp}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl, skip_bad_rows: true}, steps: 1}
)");
  ExperimentConfig config = parse_experiment(yaml, "t.yaml");
  EXPECT_THROW(load_stage_sft(config, config.stages[0]), std::invalid_argument);
  config.stages[0].data.skip_bad_rows = false;
  StageDataStats stats;
  EXPECT_FALSE(load_stage_sft(config, config.stages[0], &stats).empty());
  EXPECT_EQ(stats.format, "pretokenized");
  EXPECT_EQ(stats.truncated_rows, 0);
}

// Token-id records take max_prompt_length / max_length as text does (TRL): the prompt keeps its
// last max_prompt_length ids, then each response is cut to max_length - |prompt|; a prompt that
// fills max_length keeps max_length - 1 ids so the response keeps one. Expectations by hand.
TEST(StageDataTest, PretokenizedPairsAreTruncatedLikeText) {
  const std::string dir = testing::make_temp_dir("pretok-trunc-pairs");
  const std::string data = testing::write_file(dir + "/pairs.jsonl",
      "{\"prompt_ids\": [1,2,3,4,5,6], \"chosen_ids\": [7,8,9,10], \"rejected_ids\": [11,12]}\n"
      "{\"prompt_ids\": [1,2], \"chosen_ids\": [3], \"rejected_ids\": [4,5,6,7,8]}\n"
      "{\"prompt_ids\": [1], \"chosen_ids\": [2,3], \"rejected_ids\": [4]}\n");
  ExperimentConfig config =
      parse_experiment(tiny_lm_stage("pairwise", "{path: " + data + ", max_prompt_length: 4, max_length: 6}"), "t.yaml");
  StageDataStats stats;
  const auto records = load_stage_pairs(config, config.stages[0], &stats);
  ASSERT_EQ(records.size(), 3u);
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(records[0].prompt, (Ids{3, 4, 5, 6}));
  EXPECT_EQ(records[0].chosen, (Ids{7, 8}));
  EXPECT_EQ(records[0].rejected, (Ids{11, 12}));
  EXPECT_EQ(records[1].prompt, (Ids{1, 2}));
  EXPECT_EQ(records[1].chosen, (Ids{3}));
  EXPECT_EQ(records[1].rejected, (Ids{4, 5, 6, 7}));
  EXPECT_EQ(records[2].prompt, (Ids{1}));
  EXPECT_EQ(records[2].chosen, (Ids{2, 3}));
  EXPECT_EQ(records[2].rejected, (Ids{4}));
  EXPECT_EQ(stats.format, "pretokenized");
  EXPECT_EQ(stats.truncated_rows, 2);
}

TEST(StageDataTest, PretokenizedSftIsTruncatedLikeText) {
  const std::string dir = testing::make_temp_dir("pretok-trunc-sft");
  std::string distribution = "[1";
  for (int i = 1; i < 259; ++i) distribution += ",0";
  distribution += "]";
  const std::string data = testing::write_file(dir + "/sft.jsonl",
      "{\"prompt_ids\": [1,2,3,4], \"completion_ids\": [5,6]}\n"
      "{\"prompt_ids\": [1], \"completion_ids\": [5,6,7]}\n"
      "{\"prompt_ids\": [1,2,3,4], \"distribution\": " + distribution + "}\n"
      "{\"prompt_ids\": [9,8], \"completion_ids\": [7]}\n");
  ExperimentConfig config = parse_experiment(tiny_lm_stage("sft", "{path: " + data + ", max_length: 3}"), "t.yaml");
  StageDataStats stats;
  const auto records = load_stage_sft(config, config.stages[0], &stats);
  ASSERT_EQ(records.size(), 4u);
  using Ids = std::vector<int64_t>;
  EXPECT_EQ(records[0].prompt, (Ids{3, 4}));  // filled max_length: keeps 2 so the completion keeps 1
  EXPECT_EQ(records[0].completion, (Ids{5}));
  EXPECT_EQ(records[1].prompt, (Ids{1}));
  EXPECT_EQ(records[1].completion, (Ids{5, 6}));
  EXPECT_EQ(records[2].prompt, (Ids{3, 4}));  // the distribution is the one next token
  EXPECT_EQ(records[2].distribution.size(), 259u);
  EXPECT_EQ(records[3].prompt, (Ids{9, 8}));
  EXPECT_EQ(records[3].completion, (Ids{7}));
  EXPECT_EQ(stats.truncated_rows, 3);
}

TEST(StageDataTest, ConfigRejectsBadTextOptions) {
  EXPECT_THROW(parse_experiment(tiny_lm_stage("sft", "{path: x, max_prompt_length: 8, max_length: 8}"), "t.yaml"),
               std::invalid_argument);
  EXPECT_THROW(parse_experiment(tiny_lm_stage("sft", "{path: x, max_length: -1}"), "t.yaml"), std::invalid_argument);
  std::string yaml = tiny_lm_stage("sft", "{path: x}");
  EXPECT_THROW(parse_experiment(yaml, "t.yaml", {"tokenizer.kind=bpe"}), std::invalid_argument);
  EXPECT_THROW(parse_experiment(yaml, "t.yaml", {"tokenizer.kind=hf_bpe"}), std::invalid_argument);  // no path
  EXPECT_THROW(parse_experiment(yaml, "t.yaml", {"tokenizer.chat_template=vicuna"}), std::invalid_argument);
}

TEST(StageDataTest, SftTextRowsTrain) {
  const std::string dir = testing::make_temp_dir("sft-text");
  const std::string data = testing::write_file(dir + "/sft.jsonl",
      "{\"text\": \"the cat sat\"}\n{\"text\": \"on the mat\"}\n{\"text\": \"x\"}\n");
  const std::string run_dir = run_yaml(tiny_lm_stage("sft", "{path: " + data + "}", 4), "sft-text-run");
  const auto rows = read_metrics(run_dir);
  ASSERT_EQ(rows.size(), 4u);
  for (const auto& r : rows) EXPECT_TRUE(std::isfinite(r["loss"].get<double>()));
  EXPECT_EQ(read_json(run_dir + "/run.json")["stages"][0]["data"]["format"], "text");
}

TEST(StageDataTest, EmptyPromptRowsScoreTheirResponse) {
  // An empty prompt (a text row without BOS): token 0 has no context, tokens 1.. are scored.
  const std::vector<int64_t> empty, response = {5, 6, 7}, prompt = {1};
  const SequenceTensors packed = pack_sequences({{&empty, &response}, {&prompt, &response}});
  EXPECT_EQ(packed.row_lengths, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(packed.response_mask[0].sum().item<float>(), 3.0f);
  const at::Tensor logits = at::randn({2, 4, 8});
  const at::Tensor logps = gather_token_logps(logits, packed.input_ids) * packed.response_mask;
  const at::Tensor expected = logits[0][0].log_softmax(0)[6] + logits[0][1].log_softmax(0)[7];
  EXPECT_NEAR(logps[0].sum().item<float>(), expected.item<float>(), 1e-5);
}

TEST(StageDataTest, ChunkedTokenLogpsEqualOneLogSoftmax) {
  // V = 2^20 and N = 2: chunks of 2 positions, so T = 6 takes three chunks.
  const int64_t vocab = int64_t{1} << 20;
  const at::Tensor logits = at::randn({2, 6, vocab});
  const at::Tensor ids = at::randint(vocab, {2, 6}, at::kLong);
  const at::Tensor got = gather_token_logps(logits, ids);
  const at::Tensor expected =
      logits.slice(1, 0, 5).log_softmax(-1).gather(-1, ids.slice(1, 1).unsqueeze(-1)).squeeze(-1);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(got.select(1, 0).abs().max().item<float>(), 0.0f);
  EXPECT_LT((got.slice(1, 1) - expected).abs().max().item<float>(), 1e-4);
}

// --- scoring in chunks ---------------------------------------------------------------------------

// score_in_chunks (the evals' scorer) sorts the rows by length and scores them in chunks of at
// most max_positions padded positions: each row's log-prob must be that of the row scored alone,
// in the rows' own order, whatever the chunk size.
TEST(ScoringTest, ChunkedScoresEqualEachRowScoredAlone) {
  at::manual_seed(5);
  PluginLoader loader;
  PluginOptions o("model");
  for (const auto& [k, v] : std::map<std::string, std::string>{
           {"vocab_size", "37"}, {"hidden_size", "32"}, {"intermediate_size", "48"}, {"num_hidden_layers", "2"},
           {"num_attention_heads", "4"}, {"num_key_value_heads", "2"}, {"max_position_embeddings", "64"}}) {
    o.set_scalar(k, v);
  }
  std::shared_ptr<Model> model = loader.create_model("transformer", o);
  model->eval();
  // Rows of 3 to 26 tokens in no length order (7 rows, every length distinct).
  const std::vector<int64_t> response_lengths = {9, 2, 21, 5, 14, 1, 17};
  std::vector<std::vector<int64_t>> prompts, responses;
  for (size_t i = 0; i < response_lengths.size(); ++i) {
    prompts.push_back(std::vector<int64_t>(2 + i % 3, 0));
    responses.push_back(std::vector<int64_t>(static_cast<size_t>(response_lengths[i]), 0));
    for (auto& t : prompts.back()) t = at::randint(37, {1}).item<int64_t>();
    for (auto& t : responses.back()) t = at::randint(37, {1}).item<int64_t>();
  }
  std::vector<TokenSequence> list;
  for (size_t i = 0; i < prompts.size(); ++i) list.push_back({&prompts[i], &responses[i]});
  const SequenceTensors rows = pack_sequences(list);
  std::vector<float> alone;
  {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < rows.rows(); ++i) {
      alone.push_back(score_sequences(*model, rows.select({i}), true, false).logps[0].item<float>());
    }
  }
  // One row a chunk (the budget below any row), a few rows a chunk, and one chunk for all.
  for (const int64_t budget : {int64_t{1}, int64_t{40}, int64_t{100000}}) {
    const at::Tensor got = score_in_chunks(*model, rows, true, false, budget).logps;
    ASSERT_EQ(got.numel(), rows.rows()) << budget;
    for (int64_t i = 0; i < rows.rows(); ++i) {
      const float expected = alone[static_cast<size_t>(i)];
      EXPECT_NEAR(got[i].item<float>(), expected, 1e-4 * std::max(1.0f, std::fabs(expected))) << "row " << i << ", budget " << budget;
    }
  }
  EXPECT_EQ(score_in_chunks(*model, pack_sequences({}), true, false).logps.numel(), 0);
}

// --- packing ------------------------------------------------------------------------------------

TEST(PackingTest, PackRowsPlacesEveryTokenOnceFirstFitDecreasing) {
  const std::vector<int64_t> p = {1}, r5 = {5, 6, 7, 8}, r2 = {9}, r7 = {4, 4, 4, 4, 4, 4};
  // Rows of 5, 2, 7 and 2 tokens into model rows of at most 9: 7+2 and 5+2 (longest first).
  const SequenceTensors rows = pack_sequences({{&p, &r5}, {&p, &r2}, {&p, &r7}, {&p, &r2}});
  const PackedRows packed = pack_rows(rows, 9);
  ASSERT_EQ(packed.packed.input_ids.sizes(), (std::vector<int64_t>{2, 9}));
  EXPECT_EQ(packed.packed.row_lengths, (std::vector<int64_t>{9, 7}));
  EXPECT_EQ(packed.real_tokens, 16);
  const at::Tensor flat_ids = packed.packed.input_ids.flatten();
  const at::Tensor flat_response = packed.packed.response_mask.flatten();
  for (int64_t i = 0; i < rows.rows(); ++i) {
    for (int64_t t = 0; t < rows.row_lengths[static_cast<size_t>(i)]; ++t) {
      const int64_t at_ = packed.gather_index[i][t].item<int64_t>();
      EXPECT_EQ(flat_ids[at_].item<int64_t>(), rows.input_ids[i][t].item<int64_t>()) << i << " " << t;
      EXPECT_EQ(flat_response[at_].item<float>(), rows.response_mask[i][t].item<float>()) << i << " " << t;
    }
  }
  // Segment ids: the first model row holds rows 1 and 2 (ids 1, 2 in row order), the second 0 and 3.
  EXPECT_TRUE(packed.packed.attention_mask[0].equal(
      at::tensor(std::vector<int64_t>{2, 2, 2, 2, 2, 2, 2, 1, 1}, at::kLong)));
  EXPECT_TRUE(packed.packed.attention_mask[1].equal(
      at::tensor(std::vector<int64_t>{1, 1, 1, 1, 1, 2, 2, 0, 0}, at::kLong)));
  EXPECT_EQ(packed.packed.lengths.sum().item<float>(), rows.lengths.sum().item<float>());
  // A row longer than the capacity gets a model row of its own.
  EXPECT_EQ(pack_rows(rows, 3).packed.input_ids.size(0), 4);
}

TEST(PackingTest, PackedSftTrainsLikeThePaddedRows) {
  // Rows of 6 to 40 bytes, 6 a step: packed into fewer, fuller model rows, the losses and
  // gradient norms of every step are those of the padded batches (to float rounding).
  const std::string dir = testing::make_temp_dir("packing");
  std::string rows;
  for (int i = 0; i < 12; ++i) {
    rows += "{\"prompt\": \"Q" + std::to_string(i) + ":\", \"completion\": \" " +
            std::string(static_cast<size_t>(2 + (i * 7) % 33), static_cast<char>('a' + i)) + "\"}\n";
  }
  const std::string data = testing::write_file(dir + "/sft.jsonl", rows);
  const std::string yaml = tiny_lm_stage("sft", "{path: " + data + ", max_length: 48}", 5);
  const std::string padded = run_yaml(yaml, "packing-off", {"stages.s.batch_size=6"});
  const std::string packed = run_yaml(yaml, "packing-on", {"stages.s.batch_size=6", "stages.s.data.packing=true"});
  const auto x = read_metrics(padded), y = read_metrics(packed);
  ASSERT_EQ(x.size(), 5u);
  ASSERT_EQ(y.size(), 5u);
  int compared = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    EXPECT_FALSE(x[i].contains("batch/packed_fill"));
    ASSERT_TRUE(y[i].contains("batch/packed_fill"));
    const double fill = y[i]["batch/packed_fill"].get<double>();
    EXPECT_GT(fill, 0.5);
    EXPECT_LE(fill, 1.0);
    for (auto it = x[i].begin(); it != x[i].end(); ++it) {
      if (!it.value().is_number_float() || it.key().rfind("time/", 0) == 0 || it.key().rfind("perf/", 0) == 0) continue;
      ASSERT_TRUE(y[i].contains(it.key())) << it.key();
      const double u = it.value().get<double>(), v = y[i][it.key()].get<double>();
      EXPECT_NEAR(u, v, 1e-4 * std::max(1.0, std::abs(u))) << "step " << i + 1 << " " << it.key();
      ++compared;
    }
  }
  EXPECT_GT(compared, 10);
  EXPECT_TRUE(x.back().contains("loss"));
  EXPECT_LT(x.back()["loss"].get<double>(), x.front()["loss"].get<double>());  // it trained
}

TEST(PackingTest, PackingOutsideSftOrWithoutAPackingModelIsRefused) {
  try {
    parse_experiment(tiny_lm_stage("pairwise", "{path: x, packing: true}"), "p.yaml");
    FAIL() << "packing in a pairwise stage was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("data.packing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sft stage"), std::string::npos) << e.what();
  }
  // TRL's name is read too, and not beside ours.
  EXPECT_TRUE(parse_experiment(tiny_lm_stage("sft", "{path: x}"), "t.yaml", {"stages.s.packing=true"})
                  .stages[0].data.packing);
  EXPECT_THROW(parse_experiment(tiny_lm_stage("sft", "{path: x, packing: true}"), "t.yaml", {"stages.s.packing=true"}),
               std::invalid_argument);
  // The toy model takes no packed rows: an error naming the key and the model plugin.
  const std::string toy = std::string("name: t\nseed: 1\nthreads: 1\nmodel: {plugin: toy_mlp, hidden: 8}\n") +
                          "stages:\n  - {name: s, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl, "
                          "packing: true}, optimizer: {lr: 0.01}, batch_size: 2, steps: 1}\n";
  try {
    run_yaml(toy, "packing-toy");
    FAIL() << "packing with the toy model was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("data.packing"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("toy_mlp"), std::string::npos) << e.what();
  }
}

// --- resume -------------------------------------------------------------------------------------

const char* kToy = R"(name: resume
seed: 5
threads: 1
model: {plugin: toy_mlp, hidden: 16}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2, schedule: cosine},
     batch_size: 3, steps: 20, log_every: 3, checkpoint_every: 4}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: configs/toy/data/pairs.jsonl},
     optimizer: {name: adamw, lr: 1.0e-3, warmup_steps: 5, schedule: linear}, batch_size: 5, steps: 30,
     log_every: 2, checkpoint_every: 7}
)";

// metrics.csv as one map column -> text per row.
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::istringstream in(testing::read_file(path));
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& text) {
    std::vector<std::string> fields;
    std::stringstream ss(text);
    std::string f;
    while (std::getline(ss, f, ',')) fields.push_back(f);
    if (!text.empty() && text.back() == ',') fields.push_back("");
    return fields;
  };
  if (std::getline(in, line)) header = split(line);
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto fields = split(line);
    EXPECT_EQ(fields.size(), header.size()) << path << ": " << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < fields.size() && i < header.size(); ++i) row[header[i]] = fields[i];
    rows.push_back(row);
  }
  return rows;
}

void expect_same_metrics(const std::string& a, const std::string& b) {
  const auto x = read_metrics(a), y = read_metrics(b);
  ASSERT_EQ(x.size(), y.size());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i]["stage"], y[i]["stage"]);
    ASSERT_EQ(x[i]["global_step"], y[i]["global_step"]);
    ASSERT_EQ(x[i].size(), y[i].size()) << x[i].dump() << "\n" << y[i].dump();
    for (auto it = x[i].begin(); it != x[i].end(); ++it) {
      if (!it.value().is_number_float()) continue;
      const double u = it.value().get<double>(), v = y[i][it.key()].get<double>();
      EXPECT_NEAR(u, v, 1e-6 * std::max(1.0, std::abs(u))) << "row " << i << " " << it.key();
    }
  }
  // metrics.csv: the same rows under the same columns (no duplicated rows after the resume, no
  // values under another column's name)
  const auto csv_a = read_csv(a + "/metrics.csv"), csv_b = read_csv(b + "/metrics.csv");
  ASSERT_EQ(csv_a.size(), csv_b.size());
  for (size_t i = 0; i < csv_a.size(); ++i) {
    ASSERT_EQ(csv_a[i].size(), csv_b[i].size()) << "csv row " << i;
    for (const auto& [column, value] : csv_a[i]) {
      ASSERT_TRUE(csv_b[i].count(column)) << "csv row " << i << " lacks " << column;
      const std::string& other = csv_b[i].at(column);
      if (value.empty() || other.empty() || column == "stage") {
        EXPECT_EQ(value, other) << "csv row " << i << " " << column;
      } else {
        const double u = std::stod(value), v = std::stod(other);
        EXPECT_NEAR(u, v, 1e-6 * std::max(1.0, std::abs(u))) << "csv row " << i << " " << column;
      }
    }
  }
}

// The byte-level transformer on the shipped arithmetic data: SFT, then DPO against a frozen copy,
// with a cosine and a warm-up schedule and checkpoints inside both stages.
const char* kTinyLmResume = R"(name: resume-lm
seed: 4
threads: 1
tokenizer: {kind: byte}
model: {plugin: transformer, vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2,
        num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128}
stages:
  - {name: sft, kind: sft, data: {path: configs/lm/data/sft.jsonl, max_records: 24, max_length: 64},
     optimizer: {name: adamw, lr: 3.0e-3, weight_decay: 0.01, schedule: cosine}, batch_size: 4, steps: 10,
     log_every: 2, checkpoint_every: 3}
  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, reference: frozen_copy,
     data: {path: configs/lm/data/pairs.jsonl, max_records: 12, max_length: 64},
     optimizer: {lr: 1.0e-3, warmup_steps: 3}, batch_size: 4, steps: 8, log_every: 1, checkpoint_every: 3}
)";

void interrupted_then_resumed(int64_t stop_after, const std::string& tag, const char* yaml = kToy,
                              int64_t total_steps = 50, const std::string& last_stage = "dpo") {
  const std::string whole = run_yaml(yaml, tag + "-whole");
  const std::string dir = testing::make_temp_dir(tag);
  setenv("PREFENGINE_STOP_AFTER_STEP", std::to_string(stop_after).c_str(), 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(yaml, "resume.yaml"), dir).run(), std::runtime_error);
  unsetenv("PREFENGINE_STOP_AFTER_STEP");
  EXPECT_EQ(read_json(dir + "/run.json")["status"], "failed");
  EXPECT_EQ(read_json(dir + "/run.json")["global_step"], stop_after);
  ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
  resumed.set_resume(true);
  EXPECT_EQ(resumed.run().global_steps, total_steps);
  const auto status = read_json(dir + "/run.json");
  EXPECT_EQ(status["status"], "completed");
  ASSERT_FALSE(status["stages"].empty());
  EXPECT_EQ(status["stages"].back()["name"], last_stage);
  expect_same_metrics(whole, dir);
}

TEST(ResumeTest, MidSftEqualsTheUninterruptedRun) { interrupted_then_resumed(8, "resume-sft"); }
TEST(ResumeTest, AtAStageBoundaryEqualsTheUninterruptedRun) { interrupted_then_resumed(20, "resume-boundary"); }
TEST(ResumeTest, MidDpoEqualsTheUninterruptedRun) { interrupted_then_resumed(34, "resume-dpo"); }
TEST(ResumeTest, TransformerMidSftEqualsTheUninterruptedRun) {
  interrupted_then_resumed(6, "resume-lm-sft", kTinyLmResume, 18);
}
TEST(ResumeTest, TransformerMidDpoEqualsTheUninterruptedRun) {
  // stops after the checkpoint at global step 16 = DPO step 6 of 8
  interrupted_then_resumed(16, "resume-lm-dpo", kTinyLmResume, 18);
}

// SFT, a reward model, then PPO (no init_from: the policy keeps the reward model's head as its
// value head) with checkpoints inside PPO: rollouts, minibatch shuffles and the value head resume.
const char* kToyPpo = R"(name: resume-ppo
seed: 6
threads: 1
model: {plugin: toy_mlp, hidden: 16}
stages:
  - {name: sft, kind: sft, data: {path: configs/toy/data/sft_scenario1.jsonl}, optimizer: {lr: 1.0e-2},
     batch_size: 4, steps: 6, log_every: 2}
  - {name: rm, kind: pairwise, loss: {plugin: rm}, data: {path: configs/toy/data/pairs.jsonl},
     optimizer: {lr: 1.0e-3}, batch_size: 8, steps: 6, log_every: 2}
  - {name: ppo, kind: ppo, reward: {stage: rm}, probe: {path: configs/toy/data/pairs.jsonl},
     loss: {plugin: ppo, ppo_epochs: 2}, data: {path: configs/toy/data/prompts.jsonl}, optimizer: {lr: 1.0e-3},
     batch_size: 8, minibatch_size: 4, steps: 6, log_every: 1, checkpoint_every: 2}
)";

TEST(ResumeTest, MidPpoEqualsTheUninterruptedRun) {
  // 12 steps before ppo; each ppo step makes 2 epochs x 2 minibatches = 4 updates; stop after ppo step 2
  interrupted_then_resumed(12 + 2 * 4, "resume-ppo", kToyPpo, 12 + 6 * 4, "ppo");
}

TEST(ResumeTest, AfterTheRewardModelEqualsTheUninterruptedRun) {
  interrupted_then_resumed(12, "resume-after-rm", kToyPpo, 12 + 6 * 4, "ppo");
}

TEST(ResumeTest, RowsLoggedAfterTheCheckpointAreNotDuplicated) {
  // An interruption between checkpoints: metrics rows after the checkpoint are dropped and re-run.
  const std::string whole = run_yaml(kToy, "resume-kill-whole");
  const std::string dir = testing::make_temp_dir("resume-kill");
  setenv("PREFENGINE_STOP_AFTER_STEP", "34", 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(kToy, "resume.yaml"), dir).run(), std::runtime_error);
  unsetenv("PREFENGINE_STOP_AFTER_STEP");
  // pretend the run logged a row after its checkpoint before it died
  std::string state = testing::read_file(dir + "/checkpoints/dpo/state.json");
  auto json = nlohmann::json::parse(state);
  ASSERT_EQ(json["global_step"], 34);
  std::FILE* f = std::fopen((dir + "/metrics.jsonl").c_str(), "a");
  std::fputs("{\"stage\":\"dpo\",\"step\":15,\"global_step\":35,\"loss\":9.0}\n", f);
  std::fputs("{\"stage\":\"dpo\",\"step\":16,\"glo", f);  // and was killed writing the next one
  std::fclose(f);
  ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
  resumed.set_resume(true);
  resumed.run();
  expect_same_metrics(whole, dir);
}

TEST(ResumeTest, ThroughTheCli) {
  const std::string yaml_dir = testing::make_temp_dir("resume-cli");
  const std::string config = testing::write_file(yaml_dir + "/resume.yaml", kToy);
  const std::string whole = yaml_dir + "/whole", dir = yaml_dir + "/run";
  ASSERT_EQ(cli("run " + config + " --output " + whole + " --log-level warn").code, 0);
  CliResult stopped = cli("run " + config + " --output " + dir + " --log-level warn", "PREFENGINE_STOP_AFTER_STEP=27");
  EXPECT_EQ(stopped.code, 1);
  EXPECT_NE(stopped.output.find("stopped after global step 27"), std::string::npos) << stopped.output;
  CliResult resumed = cli("run --resume " + dir + " --log-level warn");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  expect_same_metrics(whole, dir);
  CliResult both = cli("run " + config + " --resume " + dir);
  EXPECT_EQ(both.code, 1);
  EXPECT_NE(both.output.find("drop EXP.yaml"), std::string::npos) << both.output;
}

TEST(ResumeTest, AHandEditedStateIsRefusedNamingTheFieldAndFile) {
  const std::string dir = testing::make_temp_dir("resume-edited");
  setenv("PREFENGINE_STOP_AFTER_STEP", "34", 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(kToy, "resume.yaml"), dir).run(), std::runtime_error);
  unsetenv("PREFENGINE_STOP_AFTER_STEP");
  const std::string path = dir + "/checkpoints/dpo/state.json";
  const auto original = read_json(path);
  auto expect_refused = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& what) {
    nlohmann::json state = original;
    edit(state);
    testing::write_file(path, seal_checkpoint_state(state).dump());  // edited, its checksum fixed
    ExperimentRunner resumed(load_experiment(dir + "/config.yaml"), dir);
    resumed.set_resume(true);
    try {
      resumed.run();
      ADD_FAILURE() << "resumed from an edited state (" << what << ")";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_refused([](nlohmann::json& s) { s["sampler"]["cursor"] = 999; }, "sampler.cursor");
  expect_refused([](nlohmann::json& s) { s["sampler"]["order"][0] = s["sampler"]["order"][1]; }, "sampler.order");
  expect_refused([](nlohmann::json& s) { s["step"] = 31; }, "step: expected at most steps (30)");
  expect_refused([](nlohmann::json& s) { s["generator"] = nlohmann::json::array({1, 2}); }, "generator");
  expect_refused([](nlohmann::json& s) { s.erase("format"); }, "format");
}

TEST(ResumeTest, WithoutACheckpointTheRunStartsAgainFromItsFirstStep) {
  // Killed before its first checkpoint: a partial metrics file and no checkpoints/.
  const std::string whole = run_yaml(kToy, "resume-none-whole");
  const std::string dir = testing::make_temp_dir("resume-none");
  testing::write_file(dir + "/metrics.jsonl", testing::read_file(whole + "/metrics.jsonl").substr(0, 150));
  ExperimentRunner runner(parse_experiment(kToy, "resume.yaml"), dir);
  runner.set_resume(true);
  runner.run();
  EXPECT_EQ(testing::read_file(dir + "/metrics.jsonl"), testing::read_file(whole + "/metrics.jsonl"));
  EXPECT_NE(testing::read_file(dir + "/run.log").find("no checkpoint yet; the run starts again from its first step"),
            std::string::npos);
}

// --- reference cache ----------------------------------------------------------------------------

TEST(ReferenceCacheTest, SecondRunReusesTheCacheWithIdenticalMetrics) {
  const std::string cache = testing::make_temp_dir("refs");
  const std::vector<std::string> overrides = {"reference_cache=" + cache};
  const std::string first = run_yaml(kToy, "refs-first", overrides);
  const std::string second = run_yaml(kToy, "refs-second", overrides);
  EXPECT_EQ(read_json(first + "/run.json")["stages"][1]["reference"], "computed, cached");
  EXPECT_EQ(read_json(second + "/run.json")["stages"][1]["reference"], "cache");
  EXPECT_NE(testing::read_file(second + "/run.log").find("reference log-probs for 32 sequences from"),
            std::string::npos);
  expect_same_metrics(first, second);
  // Different inputs, a different key: another seed changes the weights at stage start.
  const std::string third = run_yaml(kToy, "refs-third", {"reference_cache=" + cache, "seed=6"});
  EXPECT_EQ(read_json(third + "/run.json")["stages"][1]["reference"], "computed, cached");
  const std::string fourth = run_yaml(kToy, "refs-fourth", {"reference_cache=" + cache, "stages.dpo.data.max_records=10"});
  EXPECT_EQ(read_json(fourth + "/run.json")["stages"][1]["reference"], "computed, cached");
  size_t files = 0;
  for (auto& e : boost::filesystem::directory_iterator(cache)) files += e.path().extension() == ".pt";
  EXPECT_EQ(files, 3u);
}

TEST(ReferenceCacheTest, OffByDefault) {
  const std::string dir = run_yaml(kToy, "refs-off");
  EXPECT_EQ(read_json(dir + "/run.json")["stages"][1]["reference"], "computed");
}

// --- generate -----------------------------------------------------------------------------------

TEST(GenerateCliTest, WritesNSamplesPerPrompt) {
  const std::string dir = testing::make_temp_dir("generate");
  const std::string config = testing::write_file(dir + "/tiny.yaml", tiny_lm_stage("sft", "{path: configs/lm/data/sft.jsonl, max_records: 8}", 2));
  const std::string prompts = testing::write_file(dir + "/prompts.jsonl",
      "{\"prompt\": \"Q: 1 + 1?\\nA:\", \"reference\": \"2\"}\n{\"prompt\": \"Hi\"}\n"
      "{\"prompt\": \"a much longer prompt than the others\"}\n");
  const std::string chat = testing::write_file(dir + "/chat.jsonl",
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"hello\"}]}\n"
      "{\"prompt\": [{\"role\": \"user\", \"content\": \"1 + 2?\"}]}\n");
  CliResult r = cli("generate --model-config " + config + " --input " + prompts + " --output " + dir +
                    "/out.jsonl --n 3 --max-new-tokens 6 --temperature 1.0 --top-k 20 --seed 1 --batch-size 2");
  ASSERT_EQ(r.code, 0) << r.output;
  std::vector<nlohmann::json> lines;
  {
    std::istringstream in(testing::read_file(dir + "/out.jsonl"));
    std::string line;
    while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  }
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["prompt"], "Q: 1 + 1?\nA:");
  EXPECT_EQ(lines[0]["reference"], "2");
  EXPECT_EQ(lines[2]["prompt"], "a much longer prompt than the others");
  for (const auto& l : lines) {
    ASSERT_EQ(l["completions"].size(), 3u) << l.dump();
    for (const auto& c : l["completions"]) EXPECT_LE(c.get<std::string>().size(), 6u * 4);
  }
  // From a checkpoint, greedy: every sample of a prompt is the same text.
  CliResult run = cli("run " + config + " --output " + dir + "/run --log-level warn");
  ASSERT_EQ(run.code, 0) << run.output;
  CliResult g = cli("generate --checkpoint " + dir + "/run/checkpoints/s --input " + chat + " --output " + dir +
                    "/greedy.jsonl --n 2 --max-new-tokens 4 --temperature 0");
  ASSERT_EQ(g.code, 0) << g.output;
  std::istringstream in(testing::read_file(dir + "/greedy.jsonl"));
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    ASSERT_EQ(j["completions"].size(), 2u);
    EXPECT_EQ(j["completions"][0], j["completions"][1]);
    if (count == 0) {
      EXPECT_EQ(j["prompt"], "<|user|>\nhello\n<|assistant|>\n");  // the default chat template
    }
    ++count;
  }
  EXPECT_EQ(count, 2);
  const std::string before = testing::read_file(prompts);
  CliResult over = cli("generate --model-config " + config + " --input " + prompts + " --output " + prompts);
  EXPECT_EQ(over.code, 1);
  EXPECT_NE(over.output.find("is the input file"), std::string::npos) << over.output;
  EXPECT_EQ(testing::read_file(prompts), before);
  CliResult bad = cli("generate --input " + prompts + " --output " + dir + "/x.jsonl");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.output.find("exactly one of --model-config"), std::string::npos) << bad.output;
}

// --- the shipped LM config ----------------------------------------------------------------------

TEST(LmConfigTest, ShortRunHasFiniteDiagnosticsAndRejectedLogpsFall) {
  ExperimentConfig config = load_experiment(testing::source_path("configs/lm/arith.yaml"),
                                            {"stages.sft.steps=20", "stages.sft.batch_size=8", "stages.sft.log_every=10",
                                             "stages.dpo.steps=10", "stages.dpo.batch_size=8", "stages.dpo.log_every=1",
                                             "stages.dpo.data.max_records=64"});
  const std::string dir = testing::make_temp_dir("lm-arith");
  ExperimentRunner(config, dir).run();
  const auto sft = read_metrics(dir, "sft");
  ASSERT_EQ(sft.size(), 3u);
  EXPECT_LT(sft.back()["loss"].get<double>(), sft.front()["loss"].get<double>());
  const auto dpo = read_metrics(dir, "dpo");
  ASSERT_EQ(dpo.size(), 10u);
  for (const auto& r : dpo) {
    for (const char* key : {"loss", "logps/chosen", "logps/rejected", "grad/chosen_log10", "grad/rejected_log10"}) {
      ASSERT_TRUE(r.contains(key) && r[key].is_number()) << key << " in " << r.dump();
      EXPECT_TRUE(std::isfinite(r[key].get<double>())) << key;
    }
  }
  // mean over the first and last three rows: the batches differ, the trend does not
  auto mean = [&](size_t from, const char* key) {
    double s = 0;
    for (size_t i = from; i < from + 3; ++i) s += dpo[i][key].get<double>();
    return s / 3;
  };
  EXPECT_LT(mean(dpo.size() - 3, "logps/rejected"), mean(0, "logps/rejected") - 1.0);
  const auto status = read_json(dir + "/run.json");
  EXPECT_EQ(status["stages"][0]["data"]["format"], "prompt_completion");
  EXPECT_EQ(status["stages"][1]["data"]["format"], "standard");
}

}  // namespace
}  // namespace prefengine
