#pragma once
// Internal to HfBpeTokenizer, whose code is in three files: hf_bpe_tokenizer_json.cpp (the
// constructor, reading tokenizer.json), hf_bpe_pre_tokenizers.cpp (the normalizers and
// pre-tokenizers) and hf_bpe_tokenizer.cpp (added tokens, the BPE model, the decoders). This is
// what they share: the Pipeline, the types it holds and the helpers in namespace hf_bpe; each
// file's other helpers stay in its anonymous namespace.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/umachine.h>

#include "engine/data/hf_bpe_tokenizer.h"

namespace prefengine {
namespace hf_bpe {

// UTF-8 and character classes (hf_bpe_tokenizer.cpp).
// Byte length of the UTF-8 character starting at text[i] (1 for a stray byte).
size_t char_length(const std::string& text, size_t i);
// Splits UTF-8 text into its characters.
std::vector<std::string> utf8_chars(const std::string& text);
// The code point at byte i (advancing i), or the one before byte i (moving i back); -1 when the
// bytes are not UTF-8.
UChar32 next_code_point(const std::string& text, size_t* i);
UChar32 previous_code_point(const std::string& text, size_t* i);
bool valid_utf8(const std::string& text);
// The character classes the tokenizers library uses: Rust's char::is_numeric (Digits), and the
// regex classes \w (single_word) and \s (lstrip / rstrip), Unicode-aware as in Rust's regex.
bool is_numeric(UChar32 c);
bool is_word_character(UChar32 c);
bool is_whitespace(UChar32 c);
std::string replace_all(const std::string& text, const std::string& from, const std::string& to);

// The steps a `type: Sequence` node lists under `list_key`, or the node itself, with each step's
// key path for error messages (hf_bpe_tokenizer_json.cpp).
std::vector<std::pair<const nlohmann::json*, std::string>> flatten(const nlohmann::json& node,
                                                                   const std::string& key,
                                                                   const char* list_key);

// A literal or regex pattern of a Split pre-tokenizer or Replace normalizer.
struct Pattern {
  std::string literal;                        // when regex is null
  std::unique_ptr<icu::RegexPattern> regex;

  // [begin, end) byte ranges of the non-empty, non-overlapping matches in `text`, left to right
  // (hf_bpe_pre_tokenizers.cpp).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;
};

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

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
// rstrip tokens take the whitespace on their left / right with them (hf_bpe_tokenizer.cpp).
std::vector<Piece> split_added(const std::string& text, const TokenTrie& trie,
                               const std::vector<AddedToken>& tokens);

// Metaspace's prepend_scheme.
enum class PrependScheme { kAlways, kFirst, kNever };

// The Metaspace helpers of hf_bpe_pre_tokenizers.cpp: a Metaspace pre-tokenizer's or decoder's
// replacement character (one character), and its prepend_scheme: "always", "first" or "never";
// older files write add_prefix_space instead (true: always, false: never).
std::string metaspace_replacement(const nlohmann::json& node, const std::string& key);
PrependScheme metaspace_prepend(const nlohmann::json& node, const std::string& key);

}  // namespace hf_bpe

struct HfBpeTokenizer::Pipeline {
  // Added tokens: those matched on the raw text (normalized=false) and those matched after the
  // normalizer ran (normalized=true).
  std::vector<hf_bpe::AddedToken> raw_tokens, normalized_tokens;
  hf_bpe::TokenTrie raw_trie, normalized_trie;

  struct Normalizer {
    enum Kind { kUnicode, kPrepend, kReplace } kind = kUnicode;
    const icu::Normalizer2* unicode = nullptr;
    std::string text;  // Prepend: the prefix; Replace: the replacement
    hf_bpe::Pattern pattern;  // Replace
  };
  std::vector<Normalizer> normalizers;

  struct PreTokenizer {
    enum Kind { kByteLevel, kSplit, kDigits, kMetaspace } kind = kByteLevel;
    hf_bpe::PrependScheme prepend = hf_bpe::PrependScheme::kAlways;  // Metaspace
    std::string replacement;                                          // Metaspace
    bool split = true;                                                // Metaspace
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = true;          // ByteLevel
    bool individual_digits = false; // Digits
    hf_bpe::Pattern pattern;        // Split; ByteLevel with use_regex: GPT-2's
    hf_bpe::Behavior behavior = hf_bpe::Behavior::kIsolated;
    bool invert = false;
  };
  std::vector<PreTokenizer> pre_tokenizers;

  // Append the steps of tokenizer.json's normalizer / pre_tokenizer node
  // (hf_bpe_pre_tokenizers.cpp); std::invalid_argument naming the key of an unsupported or
  // malformed step. read_pre_tokenizers returns whether a step is ByteLevel.
  void read_normalizers(const nlohmann::json& normalizer);
  bool read_pre_tokenizers(const nlohmann::json& pre_tokenizer);

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

}  // namespace prefengine
