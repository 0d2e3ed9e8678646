#include "engine/loop/grading.h"

#include <spdlog/spdlog.h>

#include "prefengine/grader.h"

namespace prefengine {

std::vector<GradedText> grade_texts(const Grader& grader, const PromptRecord& prompt,
                                    const std::vector<Sample>& samples, PairCounts& counts) {
  std::vector<GradedText> out;
  out.reserve(samples.size());
  for (const Sample& sample : samples) {
    GradedText g;
    g.text = sample.text;
    GradeInput input{prompt.prompt_text, sample.text, prompt.reference};
    try {
      g.score = grader.grade(input).score;
    } catch (const std::exception& e) {
      if (counts.grade_errors == 0) spdlog::warn("{}: the grader refused a response: {}", prompt.source, e.what());
      g.score = grader.min_score();
      g.error = true;
      ++counts.grade_errors;
    }
    counts.score_sum += g.score;
    ++counts.samples;
    out.push_back(std::move(g));
  }
  return out;
}

PairChoice choose_pair(const std::vector<GradedText>& chosen_pool, const std::vector<GradedText>& rejected_pool) {
  PairChoice choice;
  for (const GradedText& g : chosen_pool) {
    if (!g.text.empty() && (choice.chosen == nullptr || g.score > choice.chosen->score)) choice.chosen = &g;
  }
  for (const GradedText& g : rejected_pool) {
    if (!g.text.empty() && (choice.rejected == nullptr || g.score < choice.rejected->score)) choice.rejected = &g;
  }
  if (choice.chosen == nullptr || choice.rejected == nullptr) {
    choice = PairChoice{};
    choice.drop = PairChoice::Drop::kEmpty;
  } else if (!(choice.chosen->score > choice.rejected->score)) {
    choice.drop = PairChoice::Drop::kTie;
  }
  return choice;
}

}  // namespace prefengine
