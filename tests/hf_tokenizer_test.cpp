// The tokenizer.json pipeline pieces on small hand-made files, each expected id list worked out by
// hand from the Hugging Face `tokenizers` semantics stated next to it: SentencePiece-style BPE
// with byte_fallback (Prepend / Replace normalizers, ByteFallback / Fuse / Strip decoders, unk
// and fuse_unk), the Split delimiter behaviors, added-token flags (lstrip, rstrip, single_word,
// normalized) and the errors for what is not supported.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/hf_bpe_tokenizer.h"
#include "test_util.h"

namespace prefengine {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int64_t>;

const std::string kMeta = "\u2581";  // SentencePiece's word boundary
const std::string kSpace = "\u0120";  // GPT-2's stand-in for the byte ' '

std::string write_tokenizer(const std::string& tag, const json& j) {
  const std::string dir = testing::make_temp_dir(tag);
  testing::write_file(dir + "/tokenizer.json", j.dump());
  return dir + "/tokenizer.json";
}

void expect_invalid(const std::string& path, const std::vector<std::string>& parts) {
  try {
    HfBpeTokenizer t(path);
    ADD_FAILURE() << "expected std::invalid_argument for " << path;
  } catch (const std::invalid_argument& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(path), std::string::npos) << message;  // names the file
    for (const auto& part : parts) EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}

// A Mistral-like file: Prepend + Replace normalizer, no pre-tokenizer, byte_fallback BPE,
// decoder Replace / ByteFallback / Fuse / Strip.
json sentencepiece_style(bool fuse_unk = true) {
  return json{
      {"added_tokens", json::array({json{{"id", 0}, {"content", "<unk>"}, {"special", true}, {"normalized", false}},
                                    json{{"id", 1}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                    json{{"id", 2}, {"content", "</s>"}, {"special", true}, {"normalized", false}}})},
      {"normalizer", json{{"type", "Sequence"},
                          {"normalizers", json::array({json{{"type", "Prepend"}, {"prepend", kMeta}},
                                                       json{{"type", "Replace"},
                                                            {"pattern", json{{"String", " "}}},
                                                            {"content", kMeta}}})}}},
      {"pre_tokenizer", nullptr},
      {"decoder", json{{"type", "Sequence"},
                       {"decoders", json::array({json{{"type", "Replace"}, {"pattern", json{{"String", kMeta}}}, {"content", " "}},
                                                 json{{"type", "ByteFallback"}},
                                                 json{{"type", "Fuse"}},
                                                 json{{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}}},
      {"model", json{{"type", "BPE"}, {"byte_fallback", true}, {"fuse_unk", fuse_unk}, {"unk_token", "<unk>"},
                     {"vocab", json{{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"<0xC3>", 3}, {"<0xA9>", 4},
                                    {kMeta, 5}, {"h", 6}, {"i", 7}, {kMeta + "h", 8}, {kMeta + "hi", 9},
                                    {"hi", 10}, {"x", 11}}},
                     {"merges", json::array({kMeta + " h", kMeta + "h i", "h i"})}}}};
}

TEST(HfTokenizerTest, SentencePieceStyleByteFallback) {
  const HfBpeTokenizer t(write_tokenizer("hf-sp", sentencepiece_style()));
  EXPECT_FALSE(t.byte_level());
  // "hi hi" -> "\u2581hi\u2581hi": the rank-0 merge (\u2581 h) at both places, then (\u2581h i).
  EXPECT_EQ(t.encode("hi hi"), (Ids{9, 9}));
  // "hi" inside the text: no prefix, so h+i (rank 2) after \u2581h could not take the h.
  EXPECT_EQ(t.encode("xhi"), (Ids{5, 11, 10}));
  // e-acute is not in the vocabulary: its two UTF-8 bytes as <0xC3> <0xA9>.
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{5, 3, 4}));
  // Added tokens are split out first; the prefix goes before each remaining segment.
  EXPECT_EQ(t.encode("hi<s>hi"), (Ids{9, 1, 9}));
  EXPECT_EQ(t.encode("<s>"), (Ids{1}));
  // 'z' has neither a token nor a byte token (0x7A): unk, two of them fused into one.
  EXPECT_EQ(t.encode("zz"), (Ids{5, 0}));
  EXPECT_EQ(t.encode("xz"), (Ids{5, 11, 0}));
  EXPECT_EQ(HfBpeTokenizer(write_tokenizer("hf-sp-nofuse", sentencepiece_style(false))).encode("zz"),
            (Ids{5, 0, 0}));
  EXPECT_EQ(t.encode(""), Ids{});
  // Decode: \u2581 -> ' ', byte runs -> their text, fused, one leading space stripped.
  EXPECT_EQ(t.decode({9, 5, 3, 4}), "hi \xC3\xA9");
  EXPECT_EQ(t.decode(t.encode(" hi  \xC3\xA9x")), " hi  \xC3\xA9x");
  // A byte run that is not UTF-8 gives one U+FFFD per byte.
  EXPECT_EQ(t.decode({9, 3}), "hi\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({9, 4, 3}), "hi\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_THROW(t.decode({12}), std::invalid_argument);

  // A Regex Replace (any whitespace run -> one \u2581) after NFKC (fullwidth 'ｈ' -> 'h').
  json j = sentencepiece_style();
  j["normalizer"]["normalizers"] = json::array(
      {json{{"type", "NFKC"}}, json{{"type", "Prepend"}, {"prepend", kMeta}},
       json{{"type", "Replace"}, {"pattern", json{{"Regex", "\\s+"}}}, {"content", kMeta}}});
  const HfBpeTokenizer regex(write_tokenizer("hf-sp-regex", j));
  EXPECT_EQ(regex.encode("hi \t\n hi"), (Ids{9, 9}));
  EXPECT_EQ(regex.encode("\xEF\xBD\x88i"), (Ids{9}));
}

// The same model behind a Metaspace pre-tokenizer and decoder (Mistral v0.3 and Llama files
// converted with legacy=false), with one more merge, (x \u2581), ranked first.
json metaspace_style(const std::string& prepend_scheme, bool split) {
  json j = sentencepiece_style();
  const json metaspace = {{"type", "Metaspace"}, {"replacement", kMeta}, {"prepend_scheme", prepend_scheme}, {"split", split}};
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = metaspace;
  j["decoder"] = json{{"type", "Sequence"},
                      {"decoders", json::array({metaspace, json{{"type", "ByteFallback"}}, json{{"type", "Fuse"}}})}};
  j["model"]["vocab"]["x" + kMeta] = 12;
  j["model"]["merges"] = json::array({"x " + kMeta, kMeta + " h", kMeta + "h i", "h i"});
  return j;
}

TEST(HfTokenizerTest, Metaspace) {
  const HfBpeTokenizer first(write_tokenizer("hf-meta", metaspace_style("first", false)));
  // Spaces become \u2581 and one goes before the start of the input: "\u2581hi\u2581hi".
  EXPECT_EQ(first.encode("hi hi"), (Ids{9, 9}));
  // "first": not before a segment that follows an added token ("hi" -> h+i, rank 3).
  EXPECT_EQ(first.encode("hi<s>hi"), (Ids{9, 1, 10}));
  EXPECT_EQ(HfBpeTokenizer(write_tokenizer("hf-meta", metaspace_style("always", false))).encode("hi<s>hi"),
            (Ids{9, 1, 9}));
  // "never": "hi\u2581hi": (\u2581 h) rank 1, (\u2581h i) rank 2, then (h i) rank 3.
  EXPECT_EQ(HfBpeTokenizer(write_tokenizer("hf-meta", metaspace_style("never", false))).encode("hi hi"),
            (Ids{10, 9}));
  // Without split, (x \u2581) (rank 0) joins across the word boundary: \u2581 | x\u2581 | h+i.
  EXPECT_EQ(first.encode("x hi"), (Ids{5, 12, 10}));
  // With split, each \u2581 begins a piece: "\u2581x" | "\u2581hi".
  EXPECT_EQ(HfBpeTokenizer(write_tokenizer("hf-meta", metaspace_style("first", true))).encode("x hi"),
            (Ids{5, 11, 9}));
  // Decoder: \u2581 -> ' ', but dropped in the first token.
  EXPECT_EQ(first.decode({9, 1, 10}), "hi<s>hi");
  EXPECT_EQ(first.decode({5, 11, 9}), "x hi");
  EXPECT_EQ(first.decode(first.encode("hi  x hi")), "hi  x hi");
  expect_invalid(write_tokenizer("hf-meta-bad", metaspace_style("sometimes", false)),
                 {"pre_tokenizer.prepend_scheme", "'sometimes'"});
}

// A byte-level file whose vocabulary holds the single characters and a few whole pieces, with
// ignore_merges so that a piece in the vocabulary is one id: the ids show the pieces.
json byte_level_pieces(const json& pre_tokenizer, const json& added = json::array(),
                       const json& normalizer = nullptr) {
  json vocab = {{"a", 0}, {"b", 1}, {"-", 2}, {"a-", 3}, {"-b", 4}, {"--", 5}, {kSpace, 6},
                {"<", 7}, {"w", 8}, {">", 9}, {"_", 25}, {"1", 26},
                {"\xC3\x99\xC2\xA3" "4", 27}};  // "\u00D9\u00A34": the bytes D9 A3 34 of "\u06634"
  return json{{"added_tokens", added},
              {"normalizer", normalizer},
              {"pre_tokenizer", json{{"type", "Sequence"},
                                     {"pretokenizers", json::array({pre_tokenizer,
                                                                    json{{"type", "ByteLevel"},
                                                                         {"add_prefix_space", false},
                                                                         {"use_regex", false}}})}}},
              {"model", json{{"type", "BPE"}, {"ignore_merges", true}, {"vocab", vocab}, {"merges", json::array()}}}};
}

json split_on_dash(const std::string& behavior, bool invert = false) {
  return json{{"type", "Split"}, {"pattern", json{{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
}

TEST(HfTokenizerTest, SplitDelimiterBehaviors) {
  // The tokenizers documentation's example, "the-final--countdown" split on '-':
  //   Removed            the | final | countdown
  //   Isolated           the | - | final | - | - | countdown
  //   MergedWithPrevious the- | final- | - | countdown
  //   MergedWithNext     the | -final | - | -countdown
  //   Contiguous         the | - | final | -- | countdown
  // Here on "a--b" (pieces a=0 b=1 -=2 a-=3 -b=4 --=5).
  auto encode = [](const std::string& behavior, bool invert = false) {
    return HfBpeTokenizer(write_tokenizer("hf-split", byte_level_pieces(split_on_dash(behavior, invert)))).encode("a--b");
  };
  EXPECT_EQ(encode("Removed"), (Ids{0, 1}));
  EXPECT_EQ(encode("Isolated"), (Ids{0, 2, 2, 1}));
  EXPECT_EQ(encode("MergedWithPrevious"), (Ids{3, 2, 1}));
  EXPECT_EQ(encode("MergedWithNext"), (Ids{0, 2, 4}));
  EXPECT_EQ(encode("Contiguous"), (Ids{0, 5, 1}));
  // invert: the non-dashes are the matches (a, b) and each dash a non-match: Removed keeps the
  // two dashes as two pieces; MergedWithPrevious joins b to the dash before it.
  EXPECT_EQ(encode("Removed", true), (Ids{2, 2}));
  EXPECT_EQ(encode("MergedWithPrevious", true), (Ids{0, 2, 4}));
}

TEST(HfTokenizerTest, DigitsAreUnicodeNumerals) {
  // Digits splits on Rust's char::is_numeric, so ARABIC-INDIC DIGIT THREE (U+0663) joins the run
  // with '4': pieces "a" | "\u06634" | "b", the middle one a single vocabulary entry after the
  // byte map (D9 -> U+00D9, A3 -> U+00A3).
  const HfBpeTokenizer t(write_tokenizer(
      "hf-digits", byte_level_pieces(json{{"type", "Digits"}, {"individual_digits", false}})));
  EXPECT_EQ(t.encode("a\xD9\xA3" "4b"), (Ids{0, 27, 1}));
  EXPECT_EQ(t.decode({0, 27, 1}), "a\xD9\xA3" "4b");
}

TEST(HfTokenizerTest, AddedTokenFlags) {
  const json added = json::array({
      json{{"id", 10}, {"content", "<m>"}, {"lstrip", true}, {"special", true}},
      json{{"id", 11}, {"content", "<r>"}, {"rstrip", true}, {"special", true}},
      json{{"id", 12}, {"content", "<w>"}, {"single_word", true}, {"special", true}},
      json{{"id", 13}, {"content", "<w>>"}, {"special", true}},
      // normalized=true: matched after the NFC normalizer (e + combining acute -> e-acute).
      json{{"id", 22}, {"content", "\xC3\xA9"}, {"normalized", true}, {"special", false}},
      json{{"id", 23}, {"content", "\xE4\xB8\xAD"}, {"normalized", false}, {"special", false}},
  });
  const HfBpeTokenizer t(write_tokenizer(
      "hf-added", byte_level_pieces(split_on_dash("Isolated"), added, json{{"type", "NFC"}})));
  // lstrip takes the space on the left with the token; rstrip the one on the right.
  EXPECT_EQ(t.encode("a <m> b"), (Ids{0, 10, 6, 1}));
  EXPECT_EQ(t.encode("a <r> b"), (Ids{0, 6, 11, 1}));
  EXPECT_EQ(t.encode("a  <r>  b"), (Ids{0, 6, 6, 11, 1}));
  // single_word: only between non-word characters; glued to letters it is plain text.
  EXPECT_EQ(t.encode("a <w> b"), (Ids{0, 6, 12, 6, 1}));
  EXPECT_EQ(t.encode("a<w>b"), (Ids{0, 7, 8, 9, 1}));
  // Word characters are the regex class \w: letters, digits and '_' too; '-' is not one.
  EXPECT_EQ(t.encode("_<w>"), (Ids{25, 7, 8, 9}));
  EXPECT_EQ(t.encode("<w>1"), (Ids{7, 8, 9, 26}));
  EXPECT_EQ(t.encode("-<w>-"), (Ids{2, 12, 2}));
  // The longest added token at a position wins.
  EXPECT_EQ(t.encode("<w>>"), (Ids{13}));
  // The normalized token is found in the NFC form of the text, both spellings.
  EXPECT_EQ(t.encode("e\xCC\x81"), (Ids{22}));
  EXPECT_EQ(t.encode("\xC3\xA9"), (Ids{22}));
  // Byte-level decode maps every token's characters back to bytes; a token with a character
  // outside GPT-2's byte alphabet (U+4E2D) is kept as it is, as the Rust decoder does.
  EXPECT_EQ(t.encode("a\xE4\xB8\xAD<m>"), (Ids{0, 23, 10}));
  EXPECT_EQ(t.decode({0, 23, 10, 6, 1}), "a\xE4\xB8\xAD<m> b");
}

TEST(HfTokenizerTest, UnsupportedPartsAreErrorsNamingFileAndKey) {
  json j = byte_level_pieces(split_on_dash("Isolated"));
  j["normalizer"] = json{{"type", "Sequence"}, {"normalizers", json::array({json{{"type", "NFC"}}, json{{"type", "Lowercase"}}})}};
  expect_invalid(write_tokenizer("hf-bad", j), {"normalizer.normalizers[1].type", "'Lowercase'", "not supported"});

  j = byte_level_pieces(split_on_dash("Isolated"));
  j["pre_tokenizer"]["pretokenizers"][0] = json{{"type", "Whitespace"}};
  expect_invalid(write_tokenizer("hf-bad", j), {"pre_tokenizer.pretokenizers[0].type", "'Whitespace'"});

  j = byte_level_pieces(split_on_dash("Bogus"));
  expect_invalid(write_tokenizer("hf-bad", j), {"pre_tokenizer.pretokenizers[0].behavior", "'Bogus'"});

  j = byte_level_pieces(json{{"type", "Split"}, {"pattern", json{{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}});
  expect_invalid(write_tokenizer("hf-bad", j), {"pre_tokenizer.pretokenizers[0].pattern.Regex", "cannot compile"});

  j = sentencepiece_style();
  j["decoder"]["decoders"][1] = json{{"type", "CTC"}};
  expect_invalid(write_tokenizer("hf-bad", j), {"decoder.decoders[1].type", "'CTC'"});

  j = sentencepiece_style();
  j["model"]["type"] = "Unigram";
  expect_invalid(write_tokenizer("hf-bad", j), {"model.type", "'Unigram'"});

  j = sentencepiece_style();
  j["model"]["merges"].push_back("x q");
  expect_invalid(write_tokenizer("hf-bad", j), {"model.merges[3]", "'q' is not in the vocabulary"});

  // Malformed model parts (read while parsing, without building them as JSON values).
  j = sentencepiece_style();
  j["model"]["merges"].push_back(json::array({"x"}));
  expect_invalid(write_tokenizer("hf-bad", j), {"model.merges[3]", "neither 'left right' nor [left, right]"});
  j = sentencepiece_style();
  j["model"]["merges"][1] = "xq";
  expect_invalid(write_tokenizer("hf-bad", j), {"model.merges[1]"});
  j = sentencepiece_style();
  j["model"]["vocab"]["q"] = "seven";
  expect_invalid(write_tokenizer("hf-bad", j), {"model.vocab['q'] is not an id"});
  j = sentencepiece_style();
  j["model"]["vocab"]["q"] = json{{"id", 7}};
  expect_invalid(write_tokenizer("hf-bad", j), {"model.vocab['q'] is not an id"});
  j = sentencepiece_style();
  j["model"]["vocab"] = json::array({json::array({"h", 0.0})});  // Unigram's layout
  expect_invalid(write_tokenizer("hf-bad", j), {"model.vocab"});
  j = sentencepiece_style();
  j["model"].erase("merges");
  expect_invalid(write_tokenizer("hf-bad", j), {"model.merges"});

  j = sentencepiece_style();
  j["model"]["continuing_subword_prefix"] = "##";
  expect_invalid(write_tokenizer("hf-bad", j), {"model.continuing_subword_prefix"});

  j = sentencepiece_style();
  j["model"]["unk_token"] = "<nope>";
  expect_invalid(write_tokenizer("hf-bad", j), {"model.unk_token", "'<nope>'"});

  j = sentencepiece_style();
  j["model"]["byte_fallback"] = false;  // neither byte-level nor byte_fallback
  expect_invalid(write_tokenizer("hf-bad", j), {"ByteLevel"});
}

}  // namespace
}  // namespace prefengine
