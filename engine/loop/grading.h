#pragma once
// Grading sampled responses with a grader plugin: what the pairs stage, evaluation by generation
// and grader rewards share.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/records.h"
#include "engine/loop/sampling.h"

namespace prefengine {

class Grader;

struct GradedText {
  std::string text;
  double score = 0;
  bool error = false;  // the grader refused the input: scored its min_score()
};

// Counts of one step of pair building.
struct PairCounts {
  int64_t prompts = 0;       // prompts sampled
  int64_t kept = 0;          // pairs written
  int64_t dropped_ties = 0;  // prompts whose chosen did not score above the rejected
  int64_t dropped_empty = 0; // prompts without a non-empty response for a side
  int64_t samples = 0;       // responses graded
  int64_t grade_errors = 0;  // responses the grader refused (scored min_score)
  double score_sum = 0;      // over all graded responses
  double score_chosen = 0;   // sums over kept pairs
  double score_rejected = 0;
};

// Grades each sample of `prompt` (its text, reference). A grader exception scores min_score() and
// counts in counts.grade_errors (the first is logged as a warning).
std::vector<GradedText> grade_texts(const Grader& grader, const PromptRecord& prompt,
                                    const std::vector<Sample>& samples, PairCounts& counts);

// The pair one prompt's graded responses give: chosen = the best of `chosen_pool`, rejected = the
// worst of `rejected_pool`; among equal scores the first. An empty text is never a side (a pairwise
// stage refuses an empty response; a policy that stops at once writes one), so `drop` is kEmpty
// when a pool holds no non-empty text, kTie when the chosen does not score above the rejected;
// chosen and rejected point into the pools when drop is kNone.
struct PairChoice {
  enum class Drop { kNone, kEmpty, kTie };
  const GradedText* chosen = nullptr;
  const GradedText* rejected = nullptr;
  Drop drop = Drop::kNone;
};
PairChoice choose_pair(const std::vector<GradedText>& chosen_pool, const std::vector<GradedText>& rejected_pool);

}  // namespace prefengine
