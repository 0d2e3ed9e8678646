// HfBpeTokenizer's constructor: reads tokenizer.json (the model's vocabulary and merges with
// nlohmann's SAX interface) and the tokenizer_config.json next to it.
#include "engine/data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "engine/data/hf_bpe_pipeline.h"

namespace prefengine {
namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace hf_bpe;  // hf_bpe_pipeline.h

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Reading the whole file first and parsing from memory is faster than parsing the stream
// (Gemma 3's tokenizer.json is 33 MB).
json read_json_file(const fs::path& path) {
  const std::string text = read_text(path);
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

// Reads a tokenizer.json with nlohmann's SAX interface: the model's vocabulary and merges are
// collected as plain strings and ids while parsing, everything else becomes a JSON value (with
// model.vocab and model.merges left empty). Building the vocabulary and merges as JSON values and
// freeing them took four times as long (Gemma 3's 33 MB file: 262k tokens, 515k merges).
class TokenizerJsonReader {
 public:
  explicit TokenizerJsonReader(json* result) : dom_(*result, true) {}

  std::vector<std::pair<std::string, int64_t>> vocab;  // token, id; -1 when not an id
  std::vector<std::pair<std::string, std::string>> merges;
  bool vocab_seen = false, merges_seen = false;         // as an object / a list
  int64_t bad_merge = -1;                              // index of the first malformed merge

  bool null() { return capturing() ? captured_value(-1) : dom_.null(); }
  bool boolean(bool b) { return capturing() ? captured_value(-1) : dom_.boolean(b); }
  bool number_integer(json::number_integer_t v) {
    return capturing() ? captured_value(v < 0 ? -1 : v) : dom_.number_integer(v);
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (!capturing()) return dom_.number_unsigned(v);
    return captured_value(v > static_cast<json::number_unsigned_t>(INT32_MAX) ? -1 : static_cast<int64_t>(v));
  }
  bool number_float(json::number_float_t v, const std::string& s) {
    return capturing() ? captured_value(-1) : dom_.number_float(v, s);
  }
  bool binary(json::binary_t& b) { return capturing() ? captured_value(-1) : dom_.binary(b); }
  bool string(std::string& s) {
    if (!capturing()) return dom_.string(s);
    if (capture_ == kVocab) return captured_value(-1);
    if (depth_ == capture_depth_) {  // "left right"
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos) return malformed_merge();
      merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else if (depth_ == capture_depth_ + 1) {  // one half of [left, right]
      pair_.push_back(std::move(s));
    } else {
      return malformed_merge();
    }
    return true;
  }
  bool start_object(std::size_t n) {
    if (capturing()) {
      if (depth_ == capture_depth_) captured_value(-1);
      if (capture_ == kMerges) malformed_merge();
      ++depth_;
      return true;
    }
    ++depth_;
    if (depth_ == 3 && key1_ == "model" && key2_ == "vocab") {
      capture_ = kVocab;
      capture_depth_ = depth_;
      vocab_seen = true;
    }
    return dom_.start_object(n);
  }
  bool end_object() { return end_container(false); }
  bool start_array(std::size_t n) {
    if (capturing()) {
      if (capture_ == kVocab && depth_ == capture_depth_) captured_value(-1);
      if (capture_ == kMerges && depth_ == capture_depth_) {
        pair_.clear();
      } else if (capture_ == kMerges) {
        malformed_merge();
      }
      ++depth_;
      return true;
    }
    ++depth_;
    if (depth_ == 3 && key1_ == "model" && key2_ == "merges") {
      capture_ = kMerges;
      capture_depth_ = depth_;
      merges_seen = true;
    }
    return dom_.start_array(n);
  }
  bool end_array() { return end_container(true); }
  bool key(std::string& k) {
    if (capturing()) {
      if (depth_ == capture_depth_) pending_key_ = k;
      return true;
    }
    if (depth_ == 1) key1_ = k;
    if (depth_ == 2) key2_ = k;
    return dom_.key(k);
  }
  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) {
    return dom_.parse_error(position, token, e);
  }

 private:
  bool capturing() const { return capture_ != kNone; }
  bool captured_value(int64_t id) {
    if (capture_ == kVocab && depth_ == capture_depth_) {
      vocab.emplace_back(pending_key_, id);
    } else if (capture_ == kMerges) {
      malformed_merge();
    }
    return true;
  }
  bool malformed_merge() {
    if (bad_merge < 0) bad_merge = static_cast<int64_t>(merges.size());
    return true;
  }
  bool end_container(bool array) {
    if (capturing() && depth_ > capture_depth_) {
      if (array && capture_ == kMerges && depth_ == capture_depth_ + 1) {
        if (pair_.size() == 2) {
          merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        } else {
          malformed_merge();
        }
      }
      --depth_;
      return true;
    }
    capture_ = kNone;
    --depth_;
    return array ? dom_.end_array() : dom_.end_object();
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  enum { kNone, kVocab, kMerges } capture_ = kNone;
  int depth_ = 0, capture_depth_ = 0;  // open containers; the captured container's depth
  std::string key1_, key2_, pending_key_;  // current key in the root object, in root.model
  std::vector<std::string> pair_;
};

std::string utf8_of(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return out;
}

std::string token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return "";
}

}  // namespace

namespace hf_bpe {

// The steps a `type: Sequence` node lists under `list_key`, or the node itself, with each step's
// key path for error messages.
std::vector<std::pair<const json*, std::string>> flatten(const json& node, const std::string& key,
                                                         const char* list_key) {
  std::vector<std::pair<const json*, std::string>> out;
  if (node.is_object() && node.value("type", std::string()) == "Sequence") {
    if (!node.contains(list_key) || !node[list_key].is_array()) {
      throw std::invalid_argument(key + ": a Sequence needs a '" + list_key + "' list");
    }
    for (size_t i = 0; i < node[list_key].size(); ++i) {
      auto inner = flatten(node[list_key][i], key + "." + list_key + "[" + std::to_string(i) + "]", list_key);
      out.insert(out.end(), inner.begin(), inner.end());
    }
  } else {
    out.emplace_back(&node, key);
  }
  return out;
}

}  // namespace hf_bpe

HfBpeTokenizer::~HfBpeTokenizer() = default;

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) : pipeline_(std::make_unique<Pipeline>()) {
  Pipeline& p = *pipeline_;
  fs::path file(path);
  if (fs::is_directory(file)) file /= "tokenizer.json";
  const std::string where = file.string();
  json j;
  TokenizerJsonReader reader(&j);
  {
    const std::string text = read_text(file);
    try {
      json::sax_parse(text, &reader);
    } catch (const std::exception& e) {
      throw std::invalid_argument(where + ": not valid JSON (" + e.what() + ")");
    }
  }
  auto fail = [&](const std::string& what) { throw std::invalid_argument(where + ": " + what); };
  // Errors thrown by helpers carry the key; prefix them with the file.
  auto guarded = [&](auto&& f) {
    try {
      f();
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      if (message.rfind(where, 0) == 0) throw;
      fail(message);
    }
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("expected a 'model' object");
  const json& model = j["model"];
  const std::string model_type = model.value("type", std::string());
  if (model_type != "BPE") {
    fail("model.type '" + model_type + "' is not supported (only BPE; WordPiece, Unigram and WordLevel are not)");
  }
  auto string_or_null = [&](const char* key) -> std::string {
    if (!model.contains(key) || model[key].is_null()) return "";
    if (!model[key].is_string()) fail(std::string("model.") + key + ": expected a string or null");
    return model[key].get<std::string>();
  };
  if (!string_or_null("continuing_subword_prefix").empty() || !string_or_null("end_of_word_suffix").empty()) {
    fail("model.continuing_subword_prefix / model.end_of_word_suffix are not supported (expected null or \"\")");
  }
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0)) {
    fail("model.dropout: BPE dropout is not supported (expected null)");
  }
  p.ignore_merges = model.value("ignore_merges", false);
  p.byte_fallback = model.value("byte_fallback", false);
  p.fuse_unk = model.value("fuse_unk", false);

  // Byte-level alphabet: GPT-2's bytes_to_unicode.
  {
    std::vector<bool> direct(256, false);
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      p.byte_char[b] = utf8_of(direct[b] ? uint32_t(b) : next++);
      p.char_byte[p.byte_char[b]] = static_cast<unsigned char>(b);
    }
  }

  // Vocabulary and added tokens.
  if (!reader.vocab_seen) fail("expected model.vocab (an object)");
  int64_t max_id = -1;
  vocab_.reserve(reader.vocab.size() + 1024);
  for (const auto& [token, id] : reader.vocab) {
    if (id < 0) fail("model.vocab['" + token + "'] is not an id");
    vocab_[token] = id;
    max_id = std::max(max_id, id);
  }
  reader.vocab = {};
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) fail("added_tokens: expected a list");
    for (size_t i = 0; i < j["added_tokens"].size(); ++i) {
      const json& t = j["added_tokens"][i];
      const std::string key = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || t["id"].get<int64_t>() < 0 ||
          !t.contains("content") || !t["content"].is_string() || t["content"].get<std::string>().empty()) {
        fail(key + ": expected an id and a non-empty content");
      }
      AddedToken a;
      a.content = t["content"].get<std::string>();
      a.id = t["id"].get<int64_t>();
      a.lstrip = t.value("lstrip", false);
      a.rstrip = t.value("rstrip", false);
      a.single_word = t.value("single_word", false);
      const bool special = t.value("special", false);
      // As in the Rust library: special tokens default to normalized=false, others to true.
      const bool normalized = t.contains("normalized") && t["normalized"].is_boolean() ? t["normalized"].get<bool>()
                                                                                        : !special;
      auto& list = normalized ? p.normalized_tokens : p.raw_tokens;
      (normalized ? p.normalized_trie : p.raw_trie).insert(a.content, static_cast<int32_t>(list.size()));
      list.push_back(a);
      vocab_[a.content] = a.id;
      max_id = std::max(max_id, a.id);
    }
  }
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = token;

  const std::string unk = string_or_null("unk_token");
  if (!unk.empty()) {
    p.unk = token_id(unk);
    if (p.unk < 0) fail("model.unk_token '" + unk + "' is not in the vocabulary");
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    p.byte_token[b] = token_id(name);
  }

  // Merges: "left right" strings or [left, right] pairs, by rank.
  if (!reader.merges_seen) fail("expected model.merges (a list)");
  if (reader.bad_merge >= 0) {
    fail("model.merges[" + std::to_string(reader.bad_merge) + "] is neither 'left right' nor [left, right]");
  }
  p.merges.reserve(reader.merges.size());
  int32_t rank = 0;
  std::string both;
  for (const auto& [left, right] : reader.merges) {
    both.assign(left).append(right);
    const int64_t a = token_id(left), b = token_id(right), merged = token_id(both);
    if (a < 0 || b < 0 || merged < 0) {
      fail("model.merges[" + std::to_string(rank) + "] ('" + left + "', '" + right + "'): '" +
           (a < 0 ? left : b < 0 ? right : both) + "' is not in the vocabulary");
    }
    p.merges.emplace((static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b),
                     std::make_pair(rank, static_cast<int32_t>(merged)));
    ++rank;
  }
  reader.merges = {};

  // Normalizer.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    guarded([&] { p.read_normalizers(j["normalizer"]); });
  }

  // Pre-tokenizer.
  if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
    guarded([&] { byte_level_ = p.read_pre_tokenizers(j["pre_tokenizer"]); });
  }
  if (!byte_level_ && !p.byte_fallback) {
    fail("a BPE model without byte_fallback needs a ByteLevel pre_tokenizer (byte-level BPE); "
         "found none");
  }

  // Decoder; none: ByteLevel for a byte-level tokenizer, else the tokens concatenated.
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    guarded([&] {
      for (const auto& [node, key] : flatten(j["decoder"], "decoder", "decoders")) {
        const std::string type = node->value("type", std::string());
        Pipeline::Decoder d{Pipeline::Decoder::kFuse, "", "", "", 0, 0};
        if (type == "ByteLevel") {
          d.kind = Pipeline::Decoder::kByteLevel;
        } else if (type == "ByteFallback") {
          d.kind = Pipeline::Decoder::kByteFallback;
        } else if (type == "Fuse") {
          d.kind = Pipeline::Decoder::kFuse;
        } else if (type == "Replace") {
          d.kind = Pipeline::Decoder::kReplace;
          const json pattern = node->value("pattern", json());
          if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() ||
              pattern["String"].get<std::string>().empty()) {
            throw std::invalid_argument(key + ".pattern: only a non-empty {\"String\": ...} pattern is supported");
          }
          if (!node->contains("content") || !(*node)["content"].is_string()) {
            throw std::invalid_argument(key + ".content: expected a string");
          }
          d.from = pattern["String"].get<std::string>();
          d.to = (*node)["content"].get<std::string>();
        } else if (type == "Metaspace") {
          d.kind = Pipeline::Decoder::kMetaspace;
          d.from = metaspace_replacement(*node, key);
          d.metaspace_prepends = metaspace_prepend(*node, key) != PrependScheme::kNever;
        } else if (type == "Strip") {
          d.kind = Pipeline::Decoder::kStrip;
          if (!node->contains("content") || !(*node)["content"].is_string() ||
              utf8_chars((*node)["content"].get<std::string>()).size() != 1) {
            throw std::invalid_argument(key + ".content: expected one character");
          }
          d.strip = (*node)["content"].get<std::string>();
          d.start = node->value("start", size_t{0});
          d.stop = node->value("stop", size_t{0});
        } else {
          throw std::invalid_argument(key + ".type '" + type +
                                      "' is not supported (supported decoders: ByteLevel, Replace, "
                                      "ByteFallback, Fuse, Strip, Metaspace, Sequence)");
        }
        p.decoders.push_back(std::move(d));
      }
    });
  } else if (byte_level_) {
    p.decoders.push_back({Pipeline::Decoder::kByteLevel, "", "", "", 0, 0});
  }

  // The BOS a TemplateProcessing post-processor puts first (not applied by encode: add_bos is).
  if (j.contains("post_processor") && j["post_processor"].is_object()) {
    const json& post = j["post_processor"];
    if (post.value("type", std::string()) == "TemplateProcessing" && post.contains("single") &&
        post["single"].is_array() && !post["single"].empty() && post["single"][0].contains("SpecialToken")) {
      const std::string name = post["single"][0]["SpecialToken"].value("id", std::string());
      int64_t id = -1;
      if (post.contains("special_tokens") && post["special_tokens"].contains(name) &&
          post["special_tokens"][name].contains("ids") && post["special_tokens"][name]["ids"].is_array() &&
          post["special_tokens"][name]["ids"].size() == 1 && post["special_tokens"][name]["ids"][0].is_number_integer()) {
        id = post["special_tokens"][name]["ids"][0].get<int64_t>();
      } else {
        id = token_id(name);
      }
      if (id < 0) fail("post_processor.single[0].SpecialToken '" + name + "' is not in the vocabulary");
      post_processor_bos_ = id;
    }
  }

  // Special tokens from tokenizer_config.json.
  const fs::path config = file.parent_path() / "tokenizer_config.json";
  if (fs::exists(config)) {
    const json c = read_json_file(config);
    auto lookup = [&](const char* key) -> int64_t {
      if (!c.contains(key)) return -1;
      const std::string content = token_content(c[key]);
      if (content.empty()) return -1;
      const int64_t id = token_id(content);
      if (id < 0) {
        throw std::invalid_argument(config.string() + ": " + key + " '" + content +
                                    "' is not in the vocabulary");
      }
      return id;
    };
    bos_ = lookup("bos_token");
    eos_ = lookup("eos_token");
    pad_ = lookup("pad_token");
  }
}

}  // namespace prefengine
