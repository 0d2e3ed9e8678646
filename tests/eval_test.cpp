// Evaluation inside a stage (engine/train/evaluation.h): the pass@k estimator against its
// definition, the metrics recomputed from the saved answers with the grader's rule, the reference
// of the dispersion measure, held-out text pairs, resume, and config errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <boost/filesystem.hpp>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/train/evaluation.h"
#include "engine/train/experiment_runner.h"
#include "test_util.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;
using testing::read_metrics;

// pass@k by its definition: of all k-subsets of n samples (c of them correct), the share that
// holds at least one correct sample; counted by enumerating the subsets.
double pass_at_k_by_enumeration(int n, int c, int k) {
  int64_t subsets = 0, hits = 0;
  std::vector<int> pick;
  std::function<void(int)> walk = [&](int next) {
    if (static_cast<int>(pick.size()) == k) {
      ++subsets;
      bool any = false;
      for (int i : pick) any = any || i < c;  // samples 0..c-1 are the correct ones
      hits += any ? 1 : 0;
      return;
    }
    for (int i = next; i < n; ++i) {
      pick.push_back(i);
      walk(i + 1);
      pick.pop_back();
    }
  };
  walk(0);
  return static_cast<double>(hits) / static_cast<double>(subsets);
}

TEST(PassAtKTest, EqualsTheShareOfSubsetsWithACorrectSample) {
  for (int n = 1; n <= 10; ++n) {
    for (int c = 0; c <= n; ++c) {
      for (int k = 1; k <= n; ++k) {
        EXPECT_NEAR(pass_at_k(n, c, k), pass_at_k_by_enumeration(n, c, k), 1e-12) << "n=" << n << " c=" << c << " k=" << k;
      }
    }
  }
}

TEST(PassAtKTest, LargeNAgainstLogBinomials) {
  // 1 - C(n-c, k) / C(n, k) with the binomials from lgamma: no overflow at n = 500.
  auto log_binomial = [](double a, double b) { return std::lgamma(a + 1) - std::lgamma(b + 1) - std::lgamma(a - b + 1); };
  for (const auto& [n, c, k] : std::vector<std::array<int, 3>>{{500, 3, 10}, {500, 100, 50}, {200, 1, 1}, {64, 7, 32}}) {
    const double expected = 1 - std::exp(log_binomial(n - c, k) - log_binomial(n, k));
    EXPECT_NEAR(pass_at_k(n, c, k), expected, 1e-9) << n << " " << c << " " << k;
  }
  EXPECT_EQ(pass_at_k(8, 5, 4), 1.0);  // n - c < k: every 4-subset holds a correct one
  EXPECT_EQ(pass_at_k(8, 0, 8), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(8, 2, 1), 0.25);  // pass@1 is the share of correct samples
  EXPECT_THROW(pass_at_k(4, 5, 1), std::invalid_argument);
  EXPECT_THROW(pass_at_k(4, 1, 5), std::invalid_argument);
}

TEST(PassAtKTest, CorrectThresholdIsThreeQuartersUpTheGradersRange) {
  EXPECT_DOUBLE_EQ(correct_threshold(std::nan(""), 1, 5), 4);  // the math rubric's "4 & 5 points"
  EXPECT_DOUBLE_EQ(correct_threshold(std::nan(""), 0, 1), 0.75);
  EXPECT_DOUBLE_EQ(correct_threshold(5, 1, 5), 5);
}

// The checksum grader's rule (tests/plugins/checksum_grader.cpp), computed here independently.
double checksum_score(const std::string& response) {
  unsigned sum = 0;
  for (unsigned char c : response) sum += c;
  return 1 + sum % 5;
}

std::vector<nlohmann::json> read_lines(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(testing::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

struct EvalFiles {
  std::string prompts, pairs, sft;
};

EvalFiles eval_files(const std::string& dir) {
  EvalFiles f;
  std::string prompts, pairs, sft;
  for (int i = 0; i < 6; ++i) {
    const std::string q = "Q: " + std::to_string(i) + "+" + std::to_string(i + 1) + "=";
    prompts += "{\"prompt\": \"" + q + "\", \"reference\": \"" + std::to_string(2 * i + 1) + "\"}\n";
    pairs += "{\"prompt\": \"" + q + "\", \"chosen\": \" " + std::to_string(2 * i + 1) + "\", \"rejected\": \" " +
             std::to_string(2 * i + 7) + " or so\"}\n";
    sft += "{\"prompt\": \"" + q + "\", \"completion\": \" " + std::to_string(2 * i + 1) + "\"}\n";
  }
  f.sft = testing::write_file(dir + "/sft.jsonl", sft);
  f.prompts = testing::write_file(dir + "/eval_prompts.jsonl", prompts);
  f.pairs = testing::write_file(dir + "/eval_pairs.jsonl", pairs);  // text pairs
  return f;
}

std::string eval_yaml(const std::string& stages) {
  return std::string("name: evaltest\nseed: 3\nthreads: 1\nplugin_paths: [") + PREFENGINE_LOOP_PLUGIN_DIR + "]\n" +
         "tokenizer: {kind: byte}\n"
         "model: {plugin: transformer, vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1,\n"
         "        num_attention_heads: 2, max_position_embeddings: 64}\n"
         "stages:\n" + stages;
}

std::string eval_block(const EvalFiles& f, const std::string& extra = "") {
  return "eval: {prompts: " + f.prompts + ", path: " + f.pairs +
         ", grader: checksum, sampling: {n: 4, max_new_tokens: 5, temperature: 1.0, batch_size: 4}, pass_at: [1, 2, 4]" +
         extra + "}";
}

TEST(EvalTest, MetricsEqualTheGradersRuleOnTheSavedAnswers) {
  const std::string dir = testing::make_temp_dir("eval");
  const EvalFiles f = eval_files(dir);
  const std::string run = dir + "/run";
  fs::create_directories(run);
  const std::string yaml = eval_yaml("  - {name: sft, kind: sft, data: {path: " + f.sft +
                                            "}, optimizer: {lr: 1.0e-2}, batch_size: 2, steps: 5, log_every: 10,\n"
                                            "     " + eval_block(f, ", every: 2") + "}\n");
  ExperimentRunner(parse_experiment(yaml, "eval.yaml"), run).run();
  const auto rows = read_metrics(run, "sft");
  std::vector<int64_t> evaluated;
  for (const auto& r : rows) {
    if (r.contains("eval/score_mean")) evaluated.push_back(r["step"]);
  }
  EXPECT_EQ(evaluated, (std::vector<int64_t>{1, 2, 4, 5}));  // step 1, every 2, the stage's end
  for (const auto& r : rows) {
    if (!r.contains("eval/score_mean")) continue;
    const std::string file = run + "/eval/sft-" + std::to_string(r["step"].get<int64_t>()) + ".jsonl";
    const auto answers = read_lines(file);
    ASSERT_EQ(answers.size(), 24u) << file;  // 6 prompts x 4 samples
    double score = 0, correct = 0, length = 0, kl = 0;
    std::map<std::string, int> right_of_prompt;
    for (const auto& a : answers) {
      const double s = checksum_score(a["response"]);
      EXPECT_EQ(a["score"].get<double>(), s);
      score += s;
      correct += s >= 4 ? 1 : 0;  // the default threshold on a 1-5 grader
      right_of_prompt[a["prompt"]] += s >= 4 ? 1 : 0;
      length += a["tokens"].get<double>() - (a["stopped"].get<bool>() ? 1 : 0);
      kl += a["logps_per_token"].get<double>() - a["ref_logps_per_token"].get<double>();
      EXPECT_TRUE(a.contains("reference"));
    }
    ASSERT_EQ(right_of_prompt.size(), 6u);
    EXPECT_NEAR(r["eval/score_mean"].get<double>(), score / 24, 1e-12);
    EXPECT_NEAR(r["eval/accuracy"].get<double>(), correct / 24, 1e-12);
    EXPECT_NEAR(r["eval/length_mean"].get<double>(), length / 24, 1e-12);
    EXPECT_NEAR(r["eval/sample_kl_per_token"].get<double>(), kl / 24, 1e-9);
    for (int k : {1, 2, 4}) {
      double pass = 0;
      for (const auto& [prompt, c] : right_of_prompt) pass += pass_at_k_by_enumeration(4, c, k);
      EXPECT_NEAR(r["eval/pass@" + std::to_string(k)].get<double>(), pass / 6, 1e-12) << k;
    }
    // Held-out text pairs: per-token log-probs, negative, and no pairwise accuracy in an sft stage.
    EXPECT_LT(r["eval/logps_chosen_per_token"].get<double>(), 0);
    EXPECT_LT(r["eval/logps_rejected_per_token"].get<double>(), 0);
    EXPECT_FALSE(r.contains("eval/pair_accuracy"));
  }
  // The policy moved away from its start: the answers' log-probs differ from the reference's.
  EXPECT_NE(rows.back()["eval/sample_kl_per_token"].get<double>(), 0.0);
}

TEST(EvalTest, ANoUpdateStageHasZeroSampleKlAndThePairsStageMetricsMatch) {
  // A pairs stage makes no update: the policy is its reference, so every answer's log-prob under
  // both is the same and the dispersion measure is exactly 0; the held-out per-token log-probs
  // equal the next stage's training log-probs of the same pairs before its first update.
  const std::string dir = testing::make_temp_dir("eval-kl0");
  const EvalFiles f = eval_files(dir);
  const std::string run = dir + "/run";
  fs::create_directories(run);
  const std::string yaml = eval_yaml(
      "  - {name: pairs, kind: pairs, data: {path: " + f.prompts + "}, grader: {plugin: checksum},\n"
         "     sampling: {n: 2, max_new_tokens: 4}, batch_size: 6, " + eval_block(f) + "}\n"
         "  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: " + f.pairs + ", shuffle: false},\n"
         "     optimizer: {lr: 1.0e-3}, batch_size: 6, steps: 1, " + "eval: {path: " + f.pairs + "}}\n");
  ExperimentRunner(parse_experiment(yaml, "eval.yaml"), run).run();
  const auto pairs_rows = read_metrics(run, "pairs");
  ASSERT_EQ(pairs_rows.size(), 1u);
  const auto& r = pairs_rows.front();
  EXPECT_EQ(r["eval/sample_kl_per_token"].get<double>(), 0.0);
  EXPECT_EQ(r["eval/sample_logps_per_token"].get<double>(), r["eval/sample_ref_logps_per_token"].get<double>());
  const auto dpo = read_metrics(run, "dpo");
  ASSERT_EQ(dpo.size(), 1u);
  EXPECT_NEAR(dpo[0]["logps/chosen_per_token"].get<double>(), r["eval/logps_chosen_per_token"].get<double>(), 1e-5);
  EXPECT_NEAR(dpo[0]["logps/rejected_per_token"].get<double>(), r["eval/logps_rejected_per_token"].get<double>(), 1e-5);
  // In a pairwise stage the held-out pairs also give the preference accuracy and the loss.
  EXPECT_TRUE(dpo[0].contains("eval/pair_accuracy"));
  EXPECT_TRUE(dpo[0].contains("eval/loss"));
}

TEST(EvalTest, ResumedRunsEvaluateTheSame) {
  const std::string dir = testing::make_temp_dir("eval-resume");
  const EvalFiles f = eval_files(dir);
  const std::string yaml = eval_yaml("  - {name: sft, kind: sft, data: {path: " + f.sft +
                                            "}, optimizer: {lr: 1.0e-2}, batch_size: 2, steps: 4, log_every: 1,\n"
                                            "     checkpoint_every: 1, " + eval_block(f, ", every: 1") + "}\n");
  const std::string whole = dir + "/whole", cut = dir + "/cut";
  fs::create_directories(whole);
  fs::create_directories(cut);
  ExperimentRunner(parse_experiment(yaml, "eval.yaml"), whole).run();
  ::setenv("PREFENGINE_STOP_AFTER_STEP", "2", 1);
  EXPECT_THROW(ExperimentRunner(parse_experiment(yaml, "eval.yaml"), cut).run(), std::runtime_error);
  ::unsetenv("PREFENGINE_STOP_AFTER_STEP");
  ExperimentRunner resumed(load_experiment(cut + "/config.yaml"), cut);
  resumed.set_resume(true);
  resumed.run();
  EXPECT_EQ(testing::read_file(cut + "/metrics.jsonl"), testing::read_file(whole + "/metrics.jsonl"));
  EXPECT_EQ(testing::read_file(cut + "/eval/sft-4.jsonl"), testing::read_file(whole + "/eval/sft-4.jsonl"));
}

TEST(EvalTest, ConfigAndInputErrorsNameTheKeyAndTheFile) {
  const std::string dir = testing::make_temp_dir("eval-errors");
  const EvalFiles f = eval_files(dir);
  auto error_of = [&](const std::string& stage_line) -> std::string {
    try {
      const auto config = parse_experiment(eval_yaml(stage_line), "eval.yaml");
      validate_experiment(config);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "";
  };
  const std::string sft = "  - {name: sft, kind: sft, data: {path: " + f.sft + "}, steps: 1, ";
  EXPECT_NE(error_of(sft + "eval: {every: 2}}\n").find("eval: expected eval.path"), std::string::npos);
  EXPECT_NE(error_of(sft + "eval: {prompts: " + f.prompts + "}}\n").find("eval.grader: expected a grader plugin"),
            std::string::npos);
  EXPECT_NE(error_of(sft + "eval: {prompts: " + f.prompts + ", grader: checksum, pass_at: [3]}}\n")
                .find("eval.pass_at: expected whole numbers from 1 to eval.sampling.n (1)"),
            std::string::npos);
  EXPECT_NE(error_of(sft + "eval: {path: " + f.pairs + ", grader: checksum}}\n").find("eval.grader: expected eval.prompts"),
            std::string::npos);
  const std::string bad = testing::write_file(dir + "/bad_prompts.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": 7}\n");
  const std::string message = error_of(sft + "eval: {prompts: " + bad + ", grader: checksum}}\n");
  EXPECT_NE(message.find("eval.yaml:"), std::string::npos) << message;
  EXPECT_NE(message.find("stages[0].eval: prompts: " + bad + ":2"), std::string::npos) << message;
  EXPECT_NE(error_of(sft + "eval: {prompts: " + f.prompts + ", grader: no_such_grader}}\n").find("no_such_grader"),
            std::string::npos);
  const std::string missing = error_of(sft + "eval: {path: " + dir + "/missing.jsonl}}\n");
  EXPECT_NE(missing.find("missing.jsonl"), std::string::npos) << missing;
}


TEST(EvalTest, AnEvalBlockDoesNotChangeWhatTheRunDraws) {
  // The pairs stage samples from the run's generator: its pairs are the same whether or not the
  // stage before it evaluates (the evaluation has its own stream and restores the run's).
  const std::string dir = testing::make_temp_dir("eval-draws");
  const EvalFiles f = eval_files(dir);
  auto pairs_of = [&](const std::string& eval) {
    const std::string run = dir + "/run" + std::to_string(eval.size());
    fs::create_directories(run);
    const std::string yaml = eval_yaml("  - {name: sft, kind: sft, data: {path: " + f.sft +
                                       "}, optimizer: {lr: 1.0e-2}, batch_size: 2, steps: 3" + eval + "}\n"
                                       "  - {name: pairs, kind: pairs, data: {path: " + f.prompts +
                                       "}, grader: {plugin: checksum}, sampling: {n: 3, max_new_tokens: 6}, batch_size: 6}\n");
    ExperimentRunner(parse_experiment(yaml, "eval.yaml"), run).run();
    return testing::read_file(run + "/pairs/pairs.jsonl");
  };
  const std::string plain = pairs_of("");
  EXPECT_FALSE(plain.empty());
  EXPECT_EQ(pairs_of(", " + eval_block(f, ", every: 1")), plain);
}

// configs/lm/onpolicy.yaml, shrunk to seconds: sft -> pairs (math grader) -> dpo with eval. The
// shrunk policy rarely writes a gradable answer, so its chosen side is the prompt's reference
// (the paper's scenario 2), which keeps pairs in the file.
TEST(EvalTest, TheOnPolicyExampleRunsShrunk) {
  const std::string run = testing::make_temp_dir("onpolicy");
  ExperimentConfig config = load_experiment(
      testing::source_path("configs/lm/onpolicy.yaml"),
      {"threads=1", "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
       "model.num_attention_heads=2", "stages.sft.steps=10", "stages.pairs.data.max_records=16",
       "stages.pairs.batch_size=8", "stages.pairs.sampling.max_new_tokens=8", "stages.pairs.chosen_from=reference",
       "stages.dpo.epochs=1", "stages.dpo.batch_size=4", "stages.dpo.eval.max_prompts=4",
       "stages.dpo.eval.max_pairs=8", "stages.dpo.eval.every=2", "stages.dpo.eval.sampling.max_new_tokens=8"});
  // Relative data paths in the config are the repository's.
  for (auto& stage : config.stages) {
    if (!stage.data.path.empty()) stage.data.path = testing::source_path(stage.data.path);
    if (!stage.eval.path.empty()) stage.eval.path = testing::source_path(stage.eval.path);
    if (!stage.eval.prompts.empty()) stage.eval.prompts = testing::source_path(stage.eval.prompts);
  }
  ExperimentRunner(config, run).run();
  const auto pairs = read_lines(run + "/pairs/pairs.jsonl");
  ASSERT_FALSE(pairs.empty());
  for (const auto& p : pairs) {
    EXPECT_EQ(p["chosen"], p["reference"]);
    std::vector<double> scores = p["scores"];
    EXPECT_EQ(p["score_rejected"].get<double>(), *std::min_element(scores.begin(), scores.end()));
    EXPECT_GT(p["score_chosen"].get<double>(), p["score_rejected"].get<double>());
  }
  const auto dpo = read_metrics(run, "dpo");
  ASSERT_FALSE(dpo.empty());
  const int64_t last = dpo.back()["step"];
  for (const auto& r : dpo) {
    const int64_t step = r["step"];
    if (step != 1 && step % 2 != 0 && step != last) continue;
    for (const char* key : {"eval/score_mean", "eval/accuracy", "eval/pass@1", "eval/pass@4", "eval/length_mean",
                            "eval/logps_chosen_per_token", "eval/pair_accuracy", "eval/sample_kl_per_token"}) {
      EXPECT_TRUE(r.contains(key)) << key << " at step " << step;
    }
    EXPECT_EQ(read_lines(run + "/eval/dpo-" + std::to_string(step) + ".jsonl").size(), 16u);  // 4 prompts x 4
  }
  EXPECT_TRUE(dpo.front().contains("logps/chosen_per_token"));
  EXPECT_TRUE(dpo.front().contains("dispersion/off_data_per_token"));
}

}  // namespace
}  // namespace prefengine
