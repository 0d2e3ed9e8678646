#include "engine/data/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "engine/data/byte_tokenizer.h"
#include "engine/data/hf_bpe_tokenizer.h"
#include "engine/data/sentencepiece_tokenizer.h"
#include "prefengine/plugin_options.h"

namespace prefengine {

Tokenizer::~Tokenizer() = default;

void TokenizerOptions::validate() const {
  const std::vector<std::string> kinds = {"byte", "sentencepiece", "hf_bpe", "auto"};
  if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) {
    throw std::invalid_argument("tokenizer.kind: unknown tokenizer '" + kind + "' (did you mean '" +
                                nearest_name(kind, kinds) +
                                "'? known: byte, sentencepiece, hf_bpe, auto)");
  }
  if (kind != "byte" && path.empty()) {
    throw std::invalid_argument("tokenizer.path: a " + kind +
                                " tokenizer needs a path (tokenizer.model / tokenizer.json or its directory)");
  }
  if (kind != "byte" && !special_tokens.empty()) {
    throw std::invalid_argument(
        "tokenizer.special_tokens: only the byte tokenizer takes extra special tokens");
  }
}

std::unique_ptr<Tokenizer> make_tokenizer(const TokenizerOptions& options) {
  options.validate();
  if (options.kind == "byte") return std::make_unique<ByteTokenizer>(options.special_tokens);
  if (options.kind == "hf_bpe") return std::make_unique<HfBpeTokenizer>(options.path);
  std::filesystem::path path(options.path);
  if (options.kind == "auto") {
    if (!std::filesystem::is_directory(path)) {
      throw std::invalid_argument("tokenizer.path: kind auto needs a directory, got '" +
                                  options.path + "'");
    }
    // A SentencePiece model wins when both are there (Llama 2 / Mistral ship both; their
    // tokenizer.json, a byte_fallback BPE, can be read with kind hf_bpe too).
    if (std::filesystem::exists(path / "tokenizer.model")) {
      return std::make_unique<SentencePieceTokenizer>((path / "tokenizer.model").string());
    }
    if (std::filesystem::exists(path / "tokenizer.json")) {
      return std::make_unique<HfBpeTokenizer>(path.string());
    }
    throw std::invalid_argument("tokenizer.path: " + options.path +
                                " holds neither tokenizer.model nor tokenizer.json");
  }
  if (std::filesystem::is_directory(path)) path /= "tokenizer.model";
  return std::make_unique<SentencePieceTokenizer>(path.string());
}

}  // namespace prefengine
