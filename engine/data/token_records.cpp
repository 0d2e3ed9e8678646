#include "engine/data/token_records.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/data/json_depth.h"

namespace prefengine {
namespace {

using Json = nlohmann::json;

std::vector<int64_t> read_ids(const Json& row, const char* key, const std::string& where,
                              bool required) {
  if (!row.contains(key)) {
    if (!required) return {};
    throw std::invalid_argument(where + ": missing field '" + key + "' (expected a list of token ids)");
  }
  const Json& value = row.at(key);
  std::vector<int64_t> ids;
  if (value.is_number_integer()) {
    ids.push_back(value.get<int64_t>());
    return ids;
  }
  if (!value.is_array()) {
    throw std::invalid_argument(where + ": field '" + key + "': expected a list of token ids, got " +
                                value.type_name());
  }
  for (const auto& item : value) {
    if (!item.is_number_integer()) {
      throw std::invalid_argument(where + ": field '" + key +
                                  "': expected integer token ids, got " + item.dump());
    }
    ids.push_back(item.get<int64_t>());
  }
  return ids;
}

void for_each_row(const std::string& path, int64_t max_records,
                  const std::function<void(const Json&, const std::string&)>& visit) {
  if (std::filesystem::is_directory(path)) throw std::invalid_argument(path + ": is a directory, expected a JSONL file");
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open the data file");
  std::string line;
  int64_t line_number = 0;
  int64_t count = 0;
  while (std::getline(in, line)) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(line_number);
    check_json_depth(line, where);
    Json row;
    try {
      row = Json::parse(line);
    } catch (const Json::parse_error& e) {
      throw std::invalid_argument(where + ": not a JSON object: " + e.what());
    }
    if (!row.is_object()) throw std::invalid_argument(where + ": expected a JSON object");
    visit(row, where);
    if (max_records > 0 && ++count >= max_records) break;
  }
  if (line_number == 0) throw std::invalid_argument(path + ": the data file is empty");
}

}  // namespace

std::vector<PairRecord> read_pair_records(const std::string& path, int64_t max_records) {
  std::vector<PairRecord> records;
  for_each_row(path, max_records, [&](const Json& row, const std::string& where) {
    PairRecord r;
    r.prompt = read_ids(row, "prompt_ids", where, true);
    r.chosen = read_ids(row, "chosen_ids", where, true);
    r.rejected = read_ids(row, "rejected_ids", where, true);
    if (r.prompt.empty()) throw std::invalid_argument(where + ": 'prompt_ids' is empty");
    if (r.chosen.empty()) throw std::invalid_argument(where + ": 'chosen_ids' is empty");
    if (r.rejected.empty()) throw std::invalid_argument(where + ": 'rejected_ids' is empty");
    r.source = where;
    records.push_back(std::move(r));
  });
  if (records.empty()) throw std::invalid_argument(path + ": no records");
  return records;
}

std::vector<SftRecord> read_sft_records(const std::string& path, int64_t max_records) {
  std::vector<SftRecord> records;
  for_each_row(path, max_records, [&](const Json& row, const std::string& where) {
    SftRecord r;
    r.prompt = read_ids(row, "prompt_ids", where, true);
    if (r.prompt.empty()) throw std::invalid_argument(where + ": 'prompt_ids' is empty");
    const bool has_completion = row.contains("completion_ids");
    const bool has_distribution = row.contains("distribution");
    if (has_completion == has_distribution) {
      throw std::invalid_argument(where +
                                  ": expected exactly one of 'completion_ids' or 'distribution'");
    }
    if (has_completion) {
      r.completion = read_ids(row, "completion_ids", where, true);
      if (r.completion.empty()) throw std::invalid_argument(where + ": 'completion_ids' is empty");
    } else {
      const Json& d = row.at("distribution");
      if (!d.is_array() || d.empty()) {
        throw std::invalid_argument(where + ": 'distribution': expected a list of probabilities");
      }
      double total = 0;
      for (const auto& p : d) {
        if (!p.is_number() || p.get<double>() < 0) {
          throw std::invalid_argument(where + ": 'distribution': expected probabilities >= 0, got " +
                                      p.dump());
        }
        r.distribution.push_back(p.get<double>());
        total += r.distribution.back();
      }
      if (std::abs(total - 1.0) > 1e-6) {
        throw std::invalid_argument(where + ": 'distribution': expected probabilities summing to 1, got a sum of " +
                                    std::to_string(total));
      }
    }
    r.source = where;
    records.push_back(std::move(r));
  });
  if (records.empty()) throw std::invalid_argument(path + ": no records");
  return records;
}

namespace {
void check_ids(const std::vector<int64_t>& ids, int64_t vocab, const std::string& where,
               const char* field) {
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab) {
      throw std::invalid_argument(where + ": field '" + field + "': token id " + std::to_string(id) +
                                  " is outside the model's vocabulary [0, " + std::to_string(vocab) +
                                  ")");
    }
  }
}
}  // namespace

void check_token_range(const std::vector<PairRecord>& records, int64_t vocab_size) {
  for (const auto& r : records) {
    check_ids(r.prompt, vocab_size, r.source, "prompt_ids");
    check_ids(r.chosen, vocab_size, r.source, "chosen_ids");
    check_ids(r.rejected, vocab_size, r.source, "rejected_ids");
  }
}

void check_token_range(const std::vector<SftRecord>& records, int64_t vocab_size) {
  for (const auto& r : records) {
    check_ids(r.prompt, vocab_size, r.source, "prompt_ids");
    check_ids(r.completion, vocab_size, r.source, "completion_ids");
    if (!r.distribution.empty() && static_cast<int64_t>(r.distribution.size()) != vocab_size) {
      throw std::invalid_argument(r.source + ": 'distribution': expected " + std::to_string(vocab_size) +
                                  " probabilities (the model's vocabulary), got " +
                                  std::to_string(r.distribution.size()));
    }
  }
}

void check_token_range(const std::vector<PromptRecord>& records, int64_t vocab_size) {
  for (const auto& r : records) check_ids(r.prompt, vocab_size, r.source, "prompt_ids");
}

}  // namespace prefengine
