#include "engine/data/hf_bpe_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <unicode/normalizer2.h>
#include <unicode/regex.h>
#include <unicode/unistr.h>

namespace prefengine {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// GPT-2's pattern, used by a ByteLevel pre-tokenizer with use_regex (the default).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

json read_json_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path.string() + ": cannot open");
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path.string() + ": not valid JSON (" + e.what() + ")");
  }
}

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

// Splits UTF-8 text into its characters.
std::vector<std::string> utf8_chars(const std::string& text) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
    n = std::min(n, text.size() - i);
    out.push_back(text.substr(i, n));
    i += n;
  }
  return out;
}

// An owning copy of [begin, end) (tempSubStringBetween would alias a buffer that dies).
icu::UnicodeString substring(const icu::UnicodeString& s, int32_t begin, int32_t end) {
  return icu::UnicodeString(s, begin, end - begin);
}

std::string token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string()) {
    return value["content"].get<std::string>();
  }
  return "";
}

}  // namespace

struct HfBpeTokenizer::Regexes {
  // The pre-tokenizer steps in order: a regex split (pattern) or a digit split (null pattern).
  std::vector<std::unique_ptr<icu::RegexPattern>> steps;
};

HfBpeTokenizer::~HfBpeTokenizer() = default;

HfBpeTokenizer::HfBpeTokenizer(const std::string& path) : regexes_(std::make_unique<Regexes>()) {
  fs::path file(path);
  if (fs::is_directory(file)) file /= "tokenizer.json";
  const std::string where = file.string();
  const json j = read_json_file(file);
  auto fail = [&](const std::string& what) { throw std::invalid_argument(where + ": " + what); };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("expected a 'model' object");
  const json& model = j["model"];
  if (model.value("type", std::string()) != "BPE") {
    fail("model.type '" + model.value("type", std::string()) + "' is not supported (only BPE)");
  }
  if (model.value("byte_fallback", false)) {
    fail("byte_fallback BPE (a SentencePiece-style tokenizer) is not supported: use tokenizer.model");
  }
  ignore_merges_ = model.value("ignore_merges", false);

  // Byte-level alphabet: GPT-2's bytes_to_unicode.
  {
    std::vector<bool> direct(256, false);
    for (int b = '!'; b <= '~'; ++b) direct[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) direct[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) direct[b] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      byte_char_[b] = utf8_of(direct[b] ? uint32_t(b) : next++);
      char_byte_[byte_char_[b]] = static_cast<unsigned char>(b);
    }
  }

  // Vocabulary and added tokens.
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail("expected model.vocab");
  int64_t max_id = -1;
  for (const auto& [token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0) fail("model.vocab['" + token + "'] is not an id");
    vocab_[token] = id.get<int64_t>();
    max_id = std::max(max_id, id.get<int64_t>());
  }
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& t : j["added_tokens"]) {
      if (!t.contains("id") || !t.contains("content")) fail("added_tokens entries need id and content");
      const int64_t id = t["id"].get<int64_t>();
      const std::string content = t["content"].get<std::string>();
      added_.emplace_back(content, id);
      vocab_[content] = id;
      max_id = std::max(max_id, id);
    }
  }
  std::sort(added_.begin(), added_.end(),
            [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab_) id_to_token_[static_cast<size_t>(id)] = token;
  is_added_.assign(id_to_token_.size(), false);
  for (const auto& [content, id] : added_) is_added_[static_cast<size_t>(id)] = true;

  // Merges: "left right" strings or [left, right] pairs.
  if (!model.contains("merges") || !model["merges"].is_array()) fail("expected model.merges");
  int64_t rank = 0;
  for (const auto& m : model["merges"]) {
    std::string key;
    if (m.is_string()) {
      key = m.get<std::string>();
      if (key.find(' ') == std::string::npos) fail("merge '" + key + "' is not 'left right'");
    } else if (m.is_array() && m.size() == 2) {
      key = m[0].get<std::string>() + " " + m[1].get<std::string>();
    } else {
      fail("a merge is neither 'left right' nor [left, right]");
    }
    merge_ranks_.emplace(key, rank++);
  }

  // Normalizer: none or NFC.
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    std::vector<json> parts = n.value("type", std::string()) == "Sequence" && n.contains("normalizers")
                                  ? n["normalizers"].get<std::vector<json>>()
                                  : std::vector<json>{n};
    for (const auto& p : parts) {
      if (p.value("type", std::string()) != "NFC") {
        fail("normalizer '" + p.value("type", std::string()) + "' is not supported (only NFC)");
      }
      nfc_ = true;
    }
  }

  // Pre-tokenizer: ByteLevel, or a Sequence of Split (Isolated regex), Digits and ByteLevel.
  auto compile = [&](const std::string& pattern) {
    UErrorCode status = U_ZERO_ERROR;
    UParseError parse_error;
    std::unique_ptr<icu::RegexPattern> p(
        icu::RegexPattern::compile(icu::UnicodeString::fromUTF8(pattern), 0, parse_error, status));
    if (U_FAILURE(status)) fail("cannot compile the pre-tokenizer regex " + pattern);
    regexes_->steps.push_back(std::move(p));
  };
  bool byte_level = false;
  if (!j.contains("pre_tokenizer") || j["pre_tokenizer"].is_null()) {
    fail("a byte-level BPE needs a ByteLevel pre_tokenizer");
  }
  const json& pre = j["pre_tokenizer"];
  std::vector<json> steps = pre.value("type", std::string()) == "Sequence" && pre.contains("pretokenizers")
                                ? pre["pretokenizers"].get<std::vector<json>>()
                                : std::vector<json>{pre};
  for (const auto& s : steps) {
    const std::string type = s.value("type", std::string());
    if (type == "ByteLevel") {
      byte_level = true;
      add_prefix_space_ = s.value("add_prefix_space", false);
      if (s.value("use_regex", true)) compile(kGpt2Pattern);
    } else if (type == "Split") {
      if (s.value("behavior", std::string()) != "Isolated" || s.value("invert", false)) {
        fail("only Split pre-tokenizers with behavior Isolated are supported");
      }
      if (!s.contains("pattern") || !s["pattern"].contains("Regex")) {
        fail("only Split pre-tokenizers with a Regex pattern are supported");
      }
      compile(s["pattern"]["Regex"].get<std::string>());
    } else if (type == "Digits") {
      split_digits_ = true;
      individual_digits_ = s.value("individual_digits", false);
      regexes_->steps.push_back(nullptr);
    } else {
      fail("pre_tokenizer '" + type + "' is not supported (ByteLevel, Split, Digits)");
    }
  }
  if (!byte_level) fail("a byte-level BPE needs a ByteLevel pre_tokenizer");

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

int64_t HfBpeTokenizer::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<int64_t> HfBpeTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos && bos_ >= 0) ids.push_back(bos_);
  // Added tokens are atomic: split the text around them first (longest match at each position).
  size_t start = 0;
  size_t i = 0;
  while (i < text.size()) {
    const std::pair<std::string, int64_t>* hit = nullptr;
    for (const auto& a : added_) {
      if (!a.first.empty() && text.compare(i, a.first.size(), a.first) == 0) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > start) encode_segment(text.substr(start, i - start), &ids);
    ids.push_back(hit->second);
    i += hit->first.size();
    start = i;
  }
  if (start < text.size()) encode_segment(text.substr(start), &ids);
  return ids;
}

void HfBpeTokenizer::encode_segment(const std::string& segment, std::vector<int64_t>* ids) const {
  icu::UnicodeString text = icu::UnicodeString::fromUTF8(segment);
  if (nfc_) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
    if (U_SUCCESS(status)) text = nfc->normalize(text, status);
    if (U_FAILURE(status)) throw std::invalid_argument("hf tokenizer: NFC normalization failed");
  }
  if (add_prefix_space_ && !text.startsWith(icu::UnicodeString(" "))) text = " " + text;
  std::vector<icu::UnicodeString> pieces = {text};
  for (const auto& step : regexes_->steps) {
    std::vector<icu::UnicodeString> next;
    for (const auto& piece : pieces) {
      if (!step) {  // Digits: isolate each digit, or each run of digits
        int32_t begin = 0;
        for (int32_t k = 0; k <= piece.length(); ++k) {
          const bool digit_here = k < piece.length() && piece[k] >= u'0' && piece[k] <= u'9';
          const bool digit_before = k > 0 && piece[k - 1] >= u'0' && piece[k - 1] <= u'9';
          const bool boundary = k == piece.length() || digit_here != digit_before ||
                                (individual_digits_ && digit_here);
          if (boundary && k > begin) {
            next.push_back(substring(piece, begin, k));
            begin = k;
          }
        }
        continue;
      }
      UErrorCode status = U_ZERO_ERROR;
      std::unique_ptr<icu::RegexMatcher> m(step->matcher(piece, status));
      if (U_FAILURE(status)) throw std::invalid_argument("hf tokenizer: regex matcher failed");
      int32_t last = 0;
      while (m->find(status) && U_SUCCESS(status)) {
        const int32_t s = m->start(status);
        const int32_t e = m->end(status);
        if (e == s) continue;
        if (s > last) next.push_back(substring(piece, last, s));
        next.push_back(substring(piece, s, e));
        last = e;
      }
      if (last < piece.length()) next.push_back(substring(piece, last, piece.length()));
    }
    pieces = std::move(next);
  }
  for (const auto& piece : pieces) {
    std::string utf8;
    piece.toUTF8String(utf8);
    std::string mapped;
    for (const unsigned char c : utf8) mapped += byte_char_[c];
    encode_word(mapped, ids);
  }
}

void HfBpeTokenizer::encode_word(const std::string& word, std::vector<int64_t>* ids) const {
  if (ignore_merges_) {
    const int64_t id = token_id(word);
    if (id >= 0) {
      ids->push_back(id);
      return;
    }
  }
  std::vector<std::string> symbols = utf8_chars(word);
  while (symbols.size() > 1) {
    int64_t best = std::numeric_limits<int64_t>::max();
    size_t at = 0;
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
      auto it = merge_ranks_.find(symbols[k] + " " + symbols[k + 1]);
      if (it != merge_ranks_.end() && it->second < best) {
        best = it->second;
        at = k;
      }
    }
    if (best == std::numeric_limits<int64_t>::max()) break;
    const std::string left = symbols[at];
    const std::string right = symbols[at + 1];
    std::vector<std::string> merged;
    for (size_t k = 0; k < symbols.size(); ++k) {
      if (k + 1 < symbols.size() && symbols[k] == left && symbols[k + 1] == right) {
        merged.push_back(left + right);
        ++k;
      } else {
        merged.push_back(symbols[k]);
      }
    }
    symbols = std::move(merged);
  }
  for (const auto& s : symbols) {
    const int64_t id = token_id(s);
    if (id < 0) throw std::invalid_argument("hf tokenizer: no token for the symbol '" + s + "'");
    ids->push_back(id);
  }
}

std::string HfBpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string text;
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size() || id_to_token_[static_cast<size_t>(id)].empty()) {
      throw std::invalid_argument("hf tokenizer: id " + std::to_string(id) + " is not a token");
    }
    if (id == bos_ || id == eos_ || id == pad_) continue;
    const std::string& token = id_to_token_[static_cast<size_t>(id)];
    if (is_added_[static_cast<size_t>(id)]) {
      text += token;
      continue;
    }
    for (const auto& ch : utf8_chars(token)) {
      auto it = char_byte_.find(ch);
      if (it != char_byte_.end()) {
        text.push_back(static_cast<char>(it->second));
      } else {
        text += ch;
      }
    }
  }
  return text;
}

}  // namespace prefengine
