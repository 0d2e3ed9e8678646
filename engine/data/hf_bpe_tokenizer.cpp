// HfBpeTokenizer's added tokens, BPE model (encode, encode_word) and decoders (decode). Reading
// tokenizer.json (the constructor) is in hf_bpe_tokenizer_json.cpp, the normalizers and
// pre-tokenizers in hf_bpe_pre_tokenizers.cpp; hf_bpe_pipeline.h has what they share.
#include "engine/data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cctype>
#include <queue>
#include <stdexcept>

#include <unicode/uchar.h>
#include <unicode/utf8.h>

#include "engine/data/hf_bpe_pipeline.h"

namespace prefengine {
using namespace hf_bpe;  // hf_bpe_pipeline.h

namespace hf_bpe {

// Byte length of the UTF-8 character starting at text[i] (1 for a stray byte).
size_t char_length(const std::string& text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return std::min(n, text.size() - i);
}

// Splits UTF-8 text into its characters.
std::vector<std::string> utf8_chars(const std::string& text) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size();) {
    const size_t n = char_length(text, i);
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

// The code point at byte i (advancing i), or the one before byte i (moving i back); -1 when the
// bytes are not UTF-8.
UChar32 next_code_point(const std::string& text, size_t* i) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  int32_t k = static_cast<int32_t>(*i);
  UChar32 c;
  U8_NEXT(s, k, static_cast<int32_t>(text.size()), c);
  *i = static_cast<size_t>(k);
  return c;
}
UChar32 previous_code_point(const std::string& text, size_t* i) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  int32_t k = static_cast<int32_t>(*i);
  UChar32 c;
  U8_PREV(s, 0, k, c);
  *i = static_cast<size_t>(k);
  return c;
}

bool valid_utf8(const std::string& text) {
  for (size_t i = 0; i < text.size();) {
    if (next_code_point(text, &i) < 0) return false;
  }
  return true;
}

// The character classes the tokenizers library uses: Rust's char::is_numeric (Digits), and the
// regex classes \w (single_word) and \s (lstrip / rstrip), Unicode-aware as in Rust's regex.
bool is_numeric(UChar32 c) {
  if (c < 0) return false;
  const int8_t t = u_charType(c);
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
bool is_word_character(UChar32 c) {
  if (c < 0) return false;
  const int8_t t = u_charType(c);
  return u_isUAlphabetic(c) || t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK ||
         t == U_COMBINING_SPACING_MARK || t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION ||
         u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL);
}
bool is_whitespace(UChar32 c) { return c >= 0 && u_isUWhiteSpace(c); }

std::string replace_all(const std::string& text, const std::string& from, const std::string& to) {
  if (from.empty() || text.find(from) == std::string::npos) return text;
  std::string out;
  size_t start = 0;
  for (size_t at; (at = text.find(from, start)) != std::string::npos; start = at + from.size()) {
    out.append(text, start, at - start);
    out += to;
  }
  out.append(text, start, std::string::npos);
  return out;
}

// Splits the added tokens in `trie` out of `text` as the Rust library's AddedVocabulary does:
// leftmost, then longest match; single_word tokens only between non-word characters; lstrip /
// rstrip tokens take the whitespace on their left / right with them.
std::vector<Piece> split_added(const std::string& text, const TokenTrie& trie,
                               const std::vector<AddedToken>& tokens) {
  std::vector<Piece> out;
  size_t segment_start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const auto [value, end] = trie.longest(text, i);
    if (value < 0) {
      ++i;
      continue;
    }
    const AddedToken& t = tokens[static_cast<size_t>(value)];
    if (t.single_word) {
      size_t before = i, after = end;
      const bool word_before = i > 0 && is_word_character(previous_code_point(text, &before));
      const bool word_after = end < text.size() && is_word_character(next_code_point(text, &after));
      if (word_before || word_after) {
        ++i;
        continue;
      }
    }
    size_t start = i, stop = end;
    if (t.lstrip) {
      while (start > segment_start) {
        size_t k = start;
        if (!is_whitespace(previous_code_point(text, &k))) break;
        start = k;
      }
    }
    if (t.rstrip) {
      while (stop < text.size()) {
        size_t k = stop;
        if (!is_whitespace(next_code_point(text, &k))) break;
        stop = k;
      }
    }
    if (start > segment_start) out.push_back({text.substr(segment_start, start - segment_start), -1});
    out.push_back({std::string(), t.id});
    segment_start = stop;
    i = stop;
  }
  if (segment_start < text.size()) out.push_back({text.substr(segment_start), -1});
  return out;
}

}  // namespace hf_bpe

int64_t HfBpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

const std::string& HfBpeTokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || id_to_token_[static_cast<size_t>(id)].empty()) {
    throw std::invalid_argument("hf tokenizer: id " + std::to_string(id) + " is not a token");
  }
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<int64_t> HfBpeTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  const Pipeline& p = *pipeline_;
  if (p.raw_trie.empty()) {
    encode_segment(text, true, &ids);
    return ids;
  }
  bool first = true;
  for (const Piece& piece : split_added(text, p.raw_trie, p.raw_tokens)) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
    } else {
      encode_segment(piece.text, first, &ids);
    }
    first = false;
  }
  return ids;
}

void HfBpeTokenizer::encode_word(const std::string& word, std::vector<int64_t>* ids) const {
  const Pipeline& p = *pipeline_;
  if (word.empty()) return;
  if (p.ignore_merges) {
    const int64_t id = token_id(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  // The word's initial symbols: one per character (or per byte with byte_fallback, or an unknown
  // token), as a doubly linked list merged by rank.
  struct Symbol {
    int64_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&](int64_t id) {
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  };
  bool pending_unk = false;
  for (size_t i = 0; i < word.size();) {
    const size_t n = char_length(word, i);
    const int64_t id = token_id(word.substr(i, n));
    bool known = id >= 0;
    if (known) {
      if (pending_unk) add(p.unk);
      pending_unk = false;
      add(id);
    } else if (p.byte_fallback &&
               std::all_of(word.begin() + static_cast<std::ptrdiff_t>(i),
                           word.begin() + static_cast<std::ptrdiff_t>(i + n),
                           [&](char c) { return p.byte_token[static_cast<unsigned char>(c)] >= 0; })) {
      if (pending_unk) add(p.unk);
      pending_unk = false;
      for (size_t k = i; k < i + n; ++k) add(p.byte_token[static_cast<unsigned char>(word[k])]);
    } else if (p.unk >= 0) {
      if (pending_unk && !p.fuse_unk) add(p.unk);
      pending_unk = true;
    } else {
      throw std::invalid_argument("hf tokenizer: no token for the symbol '" + word.substr(i, n) +
                                  "' and no unk_token");
    }
    i += n;
  }
  if (pending_unk) add(p.unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    auto it = p.merges.find((static_cast<uint64_t>(symbols[static_cast<size_t>(pos)].id) << 32) |
                            static_cast<uint64_t>(symbols[static_cast<size_t>(next)].id));
    if (it != p.merges.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    auto it = p.merges.find((static_cast<uint64_t>(left.id) << 32) | static_cast<uint64_t>(right.id));
    if (it == p.merges.end() || it->second.second != top.merged) continue;  // stale candidate
    left.id = top.merged;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<size_t>(left.next)].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) {
    ids->push_back(symbols[static_cast<size_t>(i)].id);
  }
}

std::string HfBpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  const Pipeline& p = *pipeline_;
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int64_t id : ids) {
    const std::string& t = token(id);
    if (id == bos_ || id == eos_ || id == pad_) continue;
    tokens.push_back(t);
  }
  for (const auto& d : p.decoders) {
    std::vector<std::string> next;
    switch (d.kind) {
      case Pipeline::Decoder::kByteLevel: {
        // Each token's characters back to bytes; a token with a character outside the byte
        // alphabet (an added token) is kept as it is. The result is one token of raw bytes.
        std::string bytes;
        for (const auto& t : tokens) {
          std::string mapped;
          bool all = true;
          for (const auto& ch : utf8_chars(t)) {
            auto it = p.char_byte.find(ch);
            if (it == p.char_byte.end()) {
              all = false;
              break;
            }
            mapped.push_back(static_cast<char>(it->second));
          }
          bytes += all ? mapped : t;
        }
        next.push_back(std::move(bytes));
        break;
      }
      case Pipeline::Decoder::kReplace:
        for (const auto& t : tokens) next.push_back(replace_all(t, d.from, d.to));
        break;
      case Pipeline::Decoder::kByteFallback: {
        // Runs of <0xXX> tokens become their bytes when those are UTF-8, else one U+FFFD per byte.
        std::string run;
        size_t run_tokens = 0;
        auto flush = [&] {
          if (run_tokens == 0) return;
          if (valid_utf8(run)) {
            next.push_back(run);
          } else {
            for (size_t k = 0; k < run_tokens; ++k) next.push_back("\xEF\xBF\xBD");
          }
          run.clear();
          run_tokens = 0;
        };
        for (const auto& t : tokens) {
          unsigned value = 0;
          if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
              std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4]))) {
            value = static_cast<unsigned>(std::stoul(t.substr(3, 2), nullptr, 16));
            run.push_back(static_cast<char>(value));
            ++run_tokens;
            continue;
          }
          flush();
          next.push_back(t);
        }
        flush();
        break;
      }
      case Pipeline::Decoder::kMetaspace:
        // The replacement becomes a space, except in the first token, where (unless the
        // prepend scheme is "never") every replacement is dropped, as the Rust decoder does.
        for (size_t k = 0; k < tokens.size(); ++k) {
          next.push_back(replace_all(tokens[k], d.from, k == 0 && d.metaspace_prepends ? "" : " "));
        }
        break;
      case Pipeline::Decoder::kFuse: {
        std::string all;
        for (const auto& t : tokens) all += t;
        next.push_back(std::move(all));
        break;
      }
      case Pipeline::Decoder::kStrip:
        for (const auto& t : tokens) {
          size_t begin = 0, end = t.size();
          for (size_t k = 0; k < d.start && t.compare(begin, d.strip.size(), d.strip) == 0; ++k) {
            begin += d.strip.size();
          }
          for (size_t k = 0; k < d.stop && end >= begin + d.strip.size() &&
                             t.compare(end - d.strip.size(), d.strip.size(), d.strip) == 0;
               ++k) {
            end -= d.strip.size();
          }
          next.push_back(t.substr(begin, end - begin));
        }
        break;
    }
    tokens = std::move(next);
  }
  std::string text;
  for (const auto& t : tokens) text += t;
  return text;
}

}  // namespace prefengine
