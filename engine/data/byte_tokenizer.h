#pragma once
// A tokenizer without files: ids 0..255 are the bytes of UTF-8 text, then BOS (256), EOS (257),
// PAD (258), then the extra special tokens in the order given (259, 260, ...). An occurrence of
// a special token's text in the input is encoded as its single id (longest match first).
#include <string>
#include <vector>

#include "engine/data/tokenizer.h"

namespace prefengine {

class ByteTokenizer : public Tokenizer {
 public:
  static constexpr int64_t kBos = 256;
  static constexpr int64_t kEos = 257;
  static constexpr int64_t kPad = 258;

  // special_tokens: non-empty, distinct strings; throws std::invalid_argument otherwise.
  explicit ByteTokenizer(std::vector<std::string> special_tokens = {});

  std::vector<int64_t> encode(const std::string& text, bool add_bos = false) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t bos_id() const override { return kBos; }
  int64_t eos_id() const override { return kEos; }
  int64_t pad_id() const override { return kPad; }
  int64_t vocab_size() const override { return 259 + static_cast<int64_t>(special_.size()); }

 private:
  std::vector<std::string> special_;
};

}  // namespace prefengine
