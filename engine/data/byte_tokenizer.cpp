#include "engine/data/byte_tokenizer.h"

#include <set>
#include <stdexcept>

namespace prefengine {

ByteTokenizer::ByteTokenizer(std::vector<std::string> special_tokens)
    : special_(std::move(special_tokens)) {
  std::set<std::string> seen;
  for (const auto& s : special_) {
    if (s.empty()) throw std::invalid_argument("byte tokenizer: a special token is empty");
    if (!seen.insert(s).second) {
      throw std::invalid_argument("byte tokenizer: special token '" + s + "' is given twice");
    }
  }
}

std::vector<int64_t> ByteTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  ids.reserve(text.size() + 1);
  if (add_bos) ids.push_back(kBos);
  size_t i = 0;
  while (i < text.size()) {
    size_t best = special_.size();
    for (size_t s = 0; s < special_.size(); ++s) {
      if (text.compare(i, special_[s].size(), special_[s]) == 0 &&
          (best == special_.size() || special_[s].size() > special_[best].size())) {
        best = s;
      }
    }
    if (best < special_.size()) {
      ids.push_back(259 + static_cast<int64_t>(best));
      i += special_[best].size();
    } else {
      ids.push_back(static_cast<unsigned char>(text[i]));
      ++i;
    }
  }
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw std::invalid_argument("byte tokenizer: id " + std::to_string(id) + " is outside [0, " +
                                  std::to_string(vocab_size()) + ")");
    }
    if (id < 256) {
      text.push_back(static_cast<char>(id));
    } else if (id >= 259) {
      text += special_[static_cast<size_t>(id - 259)];
    }
  }
  return text;
}

}  // namespace prefengine
