#pragma once
// A SentencePiece model (Llama 1/2, Mistral, TinyLlama tokenizer.model) behind the Tokenizer
// interface. The processor is held through a pointer so this header needs no sentencepiece include.
#include <memory>
#include <string>
#include <vector>

#include "engine/data/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace prefengine {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // Loads `model_path` (a tokenizer.model); throws std::runtime_error naming the file on failure.
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override;
  int64_t eos_id() const override;
  int64_t pad_id() const override;
  int64_t vocab_size() const override;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
};

}  // namespace prefengine
