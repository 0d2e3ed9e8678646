#pragma once
// A Hugging Face `tokenizer.json` byte-level BPE tokenizer (GPT-2, SmolLM/SmolLM2, Qwen2/2.5,
// Llama 3): added tokens matched atomically, an optional NFC normalizer, the pre-tokenizer's
// regex splits (ICU regex, so \p{L} and look-ahead work as in the Rust tokenizers), digit
// splitting, the byte-to-unicode map and rank-ordered merges. Other pipelines (Metaspace /
// byte_fallback tokenizers of Llama 2 and Mistral: use their tokenizer.model instead, WordPiece,
// Unigram) are errors naming the unsupported part.
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/data/tokenizer.h"

namespace prefengine {

class HfBpeTokenizer : public Tokenizer {
 public:
  // path: a tokenizer.json, or a directory holding one. BOS/EOS/PAD come from the
  // tokenizer_config.json next to it (bos_token, eos_token, pad_token), -1 when absent.
  // Throws std::runtime_error when a file cannot be read and std::invalid_argument naming the
  // file and the unsupported or malformed part.
  explicit HfBpeTokenizer(const std::string& path);
  ~HfBpeTokenizer() override;

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }

  // The id of a token string (as the vocabulary spells it), -1 when unknown.
  int64_t token_id(const std::string& token) const;

 private:
  struct Regexes;  // ICU patterns, kept out of this header
  void encode_segment(const std::string& text, std::vector<int64_t>* ids) const;
  void encode_word(const std::string& word, std::vector<int64_t>* ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> merge_ranks_;  // "left right" -> rank
  std::vector<std::pair<std::string, int64_t>> added_;    // content, id; longest first
  std::vector<bool> is_added_;                            // per id
  std::unique_ptr<Regexes> regexes_;
  bool nfc_ = false;
  bool split_digits_ = false;       // Digits pre-tokenizer present
  bool individual_digits_ = false;  // ... with individual_digits
  bool add_prefix_space_ = false;
  bool ignore_merges_ = false;
  std::string byte_char_[256];                           // byte -> its unicode stand-in (UTF-8)
  std::unordered_map<std::string, unsigned char> char_byte_;
  int64_t bos_ = -1, eos_ = -1, pad_ = -1;
};

}  // namespace prefengine
