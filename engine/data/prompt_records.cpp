#include "engine/data/prompt_records.h"

#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/data/json_depth.h"

namespace prefengine {

std::vector<PromptRecord> read_prompt_records(const std::string& path, int64_t max_records) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open the prompts file");
  std::vector<PromptRecord> out;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    check_json_depth(line, where);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(where + ": invalid JSON: " + e.what());
    }
    if (!row.is_object() || !row.contains("prompt_ids") || !row["prompt_ids"].is_array()) {
      throw std::invalid_argument(where + ": expected an object with a 'prompt_ids' list");
    }
    PromptRecord r;
    for (const auto& id : row["prompt_ids"]) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0) {
        throw std::invalid_argument(where + ": 'prompt_ids' must hold non-negative integers");
      }
      r.prompt.push_back(id.get<int64_t>());
    }
    if (r.prompt.empty()) throw std::invalid_argument(where + ": 'prompt_ids' is empty");
    if (row.contains("prompt") && row["prompt"].is_string()) r.prompt_text = row["prompt"].get<std::string>();
    if (row.contains("reference") && row["reference"].is_string()) r.reference = row["reference"].get<std::string>();
    r.source = where;
    out.push_back(std::move(r));
    if (max_records > 0 && static_cast<int64_t>(out.size()) == max_records) break;
  }
  if (out.empty()) throw std::invalid_argument(path + ": no prompts");
  return out;
}

}  // namespace prefengine
