#include "engine/data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <queue>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>
#include <unicode/utf8.h>

namespace prefengine {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex (the default).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Reading the whole file first and parsing from memory is faster than parsing the stream
// (Gemma 3's tokenizer.json is 33 MB).
json read_json_file(const fs::path& path) {
  const std::string text = read_text(path);
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// Reads a tokenizer.json with nlohmann's SAX interface: the model's vocabulary and merges are
// collected as plain strings and ids while parsing, everything else becomes a JSON value (with
// model.vocab and model.merges left empty). Building the vocabulary and merges as JSON values and
// freeing them took four times as long (Gemma 3's 33 MB file: 262k tokens, 515k merges).
class TokenizerJsonReader {
 public:
  explicit TokenizerJsonReader(json* result) : dom_(*result, true) {}

  std::vector<std::pair<std::string, int64_t>> vocab;  // token, id; -1 when not an id
  std::vector<std::pair<std::string, std::string>> merges;
  bool vocab_seen = false, merges_seen = false;         // as an object / a list
  int64_t bad_merge = -1;                              // index of the first malformed merge

  bool null() { return capturing() ? captured_value(-1) : dom_.null(); }
  bool boolean(bool b) { return capturing() ? captured_value(-1) : dom_.boolean(b); }
  bool number_integer(json::number_integer_t v) {
    return capturing() ? captured_value(v < 0 ? -1 : v) : dom_.number_integer(v);
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (!capturing()) return dom_.number_unsigned(v);
    return captured_value(v > static_cast<json::number_unsigned_t>(INT32_MAX) ? -1 : static_cast<int64_t>(v));
  }
  bool number_float(json::number_float_t v, const std::string& s) {
    return capturing() ? captured_value(-1) : dom_.number_float(v, s);
  }
  bool binary(json::binary_t& b) { return capturing() ? captured_value(-1) : dom_.binary(b); }
  bool string(std::string& s) {
    if (!capturing()) return dom_.string(s);
    if (capture_ == kVocab) return captured_value(-1);
    if (depth_ == capture_depth_) {  // "left right"
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) return malformed_merge();
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (depth_ == capture_depth_ + 1) {  // one half of [left, right]
      pair_.push_back(std::move(s));
    } else {
      return malformed_merge();
    }
    return true;
  }
  bool start_object(std::size_t n) {
    if (capturing()) {
      if (depth_ == capture_depth_) captured_value(-1);
      if (capture_ == kMerges) malformed_merge();
      ++depth_;
      return true;
    }
    ++depth_;
    if (depth_ == 3 && key1_ == "model" && key2_ == "vocab") {
      capture_ = kVocab;
      capture_depth_ = depth_;
      vocab_seen = true;
    }
    return dom_.start_object(n);
  }
  bool end_object() { return end_container(false); }
  bool start_array(std::size_t n) {
    if (capturing()) {
      if (capture_ == kVocab && depth_ == capture_depth_) captured_value(-1);
      if (capture_ == kMerges && depth_ == capture_depth_) {
        pair_.clear();
      } else if (capture_ == kMerges) {
        malformed_merge();
      }
      ++depth_;
      return true;
    }
    ++depth_;
    if (depth_ == 3 && key1_ == "model" && key2_ == "merges") {
      capture_ = kMerges;
      capture_depth_ = depth_;
      merges_seen = true;
    }
    return dom_.start_array(n);
  }
  bool end_array() { return end_container(true); }
  bool key(std::string& k) {
    if (capturing()) {
      if (depth_ == capture_depth_) pending_key_ = k;
      return true;
    }
    if (depth_ == 1) key1_ = k;
    if (depth_ == 2) key2_ = k;
    return dom_.key(k);
  }
  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    return dom_.parse_error(position, token, e);
  }

 private:
  bool capturing() const { return capture_ != kNone; }
  bool captured_value(int64_t id) {
    if (capture_ == kVocab && depth_ == capture_depth_) {
      vocab.emplace_back(pending_key_, id);
    } else if (capture_ == kMerges) {
      malformed_merge();
    }
    return true;
  }
  bool malformed_merge() {
    if (bad_merge < 0) bad_merge = static_cast<int64_t>(merges.size());
    return true;
  }
  bool end_container(bool array) {
    if (capturing() && depth_ > capture_depth_) {
      if (array && capture_ == kMerges && depth_ == capture_depth_ + 1) {
        if (pair_.size() == 2) {
          merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        } else {
          malformed_merge();
        }
      }
      --depth_;
      return true;
    }
    capture_ = kNone;
    --depth_;
    return array ? dom_.end_array() : dom_.end_object();
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  enum { kNone, kVocab, kMerges } capture_ = kNone;
  int depth_ = 0, capture_depth_ = 0;  // open containers; the captured container's depth
  std::string key1_, key2_, pending_key_;  // current key in the root object, in root.model
  std::vector<std::string> pair_;
};

std::string utf8_of(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

// Byte length of the UTF-8 character starting at text[i] (1 for a stray byte).
size_t char_length(const std::string& text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return std::min(n, text.size() - i);
}

// Splits UTF-8 text into its characters.
std::vector<std::string> utf8_chars(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    const size_t n = char_length(text, i);
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

// The code point at byte i (advancing i), or the one before byte i (moving i back); -1 when the
// bytes are not UTF-8.
UChar32 next_code_point(const std::string& text, size_t* i) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  int32_t k = static_cast<int32_t>(*i);
  UChar32 c;
  U8_NEXT(s, k, static_cast<int32_t>(text.size()), c);
  *i = static_cast<size_t>(k);
  return c;
}
UChar32 previous_code_point(const std::string& text, size_t* i) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  int32_t k = static_cast<int32_t>(*i);
  UChar32 c;
  U8_PREV(s, 0, k, c);
  *i = static_cast<size_t>(k);
  return c;
}

bool valid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    if (next_code_point(text, &i) < 0) return false;
  }
  return true;
}

// The character classes the tokenizers library uses: Rust's char::is_numeric (Digits), and the
// regex classes \w (single_word) and \s (lstrip / rstrip), Unicode-aware as in Rust's regex.
bool is_numeric(UChar32 c) {
  if (c < 0) return false;
  const int8_t t = u_charType(c);
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
bool is_word_character(UChar32 c) {
  if (c < 0) return false;
  const int8_t t = u_charType(c);
  return u_isUAlphabetic(c) || t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK ||
         t == U_COMBINING_SPACING_MARK || t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION ||
         u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL);
}
bool is_whitespace(UChar32 c) { return c >= 0 && u_isUWhiteSpace(c); }

std::string token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return "";
}

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty() || text.find(from) == std::string::npos) return text;
  std::string out;
  size_t start = 0;
  for (size_t at; (at = text.find(from, start)) != std::string::npos; start = at + from.size()) {
    out.append(text, start, at - start);
    out += to;
  }
  out.append(text, start, std::string::npos);
  return out;
}

// The steps a `type: Sequence` node lists under `list_key`, or the node itself, with each step's
// key path for error messages.
std::vector<std::pair<const json*, std::string>> flatten(const json& node, const std::string& key,
                                                         const char* list_key) {
  std::vector<std::pair<const json*, std::string>> out;
  if (node.is_object() && node.value("type", std::string()) == "Sequence") {
    if (!node.contains(list_key) || !node[list_key].is_array()) {
      throw std::invalid_argument(key + ": a Sequence needs a '" + list_key + "' list");
    }
    for (size_t i = 0; i < node[list_key].size(); ++i) {
      auto inner = flatten(node[list_key][i], key + "." + list_key + "[" + std::to_string(i) + "]", list_key);
      out.insert(out.end(), inner.begin(), inner.end());
    }
  } else {
    out.emplace_back(&node, key);
  }
  return out;
}

// A literal or regex pattern of a Split pre-tokenizer or Replace normalizer.
struct Pattern {
  std::string literal;                        // when regex is null
  std::unique_ptr<icu::RegexPattern> regex;

  // [begin, end) byte ranges of the non-empty, non-overlapping matches in `text`, left to right.
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const {
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
};

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

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

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

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false, rstrip = false, single_word = false;
};

// Byte trie over added-token contents: the longest token starting at a position.
class TokenTrie {
 public:
  bool empty() const { return nodes_.size() == 1; }
  void insert(const std::string& s, int32_t value) {
    int32_t node = 0;
    for (const unsigned char c : s) {
      int32_t child = find_child(node, c);
      if (child < 0) {
        child = static_cast<int32_t>(nodes_.size());
        nodes_.emplace_back();
        nodes_[static_cast<size_t>(node)].children.emplace_back(c, child);
        if (node == 0) root_[c] = child;
      }
      node = child;
    }
    nodes_[static_cast<size_t>(node)].value = value;
  }
  // The value of the longest key that text[at..] starts with, and its end; value -1 when none.
  std::pair<int32_t, size_t> longest(const std::string& text, size_t at) const {
    std::pair<int32_t, size_t> best{-1, at};
    int32_t node = 0;
    for (size_t i = at; i < text.size(); ++i) {
      node = find_child(node, static_cast<unsigned char>(text[i]));
      if (node < 0) break;
      if (nodes_[static_cast<size_t>(node)].value >= 0) best = {nodes_[static_cast<size_t>(node)].value, i + 1};
    }
    return best;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t value = -1;
  };
  int32_t find_child(int32_t node, unsigned char c) const {
    if (node == 0) return root_[c];
    for (const auto& [k, child] : nodes_[static_cast<size_t>(node)].children) {
      if (k == c) return child;
    }
    return -1;
  }
  std::vector<Node> nodes_{1};
  int32_t root_[256];  // the root's children by byte, -1 when absent

 public:
  TokenTrie() { std::fill(std::begin(root_), std::end(root_), -1); }
};

// A piece of text after the added tokens are split out: a token id, or text (id -1).
struct Piece {
  std::string text;
  int64_t id = -1;
};

// Splits the added tokens in `trie` out of `text` as the Rust library's AddedVocabulary does:
// leftmost, then longest match; single_word tokens only between non-word characters; lstrip /
// rstrip tokens take the whitespace on their left / right with them.
std::vector<Piece> split_added(const std::string& text, const TokenTrie& trie,
                               const std::vector<AddedToken>& tokens) {
  std::vector<Piece> out;
  size_t segment_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto [value, end] = trie.longest(text, i);
    if (value < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens[static_cast<size_t>(value)];
    if (t.single_word) {
      size_t before = i, after = end;
      const bool word_before = i > 0 && is_word_character(previous_code_point(text, &before));
      const bool word_after = end < text.size() && is_word_character(next_code_point(text, &after));
      if (word_before || word_after) {
        ++i;
        continue;
      }
    }
    size_t start = i, stop = end;
    if (t.lstrip) {
      while (start > segment_start) {
        size_t k = start;
        if (!is_whitespace(previous_code_point(text, &k))) break;
        start = k;
      }
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t k = stop;
        if (!is_whitespace(next_code_point(text, &k))) break;
        stop = k;
      }
    }
    if (start > segment_start) out.push_back({text.substr(segment_start, start - segment_start), -1});
    out.push_back({std::string(), t.id});
    segment_start = stop;
    i = stop;
  }
  if (segment_start < text.size()) out.push_back({text.substr(segment_start), -1});
  return out;
}

// Metaspace's prepend_scheme.
enum class PrependScheme { kAlways, kFirst, kNever };

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

}  // namespace

struct HfBpeTokenizer::Pipeline {
  // Added tokens: those matched on the raw text (normalized=false) and those matched after the
  // normalizer ran (normalized=true).
  std::vector<AddedToken> raw_tokens, normalized_tokens;
  TokenTrie raw_trie, normalized_trie;

  struct Normalizer {
    enum Kind { kUnicode, kPrepend, kReplace } kind = kUnicode;
    const icu::Normalizer2* unicode = nullptr;
    std::string text;  // Prepend: the prefix; Replace: the replacement
    Pattern pattern;   // Replace
  };
  std::vector<Normalizer> normalizers;

  struct PreTokenizer {
    enum Kind { kByteLevel, kSplit, kDigits, kMetaspace } kind = kByteLevel;
    PrependScheme prepend = PrependScheme::kAlways;               // Metaspace
    std::string replacement;                                      // Metaspace
    bool split = true;                                            // Metaspace
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = true;          // ByteLevel
    bool individual_digits = false; // Digits
    Pattern pattern;                // Split; ByteLevel with use_regex: GPT-2's
    Behavior behavior = Behavior::kIsolated;
    bool invert = false;
  };
  std::vector<PreTokenizer> pre_tokenizers;

  struct Decoder {
    enum Kind { kByteLevel, kReplace, kByteFallback, kFuse, kStrip, kMetaspace } kind = kFuse;
    std::string from, to;  // Replace
    std::string strip;     // Strip: the character
    size_t start = 0, stop = 0;
    bool metaspace_prepends = true;  // Metaspace: drop the replacement in the first token
  };
  std::vector<Decoder> decoders;

  // BPE model.
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged)
  bool ignore_merges = false;
  bool byte_fallback = false;
  bool fuse_unk = false;
  int64_t unk = -1;
  int64_t byte_token[256];  // <0xXX> ids (byte_fallback), -1 when absent

  // GPT-2's byte-to-unicode map (ByteLevel).
  std::string byte_char[256];
  std::unordered_map<std::string, unsigned char> char_byte;
};

HfBpeTokenizer::~HfBpeTokenizer() = default;

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) : pipeline_(std::make_unique<Pipeline>()) {
  Pipeline& p = *pipeline_;
  fs::path file(path);
  if (fs::is_directory(file)) file /= "tokenizer.json";
  const std::string where = file.string();
  json j;
  TokenizerJsonReader reader(&j);
  {
    const std::string text = read_text(file);
    try {
      json::sax_parse(text, &reader);
    } catch (const std::exception& e) {
      throw std::invalid_argument(where + ": not valid JSON (" + e.what() + ")");
    }
  }
  auto fail = [&](const std::string& what) { throw std::invalid_argument(where + ": " + what); };
  // Errors thrown by helpers carry the key; prefix them with the file.
  auto guarded = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      if (message.rfind(where, 0) == 0) throw;
      fail(message);
    }
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("expected a 'model' object");
  const json& model = j["model"];
  const std::string model_type = model.value("type", std::string());
  if (model_type != "BPE") {
    fail("model.type '" + model_type + "' is not supported (only BPE; WordPiece, Unigram and WordLevel are not)");
  }
  auto string_or_null = [&](const char* key) -> std::string {
    if (!model.contains(key) || model[key].is_null()) return "";
    if (!model[key].is_string()) fail(std::string("model.") + key + ": expected a string or null");
    return model[key].get<std::string>();
  };
  if (!string_or_null("continuing_subword_prefix").empty() || !string_or_null("end_of_word_suffix").empty()) {
    fail("model.continuing_subword_prefix / model.end_of_word_suffix are not supported (expected null or \"\")");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail("model.dropout: BPE dropout is not supported (expected null)");
  }
  p.ignore_merges = model.value("ignore_merges", false);
  p.byte_fallback = model.value("byte_fallback", false);
  p.fuse_unk = model.value("fuse_unk", false);

  // Byte-level alphabet: GPT-2's bytes_to_unicode.
  {
    std::vector<bool> direct(256, false);
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      p.byte_char[b] = utf8_of(direct[b] ? uint32_t(b) : next++);
      p.char_byte[p.byte_char[b]] = static_cast<unsigned char>(b);
    }
  }

  // Vocabulary and added tokens.
  if (!reader.vocab_seen) fail("expected model.vocab (an object)");
  int64_t max_id = -1;
  vocab_.reserve(reader.vocab.size() + 1024);
  for (const auto& [token, id] : reader.vocab) {
    if (id < 0) fail("model.vocab['" + token + "'] is not an id");
    vocab_[token] = id;
    max_id = std::max(max_id, id);
  }
  reader.vocab = {};
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) fail("added_tokens: expected a list");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const json& t = j["added_tokens"][i];
      const std::string key = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
          !t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty()) {
        fail(key + ": expected an id and a non-empty content");
      }
      AddedToken a;
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int64_t>();
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      const bool special = t.value("special", false);
      // As in the Rust library: special tokens default to normalized=false, others to true.
      const bool normalized = t.contains("normalized") && t["normalized"].is_boolean() ? t["normalized"].get<bool>()
                                                                                        : !special;
      auto& list = normalized ? p.normalized_tokens : p.raw_tokens;
      (normalized ? p.normalized_trie : p.raw_trie).insert(a.content, static_cast<int32_t>(list.size()));
      list.push_back(a);
      vocab_[a.content] = a.id;
      max_id = std::max(max_id, a.id);
    }
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = token;

  const std::string unk = string_or_null("unk_token");
  if (!unk.empty()) {
    p.unk = token_id(unk);
    if (p.unk < 0) fail("model.unk_token '" + unk + "' is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    p.byte_token[b] = token_id(name);
  }

  // Merges: "left right" strings or [left, right] pairs, by rank.
  if (!reader.merges_seen) fail("expected model.merges (a list)");
  if (reader.bad_merge >= 0) {
    fail("model.merges[" + std::to_string(reader.bad_merge) + "] is neither 'left right' nor [left, right]");
  }
  p.merges.reserve(reader.merges.size());
  int32_t rank = 0;
  std::string both;
  for (const auto& [left, right] : reader.merges) {
    both.assign(left).append(right);
    const int64_t a = token_id(left), b = token_id(right), merged = token_id(both);
    if (a < 0 || b < 0 || merged < 0) {
      fail("model.merges[" + std::to_string(rank) + "] ('" + left + "', '" + right + "'): '" +
           (a < 0 ? left : b < 0 ? right : both) + "' is not in the vocabulary");
    }
    p.merges.emplace((static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b),
                     std::make_pair(rank, static_cast<int32_t>(merged)));
    ++rank;
  }
  reader.merges = {};

  // Normalizer.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    guarded([&] {
      for (const auto& [node, key] : flatten(j["normalizer"], "normalizer", "normalizers")) {
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
        p.normalizers.push_back(std::move(n));
      }
    });
  }

  // Pre-tokenizer.
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    guarded([&] {
      for (const auto& [node, key] : flatten(j["pre_tokenizer"], "pre_tokenizer", "pretokenizers")) {
        const std::string type = node->value("type", std::string());
        Pipeline::PreTokenizer s;
        if (type == "ByteLevel") {
          s.kind = Pipeline::PreTokenizer::kByteLevel;
          s.add_prefix_space = node->value("add_prefix_space", false);
          s.use_regex = node->value("use_regex", true);
          if (s.use_regex) s.pattern = read_pattern(json{{"Regex", kGpt2Pattern}}, key);
          byte_level_ = true;
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
        p.pre_tokenizers.push_back(std::move(s));
      }
    });
  }
  if (!byte_level_ && !p.byte_fallback) {
    fail("a BPE model without byte_fallback needs a ByteLevel pre_tokenizer (byte-level BPE); "
         "found none");
  }

  // Decoder; none: ByteLevel for a byte-level tokenizer, else the tokens concatenated.
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    guarded([&] {
      for (const auto& [node, key] : flatten(j["decoder"], "decoder", "decoders")) {
        const std::string type = node->value("type", std::string());
        Pipeline::Decoder d{Pipeline::Decoder::kFuse, "", "", "", 0, 0};
        if (type == "ByteLevel") {
          d.kind = Pipeline::Decoder::kByteLevel;
        } else if (type == "ByteFallback") {
          d.kind = Pipeline::Decoder::kByteFallback;
        } else if (type == "Fuse") {
          d.kind = Pipeline::Decoder::kFuse;
        } else if (type == "Replace") {
          d.kind = Pipeline::Decoder::kReplace;
          const json pattern = node->value("pattern", json());
          if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
              pattern["String"].get<std::string>().empty()) {
            throw std::invalid_argument(key + ".pattern: only a non-empty {\"String\": ...} pattern is supported");
          }
          if (!node->contains("content") || !(*node)["content"].is_string()) {
            throw std::invalid_argument(key + ".content: expected a string");
          }
          d.from = pattern["String"].get<std::string>();
          d.to = (*node)["content"].get<std::string>();
        } else if (type == "Metaspace") {
          d.kind = Pipeline::Decoder::kMetaspace;
          d.from = metaspace_replacement(*node, key);
          d.metaspace_prepends = metaspace_prepend(*node, key) != PrependScheme::kNever;
        } else if (type == "Strip") {
          d.kind = Pipeline::Decoder::kStrip;
          if (!node->contains("content") || !(*node)["content"].is_string() ||
              utf8_chars((*node)["content"].get<std::string>()).size() != 1) {
            throw std::invalid_argument(key + ".content: expected one character");
          }
          d.strip = (*node)["content"].get<std::string>();
          d.start = node->value("start", size_t{0});
          d.stop = node->value("stop", size_t{0});
        } else {
          throw std::invalid_argument(key + ".type '" + type +
                                      "' is not supported (supported decoders: ByteLevel, Replace, "
                                      "ByteFallback, Fuse, Strip, Metaspace, Sequence)");
        }
        p.decoders.push_back(std::move(d));
      }
    });
  } else if (byte_level_) {
    p.decoders.push_back({Pipeline::Decoder::kByteLevel, "", "", "", 0, 0});
  }

  // The BOS a TemplateProcessing post-processor puts first (not applied by encode: add_bos is).
  if (j.contains("post_processor") && j["post_processor"].is_object()) {
    const json& post = j["post_processor"];
    if (post.value("type", std::string()) == "TemplateProcessing" && post.contains("single") &&
        post["single"].is_array() && !post["single"].empty() && post["single"][0].contains("SpecialToken")) {
      const std::string name = post["single"][0]["SpecialToken"].value("id", std::string());
      int64_t id = -1;
      if (post.contains("special_tokens") && post["special_tokens"].contains(name) &&
          post["special_tokens"][name].contains("ids") && post["special_tokens"][name]["ids"].is_array() &&
          post["special_tokens"][name]["ids"].size() == 1 && post["special_tokens"][name]["ids"][0].is_number_integer()) {
        id = post["special_tokens"][name]["ids"][0].get<int64_t>();
      } else {
        id = token_id(name);
      }
      if (id < 0) fail("post_processor.single[0].SpecialToken '" + name + "' is not in the vocabulary");
      post_processor_bos_ = id;
    }
  }

  // Special tokens from tokenizer_config.json.
  const fs::path config = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) {
    const json c = read_json_file(config);
    auto lookup = [&](const char* key) -> int64_t {
      if (!c.contains(key)) return -1;
      const std::string content = token_content(c[key]);
      if (content.empty()) return -1;
      const int64_t id = token_id(content);
      if (id < 0) {
        throw std::invalid_argument(config.string() + ": " + key + " '" + content +
                                    "' is not in the vocabulary");
      }
      return id;
    };
    bos_ = lookup("bos_token");
    eos_ = lookup("eos_token");
    pad_ = lookup("pad_token");
  }
}

int64_t HfBpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string& HfBpeTokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || id_to_token_[static_cast<size_t>(id)].empty()) {
    throw std::invalid_argument("hf tokenizer: id " + std::to_string(id) + " is not a token");
  }
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<int64_t> HfBpeTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  const Pipeline& p = *pipeline_;
  if (p.raw_trie.empty()) {
    encode_segment(text, true, &ids);
    return ids;
  }
  bool first = true;
  for (const Piece& piece : split_added(text, p.raw_trie, p.raw_tokens)) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
    } else {
      encode_segment(piece.text, first, &ids);
    }
    first = false;
  }
  return ids;
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

void HfBpeTokenizer::encode_word(const std::string& word, std::vector<int64_t>* ids) const {
  const Pipeline& p = *pipeline_;
  if (word.empty()) return;
  if (p.ignore_merges) {
    const int64_t id = token_id(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  // The word's initial symbols: one per character (or per byte with byte_fallback, or an unknown
  // token), as a doubly linked list merged by rank.
  struct Symbol {
    int64_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int64_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  };
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t n = char_length(word, i);
    const int64_t id = token_id(word.substr(i, n));
    bool known = id >= 0;
    if (known) {
      if (pending_unk) add(p.unk);
      pending_unk = false;
      add(id);
    } else if (p.byte_fallback &&
               std::all_of(word.begin() + static_cast<std::ptrdiff_t>(i),
                           word.begin() + static_cast<std::ptrdiff_t>(i + n),
                           [&](char c) { return p.byte_token[static_cast<unsigned char>(c)] >= 0; })) {
      if (pending_unk) add(p.unk);
      pending_unk = false;
      for (size_t k = i; k < i + n; ++k) add(p.byte_token[static_cast<unsigned char>(word[k])]);
    } else if (p.unk >= 0) {
      if (pending_unk && !p.fuse_unk) add(p.unk);
      pending_unk = true;
    } else {
      throw std::invalid_argument("hf tokenizer: no token for the symbol '" + word.substr(i, n) +
                                  "' and no unk_token");
    }
    i += n;
  }
  if (pending_unk) add(p.unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    auto it = p.merges.find((static_cast<uint64_t>(symbols[static_cast<size_t>(pos)].id) << 32) |
                            static_cast<uint64_t>(symbols[static_cast<size_t>(next)].id));
    if (it != p.merges.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    auto it = p.merges.find((static_cast<uint64_t>(left.id) << 32) | static_cast<uint64_t>(right.id));
    if (it == p.merges.end() || it->second.second != top.merged) continue;  // stale candidate
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    ids->push_back(symbols[static_cast<size_t>(i)].id);
  }
}

std::string HfBpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  const Pipeline& p = *pipeline_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    const std::string& t = token(id);
    if (id == bos_ || id == eos_ || id == pad_) continue;
    tokens.push_back(t);
  }
  for (const auto& d : p.decoders) {
    std::vector<std::string> next;
    switch (d.kind) {
      case Pipeline::Decoder::kByteLevel: {
        // Each token's characters back to bytes; a token with a character outside the byte
        // alphabet (an added token) is kept as it is. The result is one token of raw bytes.
        std::string bytes;
        for (const auto& t : tokens) {
          std::string mapped;
          bool all = true;
          for (const auto& ch : utf8_chars(t)) {
            auto it = p.char_byte.find(ch);
            if (it == p.char_byte.end()) {
              all = false;
              break;
            }
            mapped.push_back(static_cast<char>(it->second));
          }
          bytes += all ? mapped : t;
        }
        next.push_back(std::move(bytes));
        break;
      }
      case Pipeline::Decoder::kReplace:
        for (const auto& t : tokens) next.push_back(replace_all(t, d.from, d.to));
        break;
      case Pipeline::Decoder::kByteFallback: {
        // Runs of <0xXX> tokens become their bytes when those are UTF-8, else one U+FFFD per byte.
        std::string run;
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (valid_utf8(run)) {
            next.push_back(run);
          } else {
            for (size_t k = 0; k < run_tokens; ++k) next.push_back("\xEF\xBF\xBD");
          }
          run.clear();
          run_tokens = 0;
        };
        for (const auto& t : tokens) {
          unsigned value = 0;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
            value = static_cast<unsigned>(std::stoul(t.substr(3, 2), nullptr, 16));
            run.push_back(static_cast<char>(value));
            ++run_tokens;
            continue;
          }
          flush();
          next.push_back(t);
        }
        flush();
        break;
      }
      case Pipeline::Decoder::kMetaspace:
        // The replacement becomes a space, except in the first token, where (unless the
        // prepend scheme is "never") every replacement is dropped, as the Rust decoder does.
        for (size_t k = 0; k < tokens.size(); ++k) {
          next.push_back(replace_all(tokens[k], d.from, k == 0 && d.metaspace_prepends ? "" : " "));
        }
        break;
      case Pipeline::Decoder::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case Pipeline::Decoder::kStrip:
        for (const auto& t : tokens) {
          size_t begin = 0, end = t.size();
          for (size_t k = 0; k < d.start && t.compare(begin, d.strip.size(), d.strip) == 0; ++k) {
            begin += d.strip.size();
          }
          for (size_t k = 0; k < d.stop && end >= begin + d.strip.size() &&
                             t.compare(end - d.strip.size(), d.strip.size(), d.strip) == 0;
               ++k) {
            end -= d.strip.size();
          }
          next.push_back(t.substr(begin, end - begin));
        }
        break;
    }
    tokens = std::move(next);
  }
  std::string text;
  for (const auto& t : tokens) text += t;
  return text;
}

}  // namespace prefengine
