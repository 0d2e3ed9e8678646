// PPO rewarded by the math grader raises the score on a tiny arithmetic task, end to end through
// the `prefengine` binary: configs/lm/ppo_math.yaml (an sft stage that teaches only the answer
// format, then a ppo stage with reward: {grader: math}) on data this test writes, then greedy
// answers from each stage's checkpoint (`prefengine generate --temperature 0`) graded by
// `prefengine grade --grader math`, which the stages' own eval/score_mean must equal.
#include <gtest/gtest.h>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace prefengine {
namespace {

testing::CommandResult cli(const std::string& args) {
  return testing::run_shell(std::string(PREFENGINE_CLI) + " " + args + " 2>&1");
}

// The task of configs/lm/data/make_ppo_math.py, written here the same way: "a+b=" for a in 0..4,
// b in 0..1 (answers 0..5; no answer is right for more than 2 of the 10 prompts, so a policy that
// ignores the prompt stays near chance); SFT rows pair every prompt with EVERY answer in 0..5
// once, so the sft stage learns "one digit, then EOS" and nothing about which digit is right.
struct Task {
  std::string prompts, sft;
};

Task write_task(const std::string& dir) {
  std::string prompts, sft;
  for (int a = 0; a <= 4; ++a) {
    for (int b = 0; b <= 1; ++b) {
      const std::string prompt = std::to_string(a) + "+" + std::to_string(b) + "=";
      prompts += nlohmann::json({{"prompt", prompt}, {"reference", std::to_string(a + b)}}).dump() + "\n";
      for (int d = 0; d <= 5; ++d) {
        sft += nlohmann::json({{"prompt", prompt}, {"completion", std::to_string(d)}}).dump() + "\n";
      }
    }
  }
  return {testing::write_file(dir + "/prompts.jsonl", prompts), testing::write_file(dir + "/sft.jsonl", sft)};
}

struct Graded {
  double mean_score = 0;  // from grade's summary line ("summary: mean_score=X ...")
  int bare_digits = 0;    // answers that are one digit, nothing else (the format SFT teaches)
  int answers = 0;
};

// Greedy answers of a stage's checkpoint to every prompt, graded by the math grader.
Graded greedy_answers_graded(const std::string& run, const std::string& stage, const std::string& prompts) {
  const std::string samples = run + "/greedy_" + stage + ".jsonl", records = run + "/records_" + stage + ".jsonl";
  const auto gen = cli("generate --checkpoint " + run + "/checkpoints/" + stage + " --input " + prompts +
                       " --output " + samples + " --temperature 0 --max-new-tokens 2 --threads 1");
  EXPECT_EQ(gen.code, 0) << gen.output;
  // generate writes {prompt, reference, completions}; grade reads {prompt, response, reference}.
  Graded out;
  std::string text;
  std::istringstream in(testing::read_file(samples));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    const std::string response = row["completions"][0];
    out.answers += 1;
    out.bare_digits += response.size() == 1 && response[0] >= '0' && response[0] <= '9';
    text += nlohmann::json({{"prompt", row["prompt"]}, {"response", response}, {"reference", row["reference"]}}).dump() +
            "\n";
  }
  testing::write_file(records, text);
  const auto graded = cli("grade --grader math --input " + records + " --output " + run + "/graded_" + stage + ".jsonl");
  EXPECT_EQ(graded.code, 0) << graded.output;
  const size_t at = graded.output.find("summary: mean_score=");
  EXPECT_NE(at, std::string::npos) << graded.output;
  if (at != std::string::npos) out.mean_score = std::stod(graded.output.substr(at + 20));
  return out;
}

TEST(PpoMathTest, PpoRewardedByTheMathGraderRaisesTheGreedyScore) {
  const std::string dir = testing::make_temp_dir("ppo-math");
  const Task task = write_task(dir);
  const std::string run = dir + "/run";
  const auto result = cli("run " + testing::source_path("configs/lm/ppo_math.yaml") + " --output " + run +
                          " --set stages.sft.data.path=" + task.sft + " --set stages.ppo.data.path=" + task.prompts +
                          " --set stages.sft.eval.prompts=" + task.prompts + " --set stages.ppo.eval.prompts=" + task.prompts);
  ASSERT_EQ(result.code, 0) << result.output;

  const Graded sft = greedy_answers_graded(run, "sft", task.prompts);
  const Graded ppo = greedy_answers_graded(run, "ppo", task.prompts);
  std::cout << "greedy answers graded by math (mean score, 1-5): after sft " << sft.mean_score << " ("
            << sft.bare_digits << "/" << sft.answers << " bare digits), after ppo " << ppo.mean_score << " ("
            << ppo.bare_digits << "/" << ppo.answers << " bare digits)\n";
  ASSERT_EQ(sft.answers, 10);
  // SFT taught the format: each answer is one digit, so the grades below compare answers.
  EXPECT_EQ(sft.bare_digits, sft.answers);
  // The rubric scores a bare right answer 4 and a wrong one 1: +0.5 is a sixth of the prompts
  // more answered right.
  EXPECT_GT(ppo.mean_score, sft.mean_score + 0.5) << "greedy mean score after sft " << sft.mean_score
                                                  << ", after ppo " << ppo.mean_score;

  // The stages' own evaluation (greedy answers graded in the engine) gives the same scores as the
  // generate + grade path above, and shows the rise.
  const auto sft_rows = testing::read_metrics(run, "sft");
  const auto ppo_rows = testing::read_metrics(run, "ppo");
  ASSERT_TRUE(sft_rows.back().contains("eval/score_mean"));
  ASSERT_TRUE(ppo_rows.back().contains("eval/score_mean"));
  const double sft_eval = sft_rows.back()["eval/score_mean"].get<double>();
  const double ppo_eval = ppo_rows.back()["eval/score_mean"].get<double>();
  std::cout << "eval/score_mean: after sft " << sft_eval << ", after ppo " << ppo_eval << "\n";
  EXPECT_NEAR(sft_eval, sft.mean_score, 1e-6);
  EXPECT_NEAR(ppo_eval, ppo.mean_score, 1e-6);
  EXPECT_GT(ppo_eval, sft_eval + 0.5);
  EXPECT_GT(ppo_rows.back()["eval/accuracy"].get<double>(), sft_rows.back()["eval/accuracy"].get<double>());

  // The rollouts' mapped reward (+0.5 right, -1 wrong) rises too, the last tenth of the ppo rows
  // against the first: +0.25 is a sixth of the rollouts more right.
  std::vector<double> scores;
  for (const auto& row : testing::read_metrics(run, "ppo")) scores.push_back(row["ppo/mean_score"].get<double>());
  ASSERT_GE(scores.size(), 10u);
  const size_t tenth = scores.size() / 10;
  double first = 0, last = 0;
  for (size_t i = 0; i < tenth; ++i) {
    first += scores[i] / static_cast<double>(tenth);
    last += scores[scores.size() - 1 - i] / static_cast<double>(tenth);
  }
  EXPECT_GT(last, first + 0.25) << "ppo/mean_score, mean of the first tenth of the rows " << first << ", of the last " << last;
}

}  // namespace
}  // namespace prefengine
