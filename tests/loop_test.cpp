// The closed loop: the pairs stage (sample n, grade, best and worst), ties, pairs as the data of a
// later pairwise stage, resume through a pairs stage, off-policy sides.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/data/stage_data.h"
#include "engine/data/tokenizer.h"
#include "engine/loop/grading.h"
#include "engine/loop/sampling.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/reward_source.h"
#include "engine/train/sequence_batch.h"
#include "prefengine/grader.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;
using testing::read_metrics;

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(testing::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

// The checksum grader's rule, computed here independently.
double checksum_score(const std::string& prompt, const std::string& response) {
  if (prompt.find("TIE") != std::string::npos) return 3;
  unsigned sum = 0;
  for (unsigned char c : response) sum += c;
  return 1 + sum % 5;
}

std::string prompts_file(const std::string& dir) {
  std::string text;
  for (int i = 0; i < 10; ++i) {
    text += "{\"prompt\": \"Q: " + std::to_string(i) + "+" + std::to_string(i) + "=\", \"reference\": \"" +
            std::to_string(2 * i) + "\"}\n";
  }
  text += "{\"prompt\": \"TIE 1\", \"reference\": \"x\"}\n{\"prompt\": \"TIE 2\", \"reference\": \"y\"}\n";
  return testing::write_file(dir + "/prompts.jsonl", text);
}

std::string loop_yaml(const std::string& prompts, const std::string& pairs_extra = "") {
  return std::string("name: loop\nseed: 5\nthreads: 1\nplugin_paths: [") + PREFENGINE_LOOP_PLUGIN_DIR + "]\n" +
         "tokenizer: {kind: byte}\n"
         "model: {plugin: transformer, vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,\n"
         "        num_attention_heads: 2, max_position_embeddings: 64}\n"
         "stages:\n"
         "  - {name: pairs, kind: pairs, data: {path: " + prompts + "}, grader: {plugin: checksum},\n"
         "     sampling: {n: 3, max_new_tokens: 6, temperature: 1.0}, batch_size: 4" + pairs_extra + "}\n"
         "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {from_stage: pairs},\n"
         "     optimizer: {lr: 1.0e-3}, batch_size: 2, steps: 3, log_every: 1}\n";
}

TEST(PairsStageTest, BestAndWorstOfGradedSamplesAndTiesDropped) {
  const std::string dir = testing::make_temp_dir("pairs");
  const std::string run = dir + "/run";
  fs::create_directories(run);
  ExperimentRunner(parse_experiment(loop_yaml(prompts_file(dir)), "loop.yaml"), run).run();
  const auto pairs = read_lines(run + "/pairs/pairs.jsonl");
  ASSERT_FALSE(pairs.empty());
  for (const auto& p : pairs) {
    const std::string prompt = p["prompt"];
    EXPECT_EQ(prompt.find("TIE"), std::string::npos) << "a prompt whose samples all tie was kept";
    ASSERT_EQ(p["scores"].size(), 3u);
    std::vector<double> scores = p["scores"];
    EXPECT_EQ(p["score_chosen"].get<double>(), *std::max_element(scores.begin(), scores.end()));
    EXPECT_EQ(p["score_rejected"].get<double>(), *std::min_element(scores.begin(), scores.end()));
    EXPECT_GT(p["score_chosen"].get<double>(), p["score_rejected"].get<double>());
    // The grader's rule on the written texts gives the written scores.
    EXPECT_EQ(checksum_score(prompt, p["chosen"]), p["score_chosen"].get<double>());
    EXPECT_EQ(checksum_score(prompt, p["rejected"]), p["score_rejected"].get<double>());
    EXPECT_EQ(p["sampling"]["n"], 3);
    EXPECT_TRUE(p.contains("reference"));
  }
  // Metrics: one row per step (12 prompts, 4 a step); kept + dropped = prompts.
  const auto rows = read_metrics(run, "pairs");
  ASSERT_EQ(rows.size(), 3u);
  double kept = 0, dropped = 0, prompts = 0;
  for (const auto& r : rows) {
    kept += r["pairs/kept"].get<double>();
    dropped += r["pairs/dropped_ties"].get<double>();
    prompts += r["pairs/prompts"].get<double>();
    EXPECT_FALSE(r.contains("loss"));  // no update in a pairs stage
  }
  EXPECT_EQ(prompts, 12);
  EXPECT_EQ(kept, static_cast<double>(pairs.size()));
  EXPECT_EQ(kept + dropped, 12);
  EXPECT_GE(dropped, 2);  // the two TIE prompts at least
  // The pairwise stage trained on the file.
  const auto status = nlohmann::json::parse(testing::read_file(run + "/run.json"));
  EXPECT_EQ(status["stages"][0]["pairs"]["kept"], pairs.size());
  EXPECT_EQ(status["stages"][1]["data"]["records"], pairs.size());
  EXPECT_EQ(read_metrics(run, "dpo").size(), 3u);
}

std::vector<GradedText> graded(const std::vector<std::pair<std::string, double>>& texts) {
  std::vector<GradedText> out;
  for (const auto& [text, score] : texts) out.push_back({text, score, false});
  return out;
}

TEST(PairsStageTest, AnEmptyResponseIsNeverASideOfAPair) {
  // The best and the worst non-empty texts, the first among equal scores.
  const auto pool = graded({{"a", 2}, {"", 5}, {"b", 4}, {"c", 4}, {"", 0}, {"d", 1}, {"e", 1}});
  PairChoice p = choose_pair(pool, pool);
  ASSERT_EQ(p.drop, PairChoice::Drop::kNone);
  EXPECT_EQ(p.chosen, &pool[2]);
  EXPECT_EQ(p.rejected, &pool[5]);
  // Off-policy: the rejected from the other pool.
  const auto other = graded({{"", -1}, {"x", 3}, {"y", 0}});
  p = choose_pair(pool, other);
  ASSERT_EQ(p.drop, PairChoice::Drop::kNone);
  EXPECT_EQ(p.chosen, &pool[2]);
  EXPECT_EQ(p.rejected, &other[2]);
  // Only empty texts on a side: dropped as empty, whatever the scores.
  EXPECT_EQ(choose_pair(graded({{"", 5}}), pool).drop, PairChoice::Drop::kEmpty);
  EXPECT_EQ(choose_pair(pool, graded({{"", 0}, {"", 1}})).drop, PairChoice::Drop::kEmpty);
  EXPECT_EQ(choose_pair(graded({}), pool).drop, PairChoice::Drop::kEmpty);
  // Non-empty texts that tie (here the empty text's better score does not count): a tie.
  EXPECT_EQ(choose_pair(graded({{"", 5}, {"a", 3}, {"b", 3}}), graded({{"c", 3}})).drop, PairChoice::Drop::kTie);
}

TEST(PairsStageTest, ResumeThroughAPairsStageEqualsAnUninterruptedRun) {
  const std::string dir = testing::make_temp_dir("pairs-resume");
  const std::string yaml = loop_yaml(prompts_file(dir), ", checkpoint_every: 1");
  const std::string whole = dir + "/whole", cut = dir + "/cut";
  fs::create_directories(whole);
  fs::create_directories(cut);
  ExperimentRunner(parse_experiment(yaml, "loop.yaml"), whole).run();
  ::setenv("PREFENGINE_STOP_AFTER_STEP", "2", 1);  // after the pairs stage's second step
  EXPECT_THROW(ExperimentRunner(parse_experiment(yaml, "loop.yaml"), cut).run(), std::runtime_error);
  ::unsetenv("PREFENGINE_STOP_AFTER_STEP");
  ExperimentRunner resumed(load_experiment(cut + "/config.yaml"), cut);
  resumed.set_resume(true);
  resumed.run();
  EXPECT_EQ(testing::read_file(cut + "/pairs/pairs.jsonl"), testing::read_file(whole + "/pairs/pairs.jsonl"));
  EXPECT_EQ(testing::read_file(cut + "/metrics.jsonl"), testing::read_file(whole + "/metrics.jsonl"));
}

TEST(PairsStageTest, ChosenFromTheReferenceAndRejectedFromAnotherCheckpoint) {
  const std::string dir = testing::make_temp_dir("pairs-off");
  const std::string prompts = prompts_file(dir);
  const std::string first = dir + "/first";
  fs::create_directories(first);
  ExperimentRunner(parse_experiment(loop_yaml(prompts), "loop.yaml"), first).run();
  const std::string run = dir + "/run";
  fs::create_directories(run);
  ExperimentRunner(parse_experiment(loop_yaml(prompts, ", chosen_from: reference, rejected_from: " + first +
                                                           "/checkpoints/dpo"), "loop.yaml"), run).run();
  const auto pairs = read_lines(run + "/pairs/pairs.jsonl");
  ASSERT_FALSE(pairs.empty());
  for (const auto& p : pairs) {
    EXPECT_EQ(p["chosen"], p["reference"]);
    ASSERT_EQ(p["rejected_scores"].size(), 3u);
    std::vector<double> scores = p["rejected_scores"];
    EXPECT_EQ(p["score_rejected"].get<double>(), *std::min_element(scores.begin(), scores.end()));
    EXPECT_EQ(checksum_score(p["prompt"], p["reference"]), p["score_chosen"].get<double>());
  }
}

TEST(PairsStageTest, ConfigErrorsNameTheKey) {
  const std::string dir = testing::make_temp_dir("pairs-bad");
  const std::string prompts = prompts_file(dir);
  auto error_of = [&](const std::string& yaml) -> std::string {
    try {
      ExperimentConfig config = parse_experiment(yaml, "bad.yaml");
      validate_experiment(config);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "no error";
  };
  const std::string yaml = loop_yaml(prompts);
  auto with = [&](const std::string& from, const std::string& to) {
    const size_t at = yaml.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return at == std::string::npos ? yaml : std::string(yaml).replace(at, from.size(), to);
  };
  EXPECT_EQ(error_of(yaml), "no error");
  std::string e = error_of(with("grader: {plugin: checksum},", ""));
  EXPECT_NE(e.find("grader: expected a grader plugin"), std::string::npos) << e;
  e = error_of(with("n: 3", "n: 1"));
  EXPECT_NE(e.find("sampling.n: expected at least 2"), std::string::npos) << e;
  e = error_of(with("from_stage: pairs", "from_stage: nope"));
  EXPECT_NE(e.find("data.from_stage: expected the name of an earlier `pairs` stage, got 'nope'"), std::string::npos) << e;
  e = error_of(with("batch_size: 4", "batch_size: 4, rejected_from: /nonexistent/ckpt"));
  EXPECT_NE(e.find("rejected_from: expected `policy` or a checkpoint folder"), std::string::npos) << e;
  e = error_of(with("grader: {plugin: checksum}", "grader: {plugin: nosuchgrader}"));
  EXPECT_NE(e.find("unknown grader plugin"), std::string::npos) << e;
  // eval.from_stage: an earlier pairs stage, and not with eval.path
  EXPECT_EQ(error_of(with("steps: 3,", "steps: 3, eval: {from_stage: pairs},")), "no error");
  e = error_of(with("steps: 3,", "steps: 3, eval: {from_stage: dpo},"));
  EXPECT_NE(e.find("eval.from_stage: expected the name of an earlier `pairs` stage, got 'dpo'"), std::string::npos) << e;
  e = error_of(with("steps: 3,", "steps: 3, eval: {from_stage: pairs, path: " + prompts + "},"));
  EXPECT_NE(e.find("eval.from_stage: expected either eval.path or eval.from_stage, not both, got both"), std::string::npos) << e;
  const std::string two_dpo = yaml + "  - {name: dpo2, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {from_stage: pairs},\n"
                                     "     optimizer: {lr: 1.0e-3}, batch_size: 2, steps: 1, eval: {from_stage: dpo}}\n";
  e = error_of(two_dpo);
  EXPECT_NE(e.find("stages[2].eval.from_stage: expected an earlier `pairs` stage, got 'dpo' (kind pairwise)"), std::string::npos) << e;
}

TEST(PairsStageTest, EvalFromStageScoresThePairsThatStageWrote) {
  // The held-out pairs of a later stage's eval are the file the pairs stage wrote in this run: the
  // same eval rows as a second run (same seed, same draws) pointing eval.path at the first run's file.
  const std::string dir = testing::make_temp_dir("pairs-eval");
  const std::string yaml = loop_yaml(prompts_file(dir));
  const std::string from = "steps: 3,";
  auto with_eval = [&](const std::string& eval) {
    return std::string(yaml).replace(yaml.find(from), from.size(), "steps: 3, eval: {" + eval + ", every: 1},");
  };
  const std::string a = dir + "/a", b = dir + "/b";
  fs::create_directories(a);
  fs::create_directories(b);
  ExperimentRunner(parse_experiment(with_eval("from_stage: pairs"), "loop.yaml"), a).run();
  ExperimentRunner(parse_experiment(with_eval("path: " + a + "/pairs/pairs.jsonl"), "loop.yaml"), b).run();
  EXPECT_EQ(testing::read_file(a + "/pairs/pairs.jsonl"), testing::read_file(b + "/pairs/pairs.jsonl"));
  const auto rows_a = read_metrics(a, "dpo"), rows_b = read_metrics(b, "dpo");
  ASSERT_EQ(rows_a.size(), 3u);
  ASSERT_EQ(rows_b.size(), 3u);
  for (size_t i = 0; i < rows_a.size(); ++i) {
    ASSERT_TRUE(rows_a[i].contains("eval/pair_accuracy")) << rows_a[i].dump();
    for (const char* key : {"eval/pair_accuracy", "eval/logps_chosen_per_token", "eval/logps_rejected_per_token"}) {
      EXPECT_EQ(rows_a[i][key].get<double>(), rows_b[i][key].get<double>()) << key << " row " << i;
    }
  }
}

TEST(GraderRewardTest, TheScoreOfTheDecodedResponseMappedOntoMinusOneToOne) {
  ExperimentConfig config = parse_experiment(loop_yaml("unused.jsonl"), "loop.yaml");
  auto make = [&](double center, double half_range) {
    auto loader = std::make_unique<PluginLoader>(std::vector<std::string>{PREFENGINE_LOOP_PLUGIN_DIR});
    GraderOptions options;
    options.plugin = "checksum";
    auto grader = create_grader(*loader, options);
    return GraderRewardSource(std::move(loader), std::move(grader), "checksum",
                              make_experiment_tokenizer(config, "test"), center, half_range);
  };
  std::vector<PromptRecord> prompts(2);
  prompts[0].prompt = {256, 81};  // BOS "Q"
  prompts[0].prompt_text = "Q";
  prompts[1].prompt = {256, 84};
  prompts[1].prompt_text = "TIE";
  const std::vector<int64_t> ab = {97, 98}, ac = {97, 99, 257};  // "ab"; "ac" then EOS
  const SequenceTensors rows = pack_sequences({{&prompts[0].prompt, &ab}, {&prompts[0].prompt, &ac},
                                               {&prompts[1].prompt, &ab}});
  const at::Tensor index = at::tensor(std::vector<int64_t>{0, 0, 1}, at::kLong);
  // The checksum grader: 1 + (byte sum mod 5); 3 for a prompt with TIE. Its range 1-5: (s - 3) / 2.
  const double ab_score = checksum_score("Q", "ab"), ac_score = checksum_score("Q", "ac");
  GraderRewardSource source = make(std::nan(""), std::nan(""));
  EXPECT_EQ(source.center(), 3);
  EXPECT_EQ(source.half_range(), 2);
  const at::Tensor r = source.score(rows, index, prompts);
  ASSERT_EQ(r.numel(), 3);
  EXPECT_FLOAT_EQ(r[0].item<float>(), static_cast<float>((ab_score - 3) / 2));
  EXPECT_FLOAT_EQ(r[1].item<float>(), static_cast<float>((ac_score - 3) / 2));
  EXPECT_FLOAT_EQ(r[2].item<float>(), 0.0f);
  const at::Tensor custom = make(1, 4).score(rows, index, prompts);
  EXPECT_FLOAT_EQ(custom[0].item<float>(), static_cast<float>((ab_score - 1) / 4));
}

TEST(GraderRewardTest, PpoOnTextPromptsRewardedByAGrader) {
  const std::string dir = testing::make_temp_dir("ppo-grader");
  const std::string prompts = prompts_file(dir);
  const std::string yaml = std::string("name: ppo-grader\nseed: 5\nthreads: 1\nplugin_paths: [") +
                           PREFENGINE_LOOP_PLUGIN_DIR + "]\ntokenizer: {kind: byte}\n"
                           "model: {plugin: transformer, vocab_size: 259, hidden_size: 32, intermediate_size: 64, "
                           "num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64}\n"
                           "stages:\n  - {name: ppo, kind: ppo, loss: {plugin: ppo}, reward: {grader: checksum},\n"
                           "     data: {path: " + prompts + "}, max_new_tokens: 4, batch_size: 4, steps: 2, log_every: 1}\n";
  const std::string run = dir + "/run";
  fs::create_directories(run);
  ExperimentRunner(parse_experiment(yaml, "ppo.yaml"), run).run();
  const auto rows = read_metrics(run, "ppo");
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) {
    const double mean = row["ppo/mean_score"];
    EXPECT_GE(mean, -1.0);
    EXPECT_LE(mean, 1.0);
  }
  EXPECT_NE(testing::read_file(run + "/run.log").find("grader checksum (reward = (score - 3"), std::string::npos);
}

TEST(SamplingTest, InvalidUtf8BecomesReplacementCharacters) {
  EXPECT_EQ(valid_utf8("ok \xC3\xA9"), "ok \xC3\xA9");                        // é kept
  EXPECT_EQ(valid_utf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");                    // a stray byte
  EXPECT_EQ(valid_utf8("\xE4\xB8"), "\xEF\xBF\xBD\xEF\xBF\xBD");              // a cut 3-byte sequence
  EXPECT_EQ(valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");              // overlong '/'
  EXPECT_EQ(valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(valid_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");              // an emoji kept
}

}  // namespace
}  // namespace prefengine
