#include "engine/data/sentencepiece_tokenizer.h"

#include <stdexcept>

#include <sentencepiece_processor.h>

namespace prefengine {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  const auto status = processor_->Load(model_path);
  if (!status.ok()) {
    throw std::runtime_error(model_path + ": cannot load the SentencePiece model (" +
                             status.ToString() + ")");
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int> pieces;
  const auto status = processor_->Encode(text, &pieces);
  if (!status.ok()) throw std::invalid_argument("sentencepiece: encode failed: " + status.ToString());
  std::vector<int64_t> ids;
  ids.reserve(pieces.size() + 1);
  if (add_bos && bos_id() >= 0) ids.push_back(bos_id());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> pieces;
  pieces.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw std::invalid_argument("sentencepiece: id " + std::to_string(id) + " is outside [0, " +
                                  std::to_string(vocab_size()) + ")");
    }
    if (id == bos_id() || id == eos_id() || id == pad_id()) continue;
    pieces.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = processor_->Decode(pieces, &text);
  if (!status.ok()) throw std::invalid_argument("sentencepiece: decode failed: " + status.ToString());
  return text;
}

int64_t SentencePieceTokenizer::bos_id() const { return processor_->bos_id(); }
int64_t SentencePieceTokenizer::eos_id() const { return processor_->eos_id(); }
int64_t SentencePieceTokenizer::pad_id() const { return processor_->pad_id(); }
int64_t SentencePieceTokenizer::vocab_size() const { return processor_->GetPieceSize(); }

}  // namespace prefengine
