#pragma once
// JSONL text datasets in TRL's formats, tokenized into the records of records.h.
//
// Preference rows (read_preference_jsonl):
//   standard         {"prompt": str, "chosen": str, "rejected": str}
//   conversational   {"prompt": [{role, content}...], "chosen": [...], "rejected": [...]}
//   implicit prompt  {"chosen": str, "rejected": str} (Anthropic HH) or the same with message
//                    lists: the prompt is the longest common prefix of chosen and rejected.
// SFT rows (read_sft_jsonl): {"prompt", "completion"} (strings or message lists), {"text": str},
//   or {"messages": [...]} (the last message, an assistant's, is the completion; with
//   all_assistant_turns every assistant message is trained: see assistant_turn_segments).
// Prompt rows (read_prompt_jsonl): {"prompt": str or messages, "reference": str (optional)}.
//
// The format is detected from the first valid row; every later row must have the same format.
// Conversational rows are rendered with the chat template. Empty lines are ignored.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/data/chat_template.h"
#include "engine/data/records.h"
#include "engine/data/tokenizer.h"

namespace prefengine {

enum class TextFormat {
  kStandard,         // preference: prompt/chosen/rejected strings
  kConversational,   // preference: prompt/chosen/rejected message lists
  kImplicitPrompt,   // preference: chosen/rejected strings with a shared prefix
  kImplicitConversational,  // preference: chosen/rejected message lists with shared messages
  kPromptCompletion, // sft: prompt/completion strings
  kConversationalPromptCompletion,  // sft: prompt/completion message lists
  kText,             // sft: one "text" string, all of it the completion
  kMessages,         // sft: "messages" list, the last one the completion
  kPromptOnly,       // prompts: a "prompt" string
  kConversationalPrompt,  // prompts: a "prompt" message list
};

// "standard", "conversational", "implicit_prompt", ...
const char* text_format_name(TextFormat format);

struct TextDatasetOptions {
  std::string path;               // the JSONL file
  int64_t max_prompt_length = 0;  // prompt tokens kept (the END of the prompt, BOS kept); 0 = all
  int64_t max_length = 0;         // prompt + response tokens; the response is cut; 0 = no limit
  int64_t max_completion_length = 0;  // tokens kept of each response (its start); 0 = all
  bool add_bos = true;            // start each prompt with the tokenizer's BOS (when it has one)
  bool add_eos = true;            // end each response with the tokenizer's EOS (when it has one)
  bool skip_bad_rows = false;     // skip and count malformed rows instead of throwing
  // SFT `messages` rows: train every assistant message (SftRecord::completion_mask marks their
  // tokens; the other turns after the first assistant message are context), not just the last.
  bool all_assistant_turns = false;

  // Throws std::invalid_argument naming the field and the bad value.
  void validate() const;
};

struct TextDatasetStats {
  TextFormat format = TextFormat::kStandard;  // detected from the first valid row
  int64_t rows = 0;            // non-empty lines read
  int64_t records = 0;         // records produced
  int64_t skipped_rows = 0;    // malformed rows skipped (skip_bad_rows)
  int64_t truncated_rows = 0;  // records whose prompt or response was cut
};

template <typename Record>
struct TextDataset {
  std::vector<Record> records;
  TextDatasetStats stats;
};

// Each throws std::runtime_error when the file cannot be read, and std::invalid_argument
// "file:line: expected ..., got ..." for a malformed row (unless skip_bad_rows) or a file
// without any valid row.
TextDataset<PairRecord> read_preference_jsonl(const TextDatasetOptions& options,
                                              const Tokenizer& tokenizer,
                                              const ChatTemplate& chat_template = ChatTemplate());
TextDataset<SftRecord> read_sft_jsonl(const TextDatasetOptions& options, const Tokenizer& tokenizer,
                                      const ChatTemplate& chat_template = ChatTemplate());
TextDataset<PromptRecord> read_prompt_jsonl(const TextDatasetOptions& options,
                                            const Tokenizer& tokenizer,
                                            const ChatTemplate& chat_template = ChatTemplate());

// TRL's truncation, shared by text and pre-tokenized data: keeps the END of the prompt within
// max_prompt_length (and its first token when that is `bos`, bos >= 0), keeps the START of every
// response within max_completion_length, then cuts every response so that prompt + response <=
// max_length; a non-empty response keeps at least one token (the prompt is cut further when it
// fills max_length). 0 = no limit. Returns true when anything was cut.
bool truncate_tokens(int64_t max_prompt_length, int64_t max_length, int64_t bos, std::vector<int64_t>* prompt,
                     std::vector<std::vector<int64_t>*> responses, int64_t max_completion_length = 0);

// The text of `messages` after the prompt (the messages before the first assistant message,
// rendered with the generation prompt), split where the rendered text of each prefix ends:
// segments alternate assistant text (trained: true) and the text of the other turns (false).
// Each assistant message's text is render(messages[0..k], false) minus render(messages[0..k-1],
// true). Returns the prompt text in *prompt. Throws std::invalid_argument when there is no
// assistant message after a first other one, or when a rendered prefix is not a prefix of the
// longer rendering (a template that rewrites earlier turns, e.g. Qwen3's thinking blocks).
std::vector<std::pair<std::string, bool>> assistant_turn_segments(const ChatTemplate& chat_template,
                                                                  const std::vector<ChatMessage>& messages,
                                                                  std::string* prompt);

// TRL's extract_prompt for strings: the longest common prefix of chosen and rejected (ending at
// a UTF-8 character boundary, without a trailing space that belongs to the responses).
size_t implicit_prompt_length(const std::string& chosen, const std::string& rejected);

}  // namespace prefengine
