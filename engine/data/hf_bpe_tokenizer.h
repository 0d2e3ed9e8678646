#pragma once
// A Hugging Face `tokenizer.json` BPE tokenizer, read from the file the Rust `tokenizers` library
// writes. Two families are covered:
//  - byte-level BPE (GPT-2, SmolLM, Qwen2/2.5/3, Llama 3): ByteLevel pre-tokenizer (optionally
//    after Split regexes and Digits), GPT-2's byte-to-unicode alphabet, ByteLevel decoder;
//  - SentencePiece-style BPE with byte_fallback (Mistral / Llama 2, Gemma 3): normalizers Prepend /
//    Replace (" " -> "\u2581") or a Metaspace pre-tokenizer, unknown characters as <0xXX> byte
//    tokens, decoders Replace / ByteFallback / Fuse / Strip / Metaspace.
// The pipeline follows the Rust library: added tokens are split out of the raw text first (those
// with normalized=false; the others after normalization), honouring lstrip / rstrip /
// single_word, longest match first; each remaining segment is normalized, pre-tokenized and run
// through the model (merges by rank, ignore_merges, byte_fallback, unk_token with fuse_unk).
// Anything else in the file (a model, normalizer, pre-tokenizer or decoder type not listed in
// README.md) is an std::invalid_argument naming the file and the key, never a silent wrong
// tokenization.
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
  // Runs the file's decoder over the tokens of `ids` (BOS, EOS and PAD left out). Byte-level
  // tokenizers give back the exact bytes encoded; SentencePiece-style ones give back the text up
  // to the normalizer's prefix space (the decoder's Strip).
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_token_.size()); }

  // The id of a token string (as the vocabulary spells it), -1 when unknown.
  int64_t token_id(const std::string& token) const;
  // The token string of an id (as the vocabulary spells it); std::invalid_argument when unknown.
  const std::string& token(int64_t id) const;
  // Whether the tokenizer is byte-level (ByteLevel pre-tokenizer and decoder).
  bool byte_level() const { return byte_level_; }
  // The id the file's post_processor puts before a single sequence (a TemplateProcessing whose
  // `single` starts with a SpecialToken: <s> for Mistral, <bos> for Gemma 3), -1 when it adds
  // none (Qwen3, the first Llama 3 release's ByteLevel post-processor). For callers that must
  // know whether `transformers` would add a BOS on its own.
  int64_t post_processor_bos_id() const { return post_processor_bos_; }

 private:
  struct Pipeline;  // normalizers, pre-tokenizers, decoders, added-token tries (ICU inside)
  // at_start: the text begins the input (Metaspace's prepend_scheme "first").
  void encode_segment(const std::string& text, bool at_start, std::vector<int64_t>* ids) const;
  void encode_normalized(const std::string& text, bool at_start, std::vector<int64_t>* ids) const;
  void encode_word(const std::string& word, std::vector<int64_t>* ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unique_ptr<Pipeline> pipeline_;
  bool byte_level_ = false;
  int64_t bos_ = -1, eos_ = -1, pad_ = -1;
  int64_t post_processor_bos_ = -1;
};

}  // namespace prefengine
