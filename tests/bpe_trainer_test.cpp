// scripts/train_bpe.py, the BPE trainer whose tokenizer.json the math base uses
// (configs/lm/math/base_bpe.yaml): its merges on a corpus counted by hand, the file read by the
// engine's tokenizer (HfBpeTokenizer) to the ids that hand count gives, parity with the JavaScript
// reference tokenizer (@lenml/tokenizers, tests/tools/tokenizer_reference.js) on a tokenizer trained
// on the committed math rows, and its errors on bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/data/hf_bpe_tokenizer.h"
#include "test_util.h"
#include "tokenizer_reference.h"

namespace prefengine {
namespace {

namespace fs = std::filesystem;
using testing::make_temp_dir;
using testing::run_shell;
using testing::source_path;
using testing::write_file;

testing::CommandResult train_bpe(const std::string& args) {
  return run_shell("python3 '" + source_path("scripts/train_bpe.py") + "' " + args + " 2>&1");
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(testing::read_file(path)); }

// The corpus and its count, by hand. Words (Digits splits digits out first, then GPT-2's regex; a
// space is "Ġ" in the byte alphabet): ab x2, Ġab, Ġabc, Ġ x3, 1 x3, 2 x3, xy x2, Ġzw x2.
// Pairs: (a,b) 4, (Ġ,a) 2, (b,c) 1, (x,y) 2, (Ġ,z) 2, (z,w) 2.
//  1. a+b (4). Then (Ġ,ab) 2, (ab,c) 1, (x,y) 2, (Ġ,z) 2, (z,w) 2; ties at 2 go to the pair that
//     sorts first: (x,y) < (z,w) < (Ġ,ab) < (Ġ,z) (Ġ is U+0120).
//  2. x+y.  3. z+w; (Ġ,z) becomes (Ġ,zw) 2.  4. Ġ+ab ((Ġ,ab) < (Ġ,zw)).  5. Ġ+zw.
//  Left: (Ġab,c) 1, under --min-frequency 2. The digits never merge: each is a word of its own.
const char* kCorpus =
    "{\"text\": \"ab ab abc\"}\n{\"text\": \"ab 12 12 12\"}\n{\"text\": \"xy zw\"}\n\n{\"text\": \"xy zw\"}\n";

using Merges = std::vector<std::vector<std::string>>;

// Trains on kCorpus with --vocab-size `vocab` into DIR/tok (DIR a new temporary folder, returned);
// `merges` gets the file's merges.
std::string train_hand_corpus(const std::string& tag, int vocab, Merges* merges) {
  const std::string dir = make_temp_dir(tag);
  const std::string corpus = write_file(dir + "/corpus.jsonl", kCorpus);
  const auto result = train_bpe("--input " + corpus + " --fields text --vocab-size " + std::to_string(vocab) +
                                " --out " + dir + "/tok");
  EXPECT_EQ(result.code, 0) << result.output;
  *merges = read_json(dir + "/tok/tokenizer.json")["model"]["merges"].get<Merges>();
  return dir;
}

TEST(BpeTrainerTest, LearnsTheMergesOfAHandCount) {
  Merges merges;
  const std::string dir = train_hand_corpus("bpe-hand", 300, &merges);
  EXPECT_EQ(merges, (Merges{{"a", "b"}, {"x", "y"}, {"z", "w"}, {"\u0120", "ab"}, {"\u0120", "zw"}}));

  // The engine reads it: bytes keep their values as ids, merges follow in rank order, then the
  // special tokens tokenizer_config.json names.
  const HfBpeTokenizer t(dir + "/tok");
  EXPECT_EQ(t.vocab_size(), 256 + 5 + 3);
  EXPECT_EQ(t.token_id("ab"), 256);
  EXPECT_EQ(t.token_id("\u0120zw"), 260);
  EXPECT_EQ(t.bos_id(), 261);
  EXPECT_EQ(t.eos_id(), 262);
  EXPECT_EQ(t.pad_id(), 263);
  // "ab abc 12 zw": ab | Ġab c | Ġ | 1 | 2 | Ġzw (the space before 12 stays alone: Digits split it off).
  const std::vector<int64_t> ids = {256, 259, 'c', ' ', '1', '2', 260};
  EXPECT_EQ(t.encode("ab abc 12 zw"), ids);
  EXPECT_EQ(t.decode(ids), "ab abc 12 zw");
  EXPECT_EQ(t.encode("ab", true), (std::vector<int64_t>{261, 256}));
}

TEST(BpeTrainerTest, StopsAtTheVocabularySize) {
  // 256 bytes + 3 special tokens + 2 merges: the first two of the hand count.
  Merges merges;
  const std::string dir = train_hand_corpus("bpe-cap", 261, &merges);
  EXPECT_EQ(merges, (Merges{{"a", "b"}, {"x", "y"}}));
  EXPECT_EQ(HfBpeTokenizer(dir + "/tok").vocab_size(), 261);
}

TEST(BpeTrainerTest, BadInputNamesTheFileLineAndField) {
  const std::string dir = make_temp_dir("bpe-bad");
  const std::string missing = write_file(dir + "/missing.jsonl", "{\"text\": \"ab\"}\n{\"prompt\": \"ab\"}\n");
  auto result = train_bpe("--input " + missing + " --fields text --out " + dir + "/tok");
  EXPECT_NE(result.code, 0);
  EXPECT_NE(result.output.find(missing + ":2: expected a string field 'text'"), std::string::npos) << result.output;
  const std::string broken = write_file(dir + "/broken.jsonl", "{\"text\": \"ab\"}\n{\"text\": \n");
  result = train_bpe("--input " + broken + " --fields text --out " + dir + "/tok");
  EXPECT_NE(result.code, 0);
  EXPECT_NE(result.output.find(broken + ":2: not JSON"), std::string::npos) << result.output;
  result = train_bpe("--input " + missing + " --fields text --vocab-size 100 --out " + dir + "/tok");
  EXPECT_NE(result.code, 0);
  EXPECT_NE(result.output.find("--vocab-size 100: expected at least 259"), std::string::npos) << result.output;
  EXPECT_FALSE(fs::exists(dir + "/tok/tokenizer.json"));
}

// A tokenizer trained on the committed math SFT rows, applied to the held-out prompts and
// references it never saw: the engine's ids equal the JavaScript reference's, every text decodes
// back, no token holds a digit beside anything else, and the rows take well under one token a byte.
TEST(BpeTrainerTest, MathTokenizerMatchesTheReferenceTokenizer) {
  const std::string dir = make_temp_dir("bpe-math");
  const auto result = train_bpe("--input " + source_path("configs/lm/math/sft.jsonl") +
                                " --vocab-size 512 --out " + dir + "/tok");
  ASSERT_EQ(result.code, 0) << result.output;
  const HfBpeTokenizer t(dir + "/tok");
  ASSERT_LE(t.vocab_size(), 512);
  ASSERT_GT(t.vocab_size(), 259 + 100);  // the math rows' words are learnt, not just bytes
  for (int64_t id = 0; id < t.vocab_size(); ++id) {
    const std::string& token = t.token(id);
    if (token.size() > 1 && token.find_first_of("0123456789") != std::string::npos) {
      ADD_FAILURE() << "token " << id << " '" << token << "' holds a digit beside other characters";
    }
  }
  std::vector<std::string> texts;
  std::ifstream prompts(source_path("configs/lm/math/prompts.jsonl"));
  for (std::string line; std::getline(prompts, line);) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    texts.push_back(row["prompt"].get<std::string>());
  }
  std::ifstream pairs(source_path("configs/lm/math/pairs.jsonl"));
  for (std::string line; std::getline(pairs, line) && texts.size() < 400;) {
    if (line.empty()) continue;
    texts.push_back(nlohmann::json::parse(line)["chosen"].get<std::string>());
  }
  texts.push_back("求 3/4 + 1/6 的值。答案是 11/12");  // not in the training text: bytes only
  ASSERT_GT(texts.size(), 300u);
  size_t bytes = 0, tokens = 0;
  for (const auto& text : texts) {
    const auto ids = t.encode(text);
    EXPECT_EQ(t.decode(ids), text);
    bytes += text.size();
    tokens += ids.size();
  }
  EXPECT_LT(static_cast<double>(tokens), 0.6 * static_cast<double>(bytes)) << tokens << " tokens, " << bytes << " bytes";

  const std::string why = testing::reference_tokenizer_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  const auto expected = testing::reference_ids(texts, dir + "/tok");
  ASSERT_TRUE(expected.is_array());
  ASSERT_EQ(expected.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(t.encode(texts[i]), expected[i].get<std::vector<int64_t>>()) << "text " << i << ": " << texts[i];
  }
}

}  // namespace
}  // namespace prefengine
