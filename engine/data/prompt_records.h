#pragma once
// Prompts for rollouts: one JSON object a line, {"prompt_ids": [...]} with an optional
// "reference" answer (graders read it). Blank lines are skipped; every other problem is
// std::invalid_argument naming file:line.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/records.h"

namespace prefengine {

std::vector<PromptRecord> read_prompt_records(const std::string& path, int64_t max_records = 0);

}  // namespace prefengine
