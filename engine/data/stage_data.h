#pragma once
// A stage's training records from its `data:` block: a pre-tokenized JSONL (prompt_ids, ...;
// token_records.h) or a text JSONL in TRL's formats (text_dataset.h) tokenized with the
// experiment's `tokenizer:` block. The kind is detected from the first non-empty row.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"
#include "engine/data/records.h"
#include "engine/data/tokenizer.h"

namespace prefengine {

class ChatTemplate;

struct StageDataStats {
  std::string format;          // "pretokenized", or the text format ("standard", "text", ...)
  int64_t rows = 0;            // non-empty lines read
  int64_t records = 0;         // records kept (after max_records)
  int64_t skipped_rows = 0;    // malformed rows skipped (data.skip_bad_rows)
  int64_t truncated_rows = 0;  // records whose prompt or response was cut

  nlohmann::json to_json() const;
};

// True when the first non-empty row of `path` has token ids ("prompt_ids") or a "distribution".
// Throws std::runtime_error when the file cannot be read.
bool is_pretokenized_jsonl(const std::string& path);

// The experiment's tokenizer and chat template; std::invalid_argument when it has no
// `tokenizer:` block (the message names `why`, e.g. the text dataset that needs one).
std::unique_ptr<Tokenizer> make_experiment_tokenizer(const ExperimentConfig& config, const std::string& why);
ChatTemplate make_experiment_chat_template(const ExperimentConfig& config);

// The stage's records. Errors in the file are std::invalid_argument "stage location: stage 'x':
// file:line: ...". `stats` (optional) receives the counts.
std::vector<PairRecord> load_stage_pairs(const ExperimentConfig& config, const StageOptions& stage,
                                         StageDataStats* stats = nullptr);
std::vector<SftRecord> load_stage_sft(const ExperimentConfig& config, const StageOptions& stage,
                                      StageDataStats* stats = nullptr);

// A stage's text prompt file ({"prompt", "reference"?} rows: read_prompt_jsonl) tokenized with the
// experiment's tokenizer and chat template, with data.max_prompt_length, data.skip_bad_rows and
// data.max_records. The tokenizer comes back with the prompts: the stages that sample decode with
// it and stop at its EOS. `what` says what needs the tokenizer (the message when the experiment has
// none). Errors are std::invalid_argument "stage location: stage 'x': ...".
struct StagePrompts {
  std::vector<PromptRecord> records;
  std::unique_ptr<Tokenizer> tokenizer;
};
StagePrompts load_stage_prompts(const ExperimentConfig& config, const StageOptions& stage, const std::string& what);

}  // namespace prefengine
