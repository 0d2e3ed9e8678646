#pragma once
// Tokenized records: what every dataset reader produces and every stage consumes. Text formats
// (TRL's standard, conversational and implicit-prompt JSONL) are tokenized into these.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace prefengine {

// One preference pair: y_w (chosen) is preferred to y_l (rejected) for prompt x.
struct PairRecord {
  std::vector<int64_t> prompt;    // token ids of x
  std::vector<int64_t> chosen;    // token ids of y_w (without the prompt)
  std::vector<int64_t> rejected;  // token ids of y_l (without the prompt)
  std::string source;             // "file:line" the record came from
};

// One supervised example: a target completion, or a target distribution over the single next
// token after the prompt (the toy model's hand-set Step-1 distributions).
struct SftRecord {
  std::vector<int64_t> prompt;      // token ids of the prompt
  std::vector<int64_t> completion;  // target token ids; empty when `distribution` is set
  std::vector<double> distribution; // target probabilities over the vocabulary, sums to 1
  std::vector<uint8_t> completion_mask;  // per completion token, 1 = trained; empty = all trained
                                         // (set for `messages` rows with data.all_assistant_turns)
  std::string source;               // "file:line"
};

// One prompt for generation, rollouts or evaluation.
struct PromptRecord {
  std::vector<int64_t> prompt;           // token ids
  std::string prompt_text;               // the prompt as text, when known (graders read it)
  std::optional<std::string> reference;  // reference answer, when there is one
  std::string source;                    // "file:line"
};

}  // namespace prefengine
