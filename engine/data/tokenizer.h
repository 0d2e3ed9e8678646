#pragma once
// The tokenizer interface the data readers and generation use, and a factory for the kinds:
// "byte" (ByteTokenizer, no files), "sentencepiece" (SentencePieceTokenizer, tokenizer.model) and
// "hf_bpe" (HfBpeTokenizer, a BPE tokenizer.json: byte-level, or SentencePiece-style with
// byte_fallback).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace prefengine {

class Tokenizer {
 public:
  virtual ~Tokenizer();
  // Token ids of `text`, with the BOS id first when add_bos is true and the tokenizer has one.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const = 0;
  // Text of `ids`; BOS, EOS and PAD are left out. An id outside [0, vocab_size) is an
  // std::invalid_argument.
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t bos_id() const = 0;  // -1 when there is none
  virtual int64_t eos_id() const = 0;  // -1 when there is none
  virtual int64_t pad_id() const = 0;  // -1 when there is none
  virtual int64_t vocab_size() const = 0;
};

struct TokenizerOptions {
  std::string kind = "byte";                // "byte", "sentencepiece", "hf_bpe" or "auto" (a
                                            // directory: tokenizer.model if present, else tokenizer.json)
  std::string path;                         // tokenizer.model / tokenizer.json, or a directory holding it
  std::vector<std::string> special_tokens;  // byte: extra atomic tokens, e.g. "<|user|>"

  // Throws std::invalid_argument naming the field (unknown kind: lists the kinds, nearest first).
  void validate() const;
};

// Builds the tokenizer `options` describe. Throws std::invalid_argument for bad options and
// std::runtime_error when a file cannot be loaded.
std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options);

}  // namespace prefengine
