// Tokenizers (byte, SentencePiece trained here), the chat template and the JSONL text datasets.
#include <filesystem>
#include <map>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/data/byte_tokenizer.h"
#include "engine/data/chat_template.h"
#include "engine/data/hf_bpe_tokenizer.h"
#include "engine/data/sentencepiece_tokenizer.h"
#include "engine/data/text_dataset.h"
#include "engine/data/tokenizer.h"

namespace fs = std::filesystem;
using namespace prefengine;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("prefengine_lm_data_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return path.string();
}

std::vector<int64_t> bytes(const std::string& s) {
  std::vector<int64_t> out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

std::vector<int64_t> concat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::vector<int64_t> kBos = {ByteTokenizer::kBos};
const std::vector<int64_t> kEos = {ByteTokenizer::kEos};

template <typename F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument containing '" << needle << "'";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(ByteTokenizerTest, RoundTripsUtf8AndSpecialTokens) {
  ByteTokenizer t({"<|user|>", "<|u"});
  EXPECT_EQ(t.vocab_size(), 261);
  const std::string text = "h\xC3\xA9<|user|>x<|u";
  const auto ids = t.encode(text, /*add_bos=*/true);
  EXPECT_EQ(ids, (std::vector<int64_t>{256, 'h', 0xC3, 0xA9, 259, 'x', 260}));
  EXPECT_EQ(t.decode(ids), text);
  EXPECT_EQ(t.decode({ByteTokenizer::kBos, 'a', ByteTokenizer::kPad, 'b', ByteTokenizer::kEos}), "ab");
  EXPECT_THROW(t.decode({261}), std::invalid_argument);
  EXPECT_THROW(t.decode({-1}), std::invalid_argument);
  EXPECT_THROW(ByteTokenizer({""}), std::invalid_argument);
  EXPECT_THROW(ByteTokenizer({"a", "a"}), std::invalid_argument);
}

TEST(TokenizerTest, FactoryValidatesOptions) {
  TokenizerOptions o;
  EXPECT_EQ(make_tokenizer(o)->vocab_size(), 259);
  o.kind = "bite";
  expect_invalid([&] { make_tokenizer(o); }, "did you mean 'byte'");
  o.kind = "hf_bpe";
  expect_invalid([&] { make_tokenizer(o); }, "tokenizer.path");
  o.kind = "sentencepiece";
  expect_invalid([&] { make_tokenizer(o); }, "tokenizer.path");
  o.path = "/nonexistent/tokenizer.model";
  EXPECT_THROW(make_tokenizer(o), std::runtime_error);
  o.special_tokens = {"<x>"};
  expect_invalid([&] { make_tokenizer(o); }, "special_tokens");
}

TEST(SentencePieceTokenizerTest, EncodesAndDecodesWithATrainedModel) {
  const fs::path dir = temp_dir("sp");
  std::string corpus;
  const std::vector<std::string> words = {"the", "cat", "sat", "on", "mat", "dog", "ran", "far",
                                          "a", "little", "bird", "sang", "song", "today"};
  for (int i = 0; i < 400; ++i) {
    corpus += words[i % words.size()] + " " + words[(i * 7 + 3) % words.size()] + " " +
              words[(i * 5 + 1) % words.size()] + ".\n";
  }
  write_file(dir / "corpus.txt", corpus);
  train_sentencepiece("--input=" + (dir / "corpus.txt").string() + " --model_prefix=" +
                      (dir / "sp").string() +
                      " --vocab_size=40 --model_type=unigram --hard_vocab_limit=false --minloglevel=2");
  EXPECT_THROW(train_sentencepiece("--input=/nonexistent/corpus.txt --model_prefix=" +
                                   (dir / "bad").string() + " --minloglevel=2"),
               std::invalid_argument);
  TokenizerOptions o;
  o.kind = "sentencepiece";
  o.path = (dir / "sp.model").string();
  const auto t = make_tokenizer(o);
  // The trainer's defaults: <unk> 0, <s> 1, </s> 2, no pad.
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->pad_id(), -1);
  EXPECT_GT(t->vocab_size(), 10);
  const std::string text = "the little bird sang a song today.";
  const auto ids = t->encode(text, /*add_bos=*/true);
  ASSERT_GE(ids.size(), 2u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_LT(ids.size(), text.size());  // pieces are longer than one character on average
  for (const int64_t id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, t->vocab_size());
  }
  EXPECT_EQ(t->decode(ids), text);
  EXPECT_EQ(t->decode(concat(ids, {2})), text);
  EXPECT_EQ(t->encode(text, false), std::vector<int64_t>(ids.begin() + 1, ids.end()));
  EXPECT_THROW(t->decode({t->vocab_size()}), std::invalid_argument);
  // A directory holding tokenizer.model works too, and kind auto prefers it to tokenizer.json.
  fs::copy_file(dir / "sp.model", dir / "tokenizer.model");
  write_file(dir / "tokenizer.json", "{}");
  o.path = dir.string();
  EXPECT_EQ(make_tokenizer(o)->encode(text), t->encode(text));
  o.kind = "auto";
  EXPECT_EQ(make_tokenizer(o)->encode(text), t->encode(text));
}

namespace {

// A hand-made byte-level BPE: GPT-2's byte stand-ins are \u0120 (space), \u010a (newline),
// \u00c3 \u00a9 (the UTF-8 bytes of e-acute).
std::string hf_tokenizer_json(const std::string& normalizer, const std::string& pre_tokenizer,
                              bool ignore_merges = false, const std::string& model_type = "BPE") {
  return R"({"version": "1.0", "added_tokens": [
      {"id": 15, "content": "<|end|>", "special": true},
      {"id": 16, "content": "<s>", "special": true}],
    "normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre_tokenizer + R"(,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": ")" + model_type + R"(", "ignore_merges": )" + (ignore_merges ? "true" : "false") + R"(,
      "vocab": {"a": 0, "b": 1, "c": 2, "1": 3, "2": 4, "\u0120": 5, "\u010a": 6, "ab": 7, "abc": 8,
                "\u0120a": 9, "\u0120ab": 10, "\u00c3": 11, "\u00a9": 12, "\u00c3\u00a9": 13, "!": 14,
                "12": 17},
      "merges": ["a b", ["ab", "c"], "\u0120 a", "\u0120a b", "\u00c3 \u00a9", "1 2"]}})";
}

const std::string kByteLevel = R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})";

}  // namespace

TEST(HfBpeTokenizerTest, EncodesLikeHandAppliedMerges) {
  const fs::path dir = temp_dir("hf");
  write_file(dir / "tokenizer.json", hf_tokenizer_json("null", kByteLevel));
  write_file(dir / "tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "<|end|>"}})");
  TokenizerOptions o;
  o.kind = "hf_bpe";
  o.path = dir.string();
  const auto t = make_tokenizer(o);
  o.kind = "auto";  // the directory has a tokenizer.json and no tokenizer.model
  EXPECT_EQ(make_tokenizer(o)->encode("abc"), (std::vector<int64_t>{8}));
  o.path = (dir / "tokenizer.json").string();
  expect_invalid([&] { make_tokenizer(o); }, "needs a directory");
  o.path = temp_dir("hf_empty").string();
  expect_invalid([&] { make_tokenizer(o); }, "neither tokenizer.model nor tokenizer.json");
  EXPECT_EQ(t->vocab_size(), 18);
  EXPECT_EQ(t->bos_id(), 16);
  EXPECT_EQ(t->eos_id(), 15);
  EXPECT_EQ(t->pad_id(), -1);
  // GPT-2 split: "abc" | " ab" | "\n". "abc": a+b (rank 0), ab+c (rank 1). " ab": a+b (rank 0)
  // wins over \u0120+a (rank 2), and no merge joins \u0120 with ab.
  EXPECT_EQ(t->encode("abc ab\n"), (std::vector<int64_t>{8, 5, 7, 6}));
  // Added tokens are atomic; e-acute is two bytes merged back; "12" is one \p{N}+ piece.
  EXPECT_EQ(t->encode("\xC3\xA9" "12<|end|>2!", true), (std::vector<int64_t>{16, 13, 17, 15, 4, 14}));
  EXPECT_EQ(t->decode({16, 13, 17, 4, 14, 5, 8}), "\xC3\xA9" "122! abc");
  EXPECT_EQ(t->decode({13, 15, 3}), "\xC3\xA9" "1");  // EOS left out
  EXPECT_THROW(t->decode({18}), std::invalid_argument);
  EXPECT_THROW(t->encode("d"), std::invalid_argument);  // no token for 'd'
}

TEST(HfBpeTokenizerTest, FollowsNormalizerAndPreTokenizerSettings) {
  const fs::path dir = temp_dir("hf_variants");
  // NFC turns e + combining acute into the precomposed character.
  write_file(dir / "nfc.json", hf_tokenizer_json(R"({"type": "NFC"})", kByteLevel));
  EXPECT_EQ(HfBpeTokenizer((dir / "nfc.json").string()).encode("e\xCC\x81"), (std::vector<int64_t>{13}));
  // Individual digits (SmolLM): "12" is no longer merged.
  write_file(dir / "digits.json",
             hf_tokenizer_json("null", R"({"type": "Sequence", "pretokenizers": [
                 {"type": "Digits", "individual_digits": true}, )" + kByteLevel + "]}"));
  EXPECT_EQ(HfBpeTokenizer((dir / "digits.json").string()).encode("12ab"), (std::vector<int64_t>{3, 4, 7}));
  // A Split regex (Llama 3 / Qwen2 style) and ByteLevel without its own regex.
  write_file(dir / "split.json",
             hf_tokenizer_json("null", R"({"type": "Sequence", "pretokenizers": [
                 {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}| ?\\p{L}+|\\s+"}, "behavior": "Isolated", "invert": false},
                 {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"));
  EXPECT_EQ(HfBpeTokenizer((dir / "split.json").string()).encode("12 ab"), (std::vector<int64_t>{17, 5, 7}));
  // ignore_merges (Llama 3): a piece that is a whole token is taken as it is.
  write_file(dir / "ignore.json", hf_tokenizer_json("null", kByteLevel, /*ignore_merges=*/true));
  EXPECT_EQ(HfBpeTokenizer((dir / "ignore.json").string()).encode("abc ab"), (std::vector<int64_t>{8, 10}));
  // Unsupported pipelines and bad files.
  write_file(dir / "wordpiece.json", hf_tokenizer_json("null", kByteLevel, false, "WordPiece"));
  expect_invalid([&] { HfBpeTokenizer((dir / "wordpiece.json").string()); }, "model.type");
  write_file(dir / "lower.json", hf_tokenizer_json(R"({"type": "Lowercase"})", kByteLevel));
  expect_invalid([&] { HfBpeTokenizer((dir / "lower.json").string()); }, "Lowercase");
  write_file(dir / "meta.json", hf_tokenizer_json("null", R"({"type": "Whitespace"})"));
  expect_invalid([&] { HfBpeTokenizer((dir / "meta.json").string()); }, "Whitespace");
  write_file(dir / "merged.json",
             hf_tokenizer_json("null", R"({"type": "Sequence", "pretokenizers": [
                 {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Bogus"}, )" + kByteLevel + "]}"));
  expect_invalid([&] { HfBpeTokenizer((dir / "merged.json").string()); }, "Isolated");
  write_file(dir / "no_bytelevel.json", hf_tokenizer_json("null", R"({"type": "Digits"})"));
  expect_invalid([&] { HfBpeTokenizer((dir / "no_bytelevel.json").string()); }, "ByteLevel");
  write_file(dir / "broken.json", "{");
  expect_invalid([&] { HfBpeTokenizer((dir / "broken.json").string()); }, "not valid JSON");
  EXPECT_THROW(HfBpeTokenizer((dir / "missing.json").string()), std::runtime_error);
  const fs::path bad_config = temp_dir("hf_bad_config");
  write_file(bad_config / "tokenizer.json", hf_tokenizer_json("null", kByteLevel));
  write_file(bad_config / "tokenizer_config.json", R"({"bos_token": "<bos>"})");
  expect_invalid([&] { HfBpeTokenizer(bad_config.string()); }, "not in the vocabulary");
}

TEST(HfBpeTokenizerTest, CompilesTheLlama3SplitPattern) {
  // Llama 3's pre-tokenizer regex, verbatim; with ignore_merges and whole-piece tokens the ids
  // show the pieces: "I" | "'m" | " " | "123" | "4" | " ok" (worked out by hand from the pattern:
  // a space before a digit is its own piece, numbers split in threes).
  const fs::path dir = temp_dir("hf_llama3");
  write_file(dir / "tokenizer.json", R"({"added_tokens": [], "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "model": {"type": "BPE", "ignore_merges": true, "merges": [],
      "vocab": {"I": 0, "'m": 1, "\u0120": 2, "123": 3, "4": 4, "\u0120ok": 5, "'M": 6}}})");
  const HfBpeTokenizer t(dir.string());
  EXPECT_EQ(t.encode("I'm 1234 ok"), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(t.encode("I'M"), (std::vector<int64_t>{0, 6}));  // (?i:...) contractions
  EXPECT_EQ(t.decode({0, 1, 2, 3, 4, 5}), "I'm 1234 ok");
}

TEST(ChatTemplateTest, AppliesRoleFormats) {
  const ChatTemplate chat;
  const std::vector<ChatMessage> prompt = {{"system", "S"}, {"user", "Hi"}};
  EXPECT_EQ(chat.apply(prompt, false), "<|system|>\nS\n<|user|>\nHi\n");
  EXPECT_EQ(chat.apply(prompt, true), "<|system|>\nS\n<|user|>\nHi\n<|assistant|>\n");
  EXPECT_EQ(chat.continuation(prompt, {{"assistant", "Yo"}}), "Yo\n");
  expect_invalid([&] { chat.apply({{"usr", "x"}}, false); }, "did you mean 'user'");
  expect_invalid([&] { chat.continuation(prompt, {{"user", "x"}}); }, "generation prompt");
  const ChatTemplate custom({{"user", "[U]{content}[/U]"}, {"bot", "{content}</s>"}}, "[B]");
  EXPECT_EQ(custom.apply({{"user", "a"}, {"bot", "b"}}, true), "[U]a[/U]b</s>[B]");
  EXPECT_EQ(ChatTemplate::preset("chatml").apply({{"user", "Hi"}}, true),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ChatTemplate::preset("llama3").continuation({{"user", "Hi"}}, {{"assistant", "Yo"}}),
            "Yo<|eot_id|>");
  EXPECT_EQ(ChatTemplate::preset("default").apply({{"user", "Hi"}}, false), "<|user|>\nHi\n");
  expect_invalid([] { ChatTemplate::preset("chatm"); }, "did you mean 'chatml'");
  expect_invalid([] { ChatTemplate({{"user", "no placeholder"}}, "x"); }, "{content}");
  expect_invalid([] { ChatTemplate({{"", "{content}"}}, "x"); }, "role name is empty");
  expect_invalid([] { ChatTemplate(std::map<std::string, std::string>{}, "x"); }, "no roles");
  expect_invalid([] { ChatTemplate({{"user", "{content}{content}"}}, "x"); }, "exactly once");
  expect_invalid([] { ChatTemplate(std::map<std::string, std::string>{{"user", "{content}"}}); },
                 "generation_prompt");
}

TEST(TextDatasetTest, ImplicitPromptIsTheCommonPrefix) {
  EXPECT_EQ(implicit_prompt_length("\n\nHuman: hi\n\nAssistant: good", "\n\nHuman: hi\n\nAssistant: bad"),
            std::string("\n\nHuman: hi\n\nAssistant:").size());
  EXPECT_EQ(implicit_prompt_length("abc", "abd"), 2u);
  // Never split a UTF-8 character: \xC3\xA9 (e-acute) vs \xC3\xA8 (e-grave) share a lead byte.
  EXPECT_EQ(implicit_prompt_length("x\xC3\xA9", "x\xC3\xA8"), 1u);
}

TEST(TextDatasetTest, ReadsEveryPreferenceFormat) {
  const fs::path dir = temp_dir("pref");
  const ByteTokenizer t;
  TextDatasetOptions o;
  o.path = write_file(dir / "standard.jsonl",
                      "{\"prompt\": \"Q\", \"chosen\": \"yes\", \"rejected\": \"no\"}\n\n"
                      "{\"prompt\": \"R\", \"chosen\": \"a\", \"rejected\": \"b\", \"extra\": 1}\n");
  auto d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.format, TextFormat::kStandard);
  EXPECT_EQ(d.stats.rows, 2);
  ASSERT_EQ(d.records.size(), 2u);
  EXPECT_EQ(d.records[0].prompt, concat(kBos, bytes("Q")));
  EXPECT_EQ(d.records[0].chosen, concat(bytes("yes"), kEos));
  EXPECT_EQ(d.records[0].rejected, concat(bytes("no"), kEos));
  EXPECT_EQ(d.records[1].source, o.path + ":3");

  o.path = write_file(dir / "conv.jsonl",
                      "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], "
                      "\"chosen\": [{\"role\": \"assistant\", \"content\": \"yes\"}], "
                      "\"rejected\": [{\"role\": \"assistant\", \"content\": \"no\"}]}\n");
  d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.format, TextFormat::kConversational);
  EXPECT_EQ(d.records[0].prompt, concat(kBos, bytes("<|user|>\nQ\n<|assistant|>\n")));
  EXPECT_EQ(d.records[0].chosen, concat(bytes("yes\n"), kEos));

  o.path = write_file(dir / "hh.jsonl",
                      "{\"chosen\": \"\\n\\nHuman: hi\\n\\nAssistant: good\", "
                      "\"rejected\": \"\\n\\nHuman: hi\\n\\nAssistant: bad\"}\n");
  o.add_bos = false;
  o.add_eos = false;
  d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.format, TextFormat::kImplicitPrompt);
  EXPECT_EQ(d.records[0].prompt, bytes("\n\nHuman: hi\n\nAssistant:"));
  EXPECT_EQ(d.records[0].chosen, bytes(" good"));
  EXPECT_EQ(d.records[0].rejected, bytes(" bad"));

  o.path = write_file(dir / "implicit_conv.jsonl",
                      "{\"chosen\": [{\"role\": \"user\", \"content\": \"Q\"}, "
                      "{\"role\": \"assistant\", \"content\": \"yes\"}], "
                      "\"rejected\": [{\"role\": \"user\", \"content\": \"Q\"}, "
                      "{\"role\": \"assistant\", \"content\": \"no\"}]}\n");
  d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.format, TextFormat::kImplicitConversational);
  EXPECT_EQ(d.records[0].prompt, bytes("<|user|>\nQ\n<|assistant|>\n"));
  EXPECT_EQ(d.records[0].rejected, bytes("no\n"));
}

TEST(TextDatasetTest, TruncatesAndCounts) {
  const fs::path dir = temp_dir("trunc");
  const ByteTokenizer t;
  TextDatasetOptions o;
  o.path = write_file(dir / "p.jsonl",
                      "{\"prompt\": \"abcdef\", \"chosen\": \"123456\", \"rejected\": \"xy\"}\n"
                      "{\"prompt\": \"a\", \"chosen\": \"1\", \"rejected\": \"x\"}\n");
  o.max_prompt_length = 4;  // BOS + the last 3 prompt bytes
  o.max_length = 7;         // 3 response tokens left
  auto d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.truncated_rows, 1);
  EXPECT_EQ(d.records[0].prompt, concat(kBos, bytes("def")));
  EXPECT_EQ(d.records[0].chosen, bytes("123"));
  EXPECT_EQ(d.records[0].rejected, concat(bytes("xy"), kEos));
  EXPECT_EQ(d.records[1].prompt, concat(kBos, bytes("a")));
  o.max_prompt_length = 7;
  expect_invalid([&] { read_preference_jsonl(o, t); }, "max_prompt_length");
  o.max_prompt_length = -1;
  o.max_length = 0;
  expect_invalid([&] { read_preference_jsonl(o, t); }, "max_prompt_length");
  o.max_prompt_length = 0;
  o.max_length = -2;
  expect_invalid([&] { read_preference_jsonl(o, t); }, "max_length");
  o.max_length = 0;
  o.max_completion_length = -1;
  expect_invalid([&] { read_preference_jsonl(o, t); }, "max_completion_length");
  // max_completion_length keeps the START of each response (EOS included in the count), before
  // max_length: "123456"+EOS -> "12", "xy"+EOS -> "xy"; the second row's responses fit.
  o.max_completion_length = 2;
  d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.truncated_rows, 1);
  EXPECT_EQ(d.records[0].prompt, concat(kBos, bytes("abcdef")));
  EXPECT_EQ(d.records[0].chosen, bytes("12"));
  EXPECT_EQ(d.records[0].rejected, bytes("xy"));
  EXPECT_EQ(d.records[1].chosen, concat(bytes("1"), kEos));
  // Then max_length: BOS + "abcdef" leaves 1 of 8 tokens for each response.
  o.max_length = 8;
  d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.records[0].chosen, bytes("1"));
  EXPECT_EQ(d.records[0].rejected, bytes("x"));
  o.path = "";
  o.max_length = 0;
  o.max_completion_length = 0;
  expect_invalid([&] { read_preference_jsonl(o, t); }, "data.path");
}

TEST(TextDatasetTest, ReadsSftAndPromptFormats) {
  const fs::path dir = temp_dir("sft");
  const ByteTokenizer t;
  TextDatasetOptions o;
  o.path = write_file(dir / "pc.jsonl", "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n");
  auto s = read_sft_jsonl(o, t);
  EXPECT_EQ(s.stats.format, TextFormat::kPromptCompletion);
  EXPECT_EQ(s.records[0].prompt, concat(kBos, bytes("2+2=")));
  EXPECT_EQ(s.records[0].completion, concat(bytes("4"), kEos));
  EXPECT_TRUE(s.records[0].distribution.empty());
  o.path = write_file(dir / "text.jsonl", "{\"text\": \"hello\"}\n");
  s = read_sft_jsonl(o, t);
  EXPECT_EQ(s.stats.format, TextFormat::kText);
  EXPECT_EQ(s.records[0].prompt, kBos);
  EXPECT_EQ(s.records[0].completion, concat(bytes("hello"), kEos));
  o.path = write_file(dir / "messages.jsonl",
                      "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}, "
                      "{\"role\": \"assistant\", \"content\": \"A\"}]}\n");
  s = read_sft_jsonl(o, t);
  EXPECT_EQ(s.stats.format, TextFormat::kMessages);
  EXPECT_EQ(s.records[0].prompt, concat(kBos, bytes("<|user|>\nQ\n<|assistant|>\n")));
  EXPECT_EQ(s.records[0].completion, concat(bytes("A\n"), kEos));
  o.path = write_file(dir / "conv_pc.jsonl",
                      "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}], "
                      "\"completion\": [{\"role\": \"assistant\", \"content\": \"A\"}]}\n");
  s = read_sft_jsonl(o, t);
  EXPECT_EQ(s.stats.format, TextFormat::kConversationalPromptCompletion);
  EXPECT_EQ(s.records[0].completion, concat(bytes("A\n"), kEos));

  o.path = write_file(dir / "prompts.jsonl",
                      "{\"prompt\": \"What is 3*3?\", \"reference\": \"9\"}\n{\"prompt\": \"Hi\"}\n");
  auto p = read_prompt_jsonl(o, t);
  EXPECT_EQ(p.stats.format, TextFormat::kPromptOnly);
  EXPECT_EQ(p.records[0].prompt_text, "What is 3*3?");
  EXPECT_EQ(p.records[0].reference, std::optional<std::string>("9"));
  EXPECT_FALSE(p.records[1].reference.has_value());
  EXPECT_EQ(p.records[1].prompt, concat(kBos, bytes("Hi")));
  o.path = write_file(dir / "conv_prompts.jsonl", "{\"prompt\": [{\"role\": \"user\", \"content\": \"Q\"}]}\n");
  p = read_prompt_jsonl(o, t);
  EXPECT_EQ(p.stats.format, TextFormat::kConversationalPrompt);
  EXPECT_EQ(p.records[0].prompt_text, "<|user|>\nQ\n<|assistant|>\n");
}

TEST(TextDatasetTest, EveryMalformedRowNamesFileAndLine) {
  const fs::path dir = temp_dir("errors");
  const ByteTokenizer t;
  const std::string good = "{\"prompt\": \"Q\", \"chosen\": \"y\", \"rejected\": \"n\"}\n";
  TextDatasetOptions o;
  auto expect_row_error = [&](const std::string& name, const std::string& content,
                              const std::string& line, const std::string& needle) {
    SCOPED_TRACE(name);
    o.path = write_file(dir / (name + ".jsonl"), content);
    expect_invalid([&] { read_preference_jsonl(o, t); }, o.path + ":" + line + ": expected");
    expect_invalid([&] { read_preference_jsonl(o, t); }, needle);
  };
  expect_row_error("json", good + "{not json\n", "2", "invalid JSON");
  expect_row_error("array", good + "[1, 2]\n", "2", "a JSON object");
  expect_row_error("first_row", "{\"prompt\": \"Q\"}\n", "1", "'chosen' and 'rejected'");
  expect_row_error("mixed", good + "{\"chosen\": \"y\", \"rejected\": \"n\"}\n", "2",
                   "standard format of line 1");
  expect_row_error("types", good + "{\"prompt\": \"Q\", \"chosen\": 3, \"rejected\": \"n\"}\n", "2",
                   "string fields 'prompt', 'chosen' and 'rejected'");
  expect_row_error("empty", good + "{\"prompt\": \"Q\", \"chosen\": \"\", \"rejected\": \"n\"}\n", "2",
                   "non-empty chosen");
  expect_row_error("bad_message",
                   "{\"prompt\": [{\"role\": \"user\"}], \"chosen\": [{\"role\": \"assistant\", "
                   "\"content\": \"y\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"n\"}]}\n",
                   "1", "preference row");
  expect_row_error("unknown_role",
                   "{\"prompt\": [{\"role\": \"usr\", \"content\": \"Q\"}], \"chosen\": [{\"role\": "
                   "\"assistant\", \"content\": \"y\"}], \"rejected\": [{\"role\": \"assistant\", "
                   "\"content\": \"n\"}]}\n",
                   "1", "unknown role 'usr'");
  expect_row_error("same_conversations",
                   "{\"chosen\": [{\"role\": \"user\", \"content\": \"Q\"}], \"rejected\": [{\"role\": "
                   "\"user\", \"content\": \"Q\"}]}\n",
                   "1", "sharing their first messages");
  // SFT and prompt errors.
  o.path = write_file(dir / "sft.jsonl", "{\"prompt\": \"Q\", \"completion\": \"A\"}\n{\"text\": 5}\n");
  expect_invalid([&] { read_sft_jsonl(o, t); }, o.path + ":2: expected string fields 'prompt' and 'completion'");
  o.path = write_file(dir / "sft_messages.jsonl",
                      "{\"messages\": [{\"role\": \"assistant\", \"content\": \"A\"}]}\n");
  expect_invalid([&] { read_sft_jsonl(o, t); }, o.path + ":1: expected 'messages' ending with an assistant");
  o.path = write_file(dir / "prompt_ref.jsonl", "{\"prompt\": \"Q\", \"reference\": 9}\n");
  expect_invalid([&] { read_prompt_jsonl(o, t); }, o.path + ":1: expected 'reference' to be a string");
  o.path = write_file(dir / "prompt_empty.jsonl", "{\"prompt\": \"\"}\n");
  o.add_bos = false;
  expect_invalid([&] { read_prompt_jsonl(o, t); }, o.path + ":1: expected a non-empty prompt");
  o.add_bos = true;
  // A file without rows, and a missing file.
  o.path = write_file(dir / "blank.jsonl", "\n  \n");
  expect_invalid([&] { read_preference_jsonl(o, t); }, "no valid row");
  o.path = (dir / "missing.jsonl").string();
  EXPECT_THROW(read_preference_jsonl(o, t), std::runtime_error);
}

TEST(TextDatasetTest, SkipsAndCountsBadRowsWhenAsked) {
  const fs::path dir = temp_dir("skip");
  const ByteTokenizer t;
  TextDatasetOptions o;
  o.skip_bad_rows = true;
  o.path = write_file(dir / "mixed.jsonl",
                      "{broken\n"
                      "{\"prompt\": \"Q\", \"chosen\": \"y\", \"rejected\": \"n\"}\n"
                      "{\"chosen\": \"y\", \"rejected\": \"n\"}\n"
                      "{\"prompt\": \"R\", \"chosen\": \"a\", \"rejected\": \"b\"}\n");
  const auto d = read_preference_jsonl(o, t);
  EXPECT_EQ(d.stats.format, TextFormat::kStandard);
  EXPECT_EQ(d.stats.rows, 4);
  EXPECT_EQ(d.stats.skipped_rows, 2);
  EXPECT_EQ(d.stats.records, 2);
  EXPECT_EQ(d.records[1].source, o.path + ":4");
  o.path = write_file(dir / "all_bad.jsonl", "{broken\n[]\n");
  expect_invalid([&] { read_preference_jsonl(o, t); }, "no valid row");
}
