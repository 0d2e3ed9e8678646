#pragma once
// A SentencePiece model (Llama 1/2, Mistral, TinyLlama tokenizer.model) behind the Tokenizer
// interface. libsentencepiece is reached only through the module libprefengine_sentencepiece.so
// (sentencepiece_shim.cc), loaded in isolation: Debian's libsentencepiece exports a bundled
// protobuf that crashes a process that also loads LibTorch's libprotobuf.
#include <string>
#include <vector>

#include "engine/data/tokenizer.h"

namespace prefengine {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Loads `model_path` (a tokenizer.model); throws std::runtime_error naming the file on failure.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return bos_; }
  int64_t eos_id() const override { return eos_; }
  int64_t pad_id() const override { return pad_; }
  int64_t vocab_size() const override { return size_; }

 private:
  void* processor_ = nullptr;
  int64_t bos_ = -1, eos_ = -1, pad_ = -1, size_ = 0;
};

// Trains a SentencePiece model with the library's trainer; `arguments` as for spm_train, e.g.
// "--input=corpus.txt --model_prefix=sp --vocab_size=1000". Throws std::invalid_argument with
// the trainer's message on failure.
void train_sentencepiece(const std::string& arguments);

}  // namespace prefengine
