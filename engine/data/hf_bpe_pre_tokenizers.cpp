// HfBpeTokenizer's normalizers and pre-tokenizers: read from tokenizer.json
// (Pipeline::read_normalizers, Pipeline::read_pre_tokenizers) and run over the text between added
// tokens (encode_segment, encode_normalized), as the Rust tokenizers library does.
#include "engine/data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>

#include "engine/data/hf_bpe_pipeline.h"

namespace prefengine {
using json = nlohmann::json;
using namespace hf_bpe;  // hf_bpe_pipeline.h

namespace hf_bpe {

std::vector<std::pair<size_t, size_t>> Pattern::find_all(const std::string& text) const {
  std::vector<std::pair<size_t, size_t>> out;
  if (!regex) {
    for (size_t at = 0; (at = text.find(literal, at)) != std::string::npos; at += literal.size()) {
      out.emplace_back(at, at + literal.size());
    }
    return out;
  }
  UErrorCode status = U_ZERO_ERROR;
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  std::unique_ptr<icu::RegexMatcher> m(regex->matcher(status));
  if (U_FAILURE(status)) {
    utext_close(ut);
    throw std::invalid_argument("hf tokenizer: cannot run a pattern regex");
  }
  m->reset(ut);
  while (m->find(status) && U_SUCCESS(status)) {
    const int64_t s = m->start64(status);
    const int64_t e = m->end64(status);
    if (e > s) out.emplace_back(static_cast<size_t>(s), static_cast<size_t>(e));
  }
  utext_close(ut);
  return out;
}

}  // namespace hf_bpe

namespace {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex (the default).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

Pattern read_pattern(const json& node, const std::string& key) {
  Pattern p;
  if (node.is_object() && node.contains("String") && node["String"].is_string()) {
    p.literal = node["String"].get<std::string>();
    if (p.literal.empty()) throw std::invalid_argument(key + ".String: an empty pattern");
    return p;
  }
  if (node.is_object() && node.contains("Regex") && node["Regex"].is_string()) {
    const std::string source = node["Regex"].get<std::string>();
    UErrorCode status = U_ZERO_ERROR;
    UParseError parse_error;
    p.regex.reset(icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(source), 0, parse_error, status));
    if (U_FAILURE(status)) {
      throw std::invalid_argument(key + ".Regex: cannot compile " + source + " (" + u_errorName(status) +
                                  " at offset " + std::to_string(parse_error.offset) + ")");
    }
    return p;
  }
  throw std::invalid_argument(key + ": expected {\"String\": ...} or {\"Regex\": ...}");
}

// Splits `text` into pieces given its match spans, as the Rust library's
// NormalizedString::split does for each delimiter behavior. Empty pieces are dropped.
void split_spans(const std::string& text, const std::vector<std::pair<size_t, size_t>>& matches,
                 bool invert, Behavior behavior, std::vector<std::string>* out) {
  // All spans in order, each flagged as a match or not.
  std::vector<std::pair<std::pair<size_t, size_t>, bool>> spans;
  size_t last = 0;
  for (const auto& m : matches) {
    if (m.first > last) spans.push_back({{last, m.first}, invert});
    spans.push_back({m, !invert});
    last = m.second;
  }
  if (last < text.size()) spans.push_back({{last, text.size()}, invert});

  std::vector<std::pair<size_t, size_t>> pieces;
  bool previous_match = false;
  for (const auto& [range, is_match] : spans) {
    switch (behavior) {
      case Behavior::kRemoved:
        if (!is_match) pieces.push_back(range);
        break;
      case Behavior::kIsolated:
        pieces.push_back(range);
        break;
      case Behavior::kMergedWithPrevious:
        if (is_match && !previous_match && !pieces.empty()) {
          pieces.back().second = range.second;
        } else {
          pieces.push_back(range);
        }
        break;
      case Behavior::kMergedWithNext:
        break;  // below
      case Behavior::kContiguous:
        if (is_match == previous_match && !pieces.empty()) {
          pieces.back().second = range.second;
        } else {
          pieces.push_back(range);
        }
        break;
    }
    previous_match = is_match;
  }
  if (behavior == Behavior::kMergedWithNext) {
    // The mirror image of MergedWithPrevious: from the right, a match joins the span after it
    // unless that span is itself a match.
    previous_match = false;
    for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
      const auto& [range, is_match] = *it;
      if (is_match && !previous_match && !pieces.empty()) {
        pieces.back().first = range.first;
      } else {
        pieces.push_back(range);
      }
      previous_match = is_match;
    }
    std::reverse(pieces.begin(), pieces.end());
  }
  for (const auto& [b, e] : pieces) {
    if (e > b) out->push_back(text.substr(b, e - b));
  }
}

}  // namespace

namespace hf_bpe {

// A Metaspace pre-tokenizer's or decoder's replacement character (one character).
std::string metaspace_replacement(const json& node, const std::string& key) {
  if (!node.contains("replacement") || !node["replacement"].is_string() ||
      utf8_chars(node["replacement"].get<std::string>()).size() != 1) {
    throw std::invalid_argument(key + ".replacement: expected one character");
  }
  return node["replacement"].get<std::string>();
}

// Its prepend_scheme: "always", "first" or "never"; older files write add_prefix_space instead
// (true: always, false: never).
PrependScheme metaspace_prepend(const json& node, const std::string& key) {
  using P = PrependScheme;
  if (node.contains("prepend_scheme") && !node["prepend_scheme"].is_null()) {
    const std::string scheme = node["prepend_scheme"].is_string() ? node["prepend_scheme"].get<std::string>() : "";
    if (scheme == "always") return P::kAlways;
    if (scheme == "first") return P::kFirst;
    if (scheme == "never") return P::kNever;
    throw std::invalid_argument(key + ".prepend_scheme '" + scheme + "' is not one of always, first, never");
  }
  return node.value("add_prefix_space", true) ? P::kAlways : P::kNever;
}

}  // namespace hf_bpe

void HfBpeTokenizer::Pipeline::read_normalizers(const json& normalizer) {
  for (const auto& [node, key] : flatten(normalizer, "normalizer", "normalizers")) {
    const std::string type = node->value("type", std::string());
    Pipeline::Normalizer n{Pipeline::Normalizer::kUnicode, nullptr, "", Pattern()};
    UErrorCode status = U_ZERO_ERROR;
    if (type == "NFC") {
      n.unicode = icu::Normalizer2::getNFCInstance(status);
    } else if (type == "NFD") {
      n.unicode = icu::Normalizer2::getNFDInstance(status);
    } else if (type == "NFKC") {
      n.unicode = icu::Normalizer2::getNFKCInstance(status);
    } else if (type == "NFKD") {
      n.unicode = icu::Normalizer2::getNFKDInstance(status);
    } else if (type == "Prepend") {
      n.kind = Pipeline::Normalizer::kPrepend;
      if (!node->contains("prepend") || !(*node)["prepend"].is_string()) {
        throw std::invalid_argument(key + ".prepend: expected a string");
      }
      n.text = (*node)["prepend"].get<std::string>();
    } else if (type == "Replace") {
      n.kind = Pipeline::Normalizer::kReplace;
      if (!node->contains("content") || !(*node)["content"].is_string()) {
        throw std::invalid_argument(key + ".content: expected a string");
      }
      n.text = (*node)["content"].get<std::string>();
      n.pattern = read_pattern(node->value("pattern", json()), key + ".pattern");
    } else {
      throw std::invalid_argument(key + ".type '" + type +
                                  "' is not supported (supported normalizers: NFC, NFD, NFKC, NFKD, "
                                  "Prepend, Replace, Sequence)");
    }
    if (U_FAILURE(status)) throw std::invalid_argument(key + ": ICU has no " + type + " normalizer");
    normalizers.push_back(std::move(n));
  }
}

bool HfBpeTokenizer::Pipeline::read_pre_tokenizers(const json& pre_tokenizer) {
  bool byte_level = false;
  for (const auto& [node, key] : flatten(pre_tokenizer, "pre_tokenizer", "pretokenizers")) {
    const std::string type = node->value("type", std::string());
    Pipeline::PreTokenizer s;
    if (type == "ByteLevel") {
      s.kind = Pipeline::PreTokenizer::kByteLevel;
      s.add_prefix_space = node->value("add_prefix_space", false);
      s.use_regex = node->value("use_regex", true);
      if (s.use_regex) s.pattern = read_pattern(json{{"Regex", kGpt2Pattern}}, key);
      byte_level = true;
    } else if (type == "Split") {
      s.kind = Pipeline::PreTokenizer::kSplit;
      s.pattern = read_pattern(node->value("pattern", json()), key + ".pattern");
      s.invert = node->value("invert", false);
      const std::string behavior = node->value("behavior", std::string());
      const std::vector<std::pair<std::string, Behavior>> names = {
          {"Removed", Behavior::kRemoved},
          {"Isolated", Behavior::kIsolated},
          {"MergedWithPrevious", Behavior::kMergedWithPrevious},
          {"MergedWithNext", Behavior::kMergedWithNext},
          {"Contiguous", Behavior::kContiguous}};
      auto it = std::find_if(names.begin(), names.end(), [&](const auto& n) { return n.first == behavior; });
      if (it == names.end()) {
        throw std::invalid_argument(key + ".behavior '" + behavior +
                                    "' is not one of Removed, Isolated, MergedWithPrevious, "
                                    "MergedWithNext, Contiguous");
      }
      s.behavior = it->second;
    } else if (type == "Digits") {
      s.kind = Pipeline::PreTokenizer::kDigits;
      s.individual_digits = node->value("individual_digits", false);
    } else if (type == "Metaspace") {
      s.kind = Pipeline::PreTokenizer::kMetaspace;
      s.replacement = metaspace_replacement(*node, key);
      s.prepend = metaspace_prepend(*node, key);
      s.split = node->value("split", true);
      s.pattern.literal = s.replacement;
    } else {
      throw std::invalid_argument(key + ".type '" + type +
                                  "' is not supported (supported pre-tokenizers: ByteLevel, Split, "
                                  "Digits, Metaspace, Sequence)");
    }
    pre_tokenizers.push_back(std::move(s));
  }
  return byte_level;
}

// A segment between added tokens: normalized, then split around the normalized added tokens.
void HfBpeTokenizer::encode_segment(const std::string& segment, bool at_start, std::vector<int64_t>* ids) const {
  const Pipeline& p = *pipeline_;
  std::string text = segment;
  for (const auto& n : p.normalizers) {
    switch (n.kind) {
      case Pipeline::Normalizer::kUnicode: {
        UErrorCode status = U_ZERO_ERROR;
        const icu::UnicodeString normalized = n.unicode->normalize(icu::UnicodeString::fromUTF8(text), status);
        if (U_FAILURE(status)) throw std::invalid_argument("hf tokenizer: Unicode normalization failed");
        text.clear();
        normalized.toUTF8String(text);
        break;
      }
      case Pipeline::Normalizer::kPrepend:
        if (!text.empty()) text = n.text + text;
        break;
      case Pipeline::Normalizer::kReplace: {
        std::string out;
        size_t last = 0;
        for (const auto& [b, e] : n.pattern.find_all(text)) {
          out.append(text, last, b - last);
          out += n.text;
          last = e;
        }
        out.append(text, last, std::string::npos);
        text = std::move(out);
        break;
      }
    }
  }
  if (p.normalized_trie.empty()) {
    encode_normalized(text, at_start, ids);
    return;
  }
  bool first = at_start;
  for (const Piece& piece : split_added(text, p.normalized_trie, p.normalized_tokens)) {
    if (piece.id >= 0) {
      ids->push_back(piece.id);
    } else {
      encode_normalized(piece.text, first, ids);
    }
    first = false;
  }
}

// Normalized text: pre-tokenized into words, each word through the BPE model.
void HfBpeTokenizer::encode_normalized(const std::string& text, bool at_start, std::vector<int64_t>* ids) const {
  const Pipeline& p = *pipeline_;
  if (text.empty()) return;
  // The pieces, and whether each begins the input (only the first piece can).
  std::vector<std::string> pieces = {text};
  bool first_at_start = at_start;
  for (const auto& step : p.pre_tokenizers) {
    std::vector<std::string> next;
    bool next_first_at_start = false;
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string& piece = pieces[k];
      const bool piece_at_start = k == 0 && first_at_start;
      const size_t before = next.size();
      switch (step.kind) {
        case Pipeline::PreTokenizer::kByteLevel: {
          if (step.add_prefix_space && piece.rfind(' ', 0) != 0) piece.insert(0, " ");
          std::vector<std::string> words;
          if (step.use_regex) {
            split_spans(piece, step.pattern.find_all(piece), false, Behavior::kIsolated, &words);
          } else {
            words.push_back(piece);
          }
          for (const auto& w : words) {
            std::string mapped;
            for (const unsigned char c : w) mapped += p.byte_char[c];
            next.push_back(std::move(mapped));
          }
          break;
        }
        case Pipeline::PreTokenizer::kSplit:
          split_spans(piece, step.pattern.find_all(piece), step.invert, step.behavior, &next);
          break;
        case Pipeline::PreTokenizer::kDigits: {
          // One match per numeric character; runs of them joined unless individual_digits.
          std::vector<std::pair<size_t, size_t>> matches;
          for (size_t i = 0; i < piece.size();) {
            const size_t begin = i;
            const UChar32 c = next_code_point(piece, &i);
            if (i == begin) ++i;
            if (is_numeric(c)) matches.emplace_back(begin, i);
          }
          split_spans(piece, matches, false,
                      step.individual_digits ? Behavior::kIsolated : Behavior::kContiguous, &next);
          break;
        }
        case Pipeline::PreTokenizer::kMetaspace: {
          // Spaces become the replacement; the replacement goes first (always, or only at the
          // start of the input); then, with split, each replacement begins a new piece.
          std::string replaced = replace_all(piece, " ", step.replacement);
          const bool prepend = step.prepend == PrependScheme::kAlways ||
                               (step.prepend == PrependScheme::kFirst && piece_at_start);
          if (prepend && replaced.rfind(step.replacement, 0) != 0) replaced.insert(0, step.replacement);
          if (step.split) {
            split_spans(replaced, step.pattern.find_all(replaced), false, Behavior::kMergedWithNext, &next);
          } else {
            next.push_back(std::move(replaced));
          }
          break;
        }
      }
      // The first piece still begins the input unless something before it was dropped.
      if (piece_at_start && next.size() > before) next_first_at_start = true;
    }
    pieces = std::move(next);
    first_at_start = next_first_at_start;
  }
  for (const auto& piece : pieces) encode_word(piece, ids);
}

}  // namespace prefengine
