#pragma once
// Pre-tokenized JSONL records: token ids given directly, one JSON object a line.
//   pairs: {"prompt_ids": [0], "chosen_ids": [0], "rejected_ids": [6]}
//   sft:   {"prompt_ids": [0], "completion_ids": [0]} or {"prompt_ids": [0], "distribution": [...]}
// Blank lines are skipped; every other problem is std::invalid_argument naming file:line.
#include <string>
#include <vector>

#include "engine/data/records.h"

namespace prefengine {

std::vector<PairRecord> read_pair_records(const std::string& path, int64_t max_records = 0);
std::vector<SftRecord> read_sft_records(const std::string& path, int64_t max_records = 0);

// Checks that every response token id lies in [0, vocab_size) (prompt ids are the model's to check) and every distribution has vocab_size
// entries; the message names the record's file:line.
void check_token_range(const std::vector<PairRecord>& records, int64_t vocab_size);
void check_token_range(const std::vector<SftRecord>& records, int64_t vocab_size);
void check_token_range(const std::vector<PromptRecord>& records, int64_t vocab_size);

}  // namespace prefengine
