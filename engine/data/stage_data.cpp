#include "engine/data/stage_data.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "engine/data/chat_template.h"
#include "engine/data/json_depth.h"
#include "engine/data/text_dataset.h"
#include "engine/data/token_records.h"
#include "engine/data/tokenizer.h"

namespace prefengine {
namespace {

std::string stage_prefix(const StageOptions& stage) {
  return stage.location + ": stage '" + stage.name + "': ";
}

// Called in a handler of `e`: rethrows it as it is when it already names the stage's location,
// else with the stage's prefix.
[[noreturn]] void throw_with_stage_prefix(const StageOptions& stage, const std::invalid_argument& e) {
  const std::string message = e.what();
  if (message.rfind(stage.location, 0) == 0) throw;
  throw std::invalid_argument(stage_prefix(stage) + message);
}

TextDatasetOptions text_options(const StageOptions& stage) {
  TextDatasetOptions o;
  o.path = stage.data.path;
  o.max_prompt_length = stage.data.max_prompt_length;
  o.max_length = stage.data.max_length;
  o.max_completion_length = stage.data.max_completion_length;
  o.skip_bad_rows = stage.data.skip_bad_rows;
  o.all_assistant_turns = stage.data.all_assistant_turns;
  return o;
}

// skip_bad_rows is the text reader's: a pre-tokenized file has no such option.
void check_pretokenized_options(const StageOptions& stage) {
  if (stage.data.skip_bad_rows) {
    throw std::invalid_argument(stage_prefix(stage) + "data.skip_bad_rows applies to text datasets, but " +
                                stage.data.path + " is pre-tokenized (prompt_ids)");
  }
  if (stage.data.all_assistant_turns) {
    throw std::invalid_argument(stage_prefix(stage) + "data.all_assistant_turns applies to text `messages` rows, but " +
                                stage.data.path + " is pre-tokenized (prompt_ids)");
  }
}

// max_prompt_length / max_length on token ids, as on text (truncate_tokens): the prompt keeps its
// end, the responses are cut. The ids carry no known BOS, so none is kept specially. A target
// distribution is one next-token response.
bool truncate_record(const DataOptions& d, PairRecord* r) {
  return truncate_tokens(d.max_prompt_length, d.max_length, -1, &r->prompt, {&r->chosen, &r->rejected},
                         d.max_completion_length);
}
bool truncate_record(const DataOptions& d, SftRecord* r) {
  if (r->distribution.empty()) {
    return truncate_tokens(d.max_prompt_length, d.max_length, -1, &r->prompt, {&r->completion}, d.max_completion_length);
  }
  std::vector<int64_t> next_token(1);
  return truncate_tokens(d.max_prompt_length, d.max_length, -1, &r->prompt, {&next_token});
}

template <typename Record>
std::vector<Record> keep_first(std::vector<Record> records, int64_t max_records) {
  if (max_records > 0 && static_cast<int64_t>(records.size()) > max_records) records.resize(max_records);
  return records;
}

bool first_row_is_object(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (json_nesting_depth(line) > kMaxJsonDepth) return false;  // the reader names the line
    return nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false).is_object();
  }
  return false;
}

template <typename Record, typename ReadText, typename ReadTokens>
std::vector<Record> load(const ExperimentConfig& config, const StageOptions& stage, StageDataStats* stats,
                         ReadText read_text, ReadTokens read_tokens) {
  StageDataStats local;
  std::vector<Record> records;
  try {
    // An unparsable first row goes to the reader that can name its file:line: the text reader
    // when there is a tokenizer, else the pre-tokenized one.
    const bool pretokenized = is_pretokenized_jsonl(stage.data.path) ||
                              (!config.has_tokenizer && !first_row_is_object(stage.data.path));
    if (pretokenized) {
      check_pretokenized_options(stage);
      records = read_tokens(stage.data.path, stage.data.max_records);
      local.format = "pretokenized";
      local.rows = static_cast<int64_t>(records.size());
      for (auto& record : records) local.truncated_rows += truncate_record(stage.data, &record) ? 1 : 0;
    } else {
      const auto tokenizer = make_experiment_tokenizer(config, "the text dataset " + stage.data.path);
      auto dataset = read_text(text_options(stage), *tokenizer, make_experiment_chat_template(config));
      records = keep_first(std::move(dataset.records), stage.data.max_records);
      local.format = text_format_name(dataset.stats.format);
      local.rows = dataset.stats.rows;
      local.skipped_rows = dataset.stats.skipped_rows;
      local.truncated_rows = dataset.stats.truncated_rows;
    }
  } catch (const std::invalid_argument& e) {
    throw_with_stage_prefix(stage, e);
  }
  local.records = static_cast<int64_t>(records.size());
  if (local.format != "pretokenized" || local.truncated_rows > 0) {
    spdlog::info("stage '{}': {} ({} format): {} rows, {} records, {} truncated, {} skipped", stage.name,
                 stage.data.path, local.format, local.rows, local.records, local.truncated_rows,
                 local.skipped_rows);
  }
  if (stats != nullptr) *stats = local;
  return records;
}

}  // namespace

nlohmann::json StageDataStats::to_json() const {
  return {{"format", format},
          {"rows", rows},
          {"records", records},
          {"skipped_rows", skipped_rows},
          {"truncated_rows", truncated_rows}};
}

bool is_pretokenized_jsonl(const std::string& path) {
  if (std::filesystem::is_directory(path)) throw std::invalid_argument(path + ": is a directory, expected a JSONL file");
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open the dataset");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (json_nesting_depth(line) > kMaxJsonDepth) return false;  // the reader names the line
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    return row.is_object() && (row.contains("prompt_ids") || row.contains("distribution"));
  }
  return false;
}

std::unique_ptr<Tokenizer> make_experiment_tokenizer(const ExperimentConfig& config, const std::string& why) {
  if (!config.has_tokenizer) {
    throw std::invalid_argument(why + " needs a tokenizer, but the experiment has no `tokenizer:` block "
                                "(e.g. tokenizer: {kind: byte})");
  }
  return make_tokenizer(config.tokenizer);
}

ChatTemplate make_experiment_chat_template(const ExperimentConfig& config) {
  // A tokenizer with files may bring its own template (tokenizer_config.json); the byte tokenizer has none.
  const bool has_files = config.has_tokenizer && config.tokenizer.kind != "byte";
  ChatTemplate chat = ChatTemplate::for_tokenizer(has_files ? config.tokenizer.path : "", config.chat_template);
  if (config.enable_thinking.has_value()) chat.set_variable("enable_thinking", *config.enable_thinking);
  spdlog::debug("chat template: {}", chat.source_name());
  return chat;
}

// data.all_assistant_turns is for SFT `messages` rows only.
static void check_no_all_assistant_turns(const StageOptions& stage) {
  if (stage.data.all_assistant_turns) {
    throw std::invalid_argument(stage_prefix(stage) + "data.all_assistant_turns applies to sft stages (`messages` "
                                "rows), not to this stage's data");
  }
}

std::vector<PairRecord> load_stage_pairs(const ExperimentConfig& config, const StageOptions& stage,
                                         StageDataStats* stats) {
  check_no_all_assistant_turns(stage);
  return load<PairRecord>(
      config, stage, stats,
      [](const TextDatasetOptions& o, const Tokenizer& t, const ChatTemplate& c) {
        return read_preference_jsonl(o, t, c);
      },
      [](const std::string& path, int64_t max) { return read_pair_records(path, max); });
}

std::vector<SftRecord> load_stage_sft(const ExperimentConfig& config, const StageOptions& stage,
                                      StageDataStats* stats) {
  return load<SftRecord>(
      config, stage, stats,
      [](const TextDatasetOptions& o, const Tokenizer& t, const ChatTemplate& c) { return read_sft_jsonl(o, t, c); },
      [](const std::string& path, int64_t max) { return read_sft_records(path, max); });
}

StagePrompts load_stage_prompts(const ExperimentConfig& config, const StageOptions& stage, const std::string& what) {
  check_no_all_assistant_turns(stage);
  StagePrompts out;
  out.tokenizer = make_experiment_tokenizer(config, stage_prefix(stage) + what);
  try {
    // Only the prompt is read: data.max_length (prompt + response) has nothing to cut here.
    TextDatasetOptions input;
    input.path = stage.data.path;
    input.max_prompt_length = stage.data.max_prompt_length;
    input.skip_bad_rows = stage.data.skip_bad_rows;
    out.records = keep_first(read_prompt_jsonl(input, *out.tokenizer, make_experiment_chat_template(config)).records,
                             stage.data.max_records);
  } catch (const std::invalid_argument& e) {
    throw_with_stage_prefix(stage, e);
  }
  return out;
}

}  // namespace prefengine
