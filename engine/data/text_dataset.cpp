#include "engine/data/text_dataset.h"

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/data/json_depth.h"

namespace prefengine {
namespace {

using json = nlohmann::json;

enum class Kind { kPreference, kSft, kPrompt };

const char* kind_expectation(Kind kind) {
  switch (kind) {
    case Kind::kPreference:
      return "a preference row: string or message-list fields 'chosen' and 'rejected', with an "
             "optional 'prompt' of the same type";
    case Kind::kSft:
      return "an SFT row: 'prompt' and 'completion' (strings or message lists), a 'text' string, "
             "or a 'messages' list";
    case Kind::kPrompt:
      return "a prompt row: a 'prompt' string or message list and an optional 'reference' string";
  }
  return "";
}

std::string describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

bool is_message_list(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const auto& m : v) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string()) {
      return false;
    }
  }
  return true;
}

std::vector<ChatMessage> to_messages(const json& v) {
  std::vector<ChatMessage> out;
  for (const auto& m : v) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

bool has_string(const json& row, const char* key) {
  return row.contains(key) && row[key].is_string();
}

bool has_messages(const json& row, const char* key) {
  return row.contains(key) && is_message_list(row[key]);
}

std::optional<TextFormat> detect(const json& row, Kind kind) {
  switch (kind) {
    case Kind::kPreference:
      if (row.contains("prompt")) {
        if (has_string(row, "prompt") && has_string(row, "chosen") && has_string(row, "rejected")) {
          return TextFormat::kStandard;
        }
        if (has_messages(row, "prompt") && has_messages(row, "chosen") &&
            has_messages(row, "rejected")) {
          return TextFormat::kConversational;
        }
        return std::nullopt;
      }
      if (has_string(row, "chosen") && has_string(row, "rejected")) return TextFormat::kImplicitPrompt;
      if (has_messages(row, "chosen") && has_messages(row, "rejected")) {
        return TextFormat::kImplicitConversational;
      }
      return std::nullopt;
    case Kind::kSft:
      if (has_string(row, "prompt") && has_string(row, "completion")) {
        return TextFormat::kPromptCompletion;
      }
      if (has_messages(row, "prompt") && has_messages(row, "completion")) {
        return TextFormat::kConversationalPromptCompletion;
      }
      if (!row.contains("prompt") && has_string(row, "text")) return TextFormat::kText;
      if (!row.contains("prompt") && has_messages(row, "messages")) return TextFormat::kMessages;
      return std::nullopt;
    case Kind::kPrompt:
      if (has_string(row, "prompt")) return TextFormat::kPromptOnly;
      if (has_messages(row, "prompt")) return TextFormat::kConversationalPrompt;
      return std::nullopt;
  }
  return std::nullopt;
}

std::string format_expectation(TextFormat format) {
  switch (format) {
    case TextFormat::kStandard:
      return "string fields 'prompt', 'chosen' and 'rejected'";
    case TextFormat::kConversational:
      return "message-list fields 'prompt', 'chosen' and 'rejected'";
    case TextFormat::kImplicitPrompt:
      return "string fields 'chosen' and 'rejected' (no 'prompt')";
    case TextFormat::kImplicitConversational:
      return "message-list fields 'chosen' and 'rejected' (no 'prompt')";
    case TextFormat::kPromptCompletion:
      return "string fields 'prompt' and 'completion'";
    case TextFormat::kConversationalPromptCompletion:
      return "message-list fields 'prompt' and 'completion'";
    case TextFormat::kText:
      return "a string field 'text'";
    case TextFormat::kMessages:
      return "a message-list field 'messages'";
    case TextFormat::kPromptOnly:
      return "a string field 'prompt'";
    case TextFormat::kConversationalPrompt:
      return "a message-list field 'prompt'";
  }
  return "";
}

[[noreturn]] void row_error(const std::string& expected, const std::string& got) {
  throw std::invalid_argument("expected " + expected + ", got " + got);
}

bool truncate(const TextDatasetOptions& o, int64_t bos, std::vector<int64_t>* prompt,
              std::vector<std::vector<int64_t>*> responses) {
  return truncate_tokens(o.max_prompt_length, o.max_length, bos, prompt, std::move(responses),
                         o.max_completion_length);
}

// Special tokens are added once: no EOS after a response that already ends with the EOS token
// (rendered chat turns), no BOS before a prompt that starts with it or when the tokenizer adds none.
std::vector<int64_t> encode_response(const Tokenizer& t, const TextDatasetOptions& o, const ChatTemplate& chat,
                                     const std::string& text) {
  std::vector<int64_t> ids = t.encode(text, false);
  if (o.add_eos && t.eos_id() >= 0 && chat.wants_eos(text)) ids.push_back(t.eos_id());
  return ids;
}

std::vector<int64_t> encode_prompt(const Tokenizer& t, const TextDatasetOptions& o, const ChatTemplate& chat,
                                   const std::string& text) {
  return t.encode(text, o.add_bos && chat.wants_bos(text));
}

template <typename Record, typename Make>
TextDataset<Record> read_jsonl(const TextDatasetOptions& options, Kind kind, Make make) {
  options.validate();
  if (std::filesystem::is_directory(options.path)) {
    throw std::invalid_argument(options.path + ": is a directory, expected a JSONL file");
  }
  std::ifstream in(options.path);
  if (!in) throw std::runtime_error(options.path + ": cannot open the dataset");
  TextDataset<Record> out;
  std::optional<TextFormat> format;
  int64_t format_line = 0;
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    ++out.stats.rows;
    const std::string where = options.path + ":" + std::to_string(number);
    try {
      if (json_nesting_depth(line) > kMaxJsonDepth) {
        row_error("JSON nested at most " + std::to_string(kMaxJsonDepth) + " levels deep", "deeper nesting");
      }
      json row;
      try {
        row = json::parse(line);
      } catch (const json::exception& e) {
        row_error("a JSON object", "invalid JSON (" + std::string(e.what()) + ")");
      }
      if (!row.is_object()) row_error("a JSON object", describe(row));
      const std::optional<TextFormat> detected = detect(row, kind);
      if (!format) {
        if (!detected) row_error(kind_expectation(kind), describe(row));
      } else if (detected != format) {
        row_error(format_expectation(*format) + " (the " + text_format_name(*format) +
                      " format of line " + std::to_string(format_line) + ")",
                  describe(row));
      }
      Record record;
      record.source = where;
      bool truncated = false;
      try {
        truncated = make(row, *detected, &record);
      } catch (const std::invalid_argument& e) {
        // Chat template and tokenizer errors: keep the house "expected ..., got ..." shape.
        const std::string message = e.what();
        if (message.rfind("expected ", 0) == 0) throw;
        row_error("messages and text the chat template and tokenizer accept", message);
      }
      if (!format) {
        format = detected;
        format_line = number;
      }
      out.stats.truncated_rows += truncated ? 1 : 0;
      out.records.push_back(std::move(record));
    } catch (const std::invalid_argument& e) {
      if (!options.skip_bad_rows) throw std::invalid_argument(where + ": " + e.what());
      ++out.stats.skipped_rows;
    }
  }
  if (in.bad()) throw std::runtime_error(options.path + ": read error");
  if (!format) {
    throw std::invalid_argument(options.path + ": no valid row (expected " + kind_expectation(kind) +
                                ")");
  }
  out.stats.format = *format;
  out.stats.records = static_cast<int64_t>(out.records.size());
  return out;
}

}  // namespace

bool truncate_tokens(int64_t max_prompt_length, int64_t max_length, int64_t bos, std::vector<int64_t>* prompt,
                     std::vector<std::vector<int64_t>*> responses, int64_t max_completion_length) {
  bool cut = false;
  if (max_completion_length > 0) {
    for (auto* r : responses) {
      if (static_cast<int64_t>(r->size()) > max_completion_length) {
        r->resize(static_cast<size_t>(max_completion_length));
        cut = true;
      }
    }
  }
  auto keep_end = [&](int64_t limit) {
    if (static_cast<int64_t>(prompt->size()) <= limit) return;
    const bool keep_bos = bos >= 0 && !prompt->empty() && prompt->front() == bos && limit >= 2;
    std::vector<int64_t> kept;
    if (keep_bos) kept.push_back(bos);
    const int64_t tail = limit - static_cast<int64_t>(kept.size());
    kept.insert(kept.end(), prompt->end() - tail, prompt->end());
    *prompt = std::move(kept);
    cut = true;
  };
  if (max_prompt_length > 0) keep_end(max_prompt_length);
  if (max_length > 0) {
    bool has_response = false;
    for (auto* r : responses) has_response = has_response || !r->empty();
    // A response keeps at least one token: cut the prompt further when it fills max_length.
    if (has_response && static_cast<int64_t>(prompt->size()) >= max_length) {
      keep_end(max_length - 1);
    }
    const int64_t budget = max_length - static_cast<int64_t>(prompt->size());
    for (auto* r : responses) {
      if (static_cast<int64_t>(r->size()) > budget) {
        r->resize(static_cast<size_t>(std::max<int64_t>(budget, 0)));
        cut = true;
      }
    }
  }
  return cut;
}

const char* text_format_name(TextFormat format) {
  switch (format) {
    case TextFormat::kStandard:
      return "standard";
    case TextFormat::kConversational:
      return "conversational";
    case TextFormat::kImplicitPrompt:
      return "implicit_prompt";
    case TextFormat::kImplicitConversational:
      return "implicit_conversational";
    case TextFormat::kPromptCompletion:
      return "prompt_completion";
    case TextFormat::kConversationalPromptCompletion:
      return "conversational_prompt_completion";
    case TextFormat::kText:
      return "text";
    case TextFormat::kMessages:
      return "messages";
    case TextFormat::kPromptOnly:
      return "prompt_only";
    case TextFormat::kConversationalPrompt:
      return "conversational_prompt";
  }
  return "unknown";
}

void TextDatasetOptions::validate() const {
  if (path.empty()) throw std::invalid_argument("data.path: no dataset file given");
  if (max_prompt_length < 0) {
    throw std::invalid_argument("data.max_prompt_length: must be >= 0, got " +
                                std::to_string(max_prompt_length));
  }
  if (max_length < 0) {
    throw std::invalid_argument("data.max_length: must be >= 0, got " + std::to_string(max_length));
  }
  if (max_completion_length < 0) {
    throw std::invalid_argument("data.max_completion_length: must be >= 0, got " +
                                std::to_string(max_completion_length));
  }
  if (max_length > 0 && max_prompt_length >= max_length) {
    throw std::invalid_argument("data.max_prompt_length: must be < max_length (" +
                                std::to_string(max_length) + "), got " +
                                std::to_string(max_prompt_length));
  }
}

std::vector<std::pair<std::string, bool>> assistant_turn_segments(const ChatTemplate& chat_template,
                                                                  const std::vector<ChatMessage>& messages,
                                                                  std::string* prompt) {
  size_t first = 0;
  while (first < messages.size() && messages[first].role != "assistant") ++first;
  if (first == 0 || first == messages.size()) {
    row_error("'messages' with an assistant message after at least one other", std::to_string(messages.size()) +
                                                                                  " messages without one");
  }
  auto upto = [&](size_t n) { return std::vector<ChatMessage>(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(n)); };
  *prompt = chat_template.apply(upto(first), true);
  std::string done = *prompt;  // the rendering of the first done_messages messages
  size_t done_messages = first;
  std::vector<std::pair<std::string, bool>> segments;
  auto take = [&](const std::string& longer, bool trained, size_t n) {
    if (longer.compare(0, done.size(), done) != 0) {
      row_error("a chat template whose rendering of a conversation's first messages is a prefix of its rendering "
                "of more (data.all_assistant_turns needs it)",
                "a template (" + chat_template.source_name() + ") that renders the first " +
                    std::to_string(done_messages) + " messages differently inside the first " + std::to_string(n));
    }
    if (longer.size() > done.size()) segments.emplace_back(longer.substr(done.size()), trained);
    done = longer;
    done_messages = n;
  };
  for (size_t k = first; k < messages.size(); ++k) {
    if (messages[k].role != "assistant") continue;
    if (k > first) take(chat_template.apply(upto(k), true), false, k);  // the turns in between + generation prompt
    take(chat_template.apply(upto(k + 1), false), true, k + 1);          // the assistant message
  }
  return segments;
}

size_t implicit_prompt_length(const std::string& chosen, const std::string& rejected) {
  size_t n = 0;
  const size_t limit = std::min(chosen.size(), rejected.size());
  while (n < limit && chosen[n] == rejected[n]) ++n;
  if (n == limit) return n;  // one is a prefix of the other
  // Do not split a UTF-8 character.
  while (n > 0 && (static_cast<unsigned char>(chosen[n]) & 0xC0) == 0x80) --n;
  // As TRL: a space before the first difference belongs to the responses.
  if (n > 0 && chosen[n - 1] == ' ') --n;
  return n;
}

TextDataset<PairRecord> read_preference_jsonl(const TextDatasetOptions& options,
                                              const Tokenizer& tokenizer,
                                              const ChatTemplate& chat_template) {
  return read_jsonl<PairRecord>(
      options, Kind::kPreference, [&](const json& row, TextFormat format, PairRecord* r) {
        std::string prompt, chosen, rejected;
        switch (format) {
          case TextFormat::kStandard:
            prompt = row["prompt"].get<std::string>();
            chosen = row["chosen"].get<std::string>();
            rejected = row["rejected"].get<std::string>();
            break;
          case TextFormat::kConversational: {
            const auto p = to_messages(row["prompt"]);
            prompt = chat_template.apply(p, true);
            chosen = chat_template.continuation(p, to_messages(row["chosen"]));
            rejected = chat_template.continuation(p, to_messages(row["rejected"]));
            break;
          }
          case TextFormat::kImplicitPrompt: {
            const std::string c = row["chosen"].get<std::string>();
            const std::string j = row["rejected"].get<std::string>();
            const size_t n = implicit_prompt_length(c, j);
            prompt = c.substr(0, n);
            chosen = c.substr(n);
            rejected = j.substr(n);
            break;
          }
          default: {  // kImplicitConversational
            const auto c = to_messages(row["chosen"]);
            const auto j = to_messages(row["rejected"]);
            size_t n = 0;
            while (n < c.size() && n < j.size() && c[n].role == j[n].role &&
                   c[n].content == j[n].content) {
              ++n;
            }
            if (n == 0 || n == c.size() || n == j.size()) {
              row_error("'chosen' and 'rejected' sharing their first messages and differing after",
                        std::to_string(n) + " shared messages");
            }
            const std::vector<ChatMessage> p(c.begin(), c.begin() + static_cast<std::ptrdiff_t>(n));
            prompt = chat_template.apply(p, true);
            chosen = chat_template.continuation(p, {c.begin() + static_cast<std::ptrdiff_t>(n), c.end()});
            rejected = chat_template.continuation(p, {j.begin() + static_cast<std::ptrdiff_t>(n), j.end()});
            break;
          }
        }
        if (chosen.empty()) row_error("a non-empty chosen response", "an empty one");
        if (rejected.empty()) row_error("a non-empty rejected response", "an empty one");
        r->prompt = encode_prompt(tokenizer, options, chat_template, prompt);
        r->chosen = encode_response(tokenizer, options, chat_template, chosen);
        r->rejected = encode_response(tokenizer, options, chat_template, rejected);
        return truncate(options, tokenizer.bos_id(), &r->prompt, {&r->chosen, &r->rejected});
      });
}

TextDataset<SftRecord> read_sft_jsonl(const TextDatasetOptions& options, const Tokenizer& tokenizer,
                                      const ChatTemplate& chat_template) {
  return read_jsonl<SftRecord>(
      options, Kind::kSft, [&](const json& row, TextFormat format, SftRecord* r) {
        std::string prompt, completion;
        if (options.all_assistant_turns && format != TextFormat::kMessages) {
          row_error("'messages' rows (all_assistant_turns is set)", std::string("a row of the ") +
                                                                        text_format_name(format) + " format");
        }
        switch (format) {
          case TextFormat::kPromptCompletion:
            prompt = row["prompt"].get<std::string>();
            completion = row["completion"].get<std::string>();
            break;
          case TextFormat::kConversationalPromptCompletion: {
            const auto p = to_messages(row["prompt"]);
            prompt = chat_template.apply(p, true);
            completion = chat_template.continuation(p, to_messages(row["completion"]));
            break;
          }
          case TextFormat::kText:
            completion = row["text"].get<std::string>();
            break;
          default: {  // kMessages
            const auto m = to_messages(row["messages"]);
            if (m.size() < 2 || m.back().role != "assistant") {
              row_error("'messages' ending with an assistant message after at least one other",
                        describe(row["messages"]));
            }
            if (options.all_assistant_turns) {
              // Each segment tokenized on its own; the mask trains the assistant ones.
              for (const auto& [text, trained] : assistant_turn_segments(chat_template, m, &prompt)) {
                const std::vector<int64_t> ids = tokenizer.encode(text, false);
                r->completion.insert(r->completion.end(), ids.begin(), ids.end());
                r->completion_mask.insert(r->completion_mask.end(), ids.size(), trained ? 1 : 0);
                completion += text;
              }
              if (options.add_eos && tokenizer.eos_id() >= 0 && chat_template.wants_eos(completion)) {
                r->completion.push_back(tokenizer.eos_id());
                r->completion_mask.push_back(1);
              }
              if (completion.empty()) row_error("a non-empty completion", "an empty one");
              r->prompt = encode_prompt(tokenizer, options, chat_template, prompt);
              const bool cut = truncate(options, tokenizer.bos_id(), &r->prompt, {&r->completion});
              r->completion_mask.resize(r->completion.size());
              return cut;
            }
            const std::vector<ChatMessage> p(m.begin(), m.end() - 1);
            prompt = chat_template.apply(p, true);
            completion = chat_template.continuation(p, {m.back()});
            break;
          }
        }
        if (completion.empty()) row_error("a non-empty completion", "an empty one");
        r->prompt = encode_prompt(tokenizer, options, chat_template, prompt);
        r->completion = encode_response(tokenizer, options, chat_template, completion);
        return truncate(options, tokenizer.bos_id(), &r->prompt, {&r->completion});
      });
}

TextDataset<PromptRecord> read_prompt_jsonl(const TextDatasetOptions& options,
                                            const Tokenizer& tokenizer,
                                            const ChatTemplate& chat_template) {
  return read_jsonl<PromptRecord>(
      options, Kind::kPrompt, [&](const json& row, TextFormat format, PromptRecord* r) {
        if (format == TextFormat::kPromptOnly) {
          r->prompt_text = row["prompt"].get<std::string>();
        } else {
          r->prompt_text = chat_template.apply(to_messages(row["prompt"]), true);
        }
        if (row.contains("reference")) {
          if (!row["reference"].is_string()) {
            row_error("'reference' to be a string", describe(row["reference"]));
          }
          r->reference = row["reference"].get<std::string>();
        }
        r->prompt = encode_prompt(tokenizer, options, chat_template, r->prompt_text);
        if (r->prompt.empty()) row_error("a non-empty prompt", "an empty one");
        return truncate(options, tokenizer.bos_id(), &r->prompt, {});
      });
}

}  // namespace prefengine
