// Poem parsing: pinyin, 中华新韵 groups, Unihan readings, the poem parser and the prompt's form.
// Expected values worked out by hand. Links no plugin API (fast to start).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "poem/pinyin.h"
#include "poem/poem_form.h"
#include "poem/poem_parser.h"
#include "poem/unihan_readings.h"

namespace g = prefengine::plugins::graders;

TEST(Pinyin, ParsesToneMarkedSyllables) {
  const auto zhong = g::parse_pinyin("zhōng");
  ASSERT_TRUE(zhong);
  EXPECT_EQ(zhong->initial, "zh");
  EXPECT_EQ(zhong->final, "ong");
  EXPECT_EQ(zhong->tone, 1);
  const auto lv = g::parse_pinyin("lǜ");
  ASSERT_TRUE(lv);
  EXPECT_EQ(lv->final, "v");
  EXPECT_EQ(lv->tone, 4);
  EXPECT_EQ(g::parse_pinyin("yuè")->final, "ve");
  EXPECT_EQ(g::parse_pinyin("yǒu")->final, "iou");
  EXPECT_EQ(g::parse_pinyin("wèi")->final, "uei");
  EXPECT_EQ(g::parse_pinyin("jú")->final, "v");
  EXPECT_EQ(g::parse_pinyin("guǐ")->final, "uei");
  EXPECT_EQ(g::parse_pinyin("ma5")->tone, 5);
  EXPECT_EQ(g::parse_pinyin("de")->tone, 5);
  EXPECT_FALSE(g::parse_pinyin("xyz"));
  EXPECT_FALSE(g::parse_pinyin(""));
  EXPECT_FALSE(g::parse_pinyin("\xff"));
}

TEST(Pinyin, XinyunGroups) {
  const auto group = [](const char* s) { return g::xinyun_group(*g::parse_pinyin(s)); };
  EXPECT_EQ(group("liú"), 7);   // iou: 尤
  EXPECT_EQ(group("lóu"), 7);   // ou: 尤
  EXPECT_EQ(group("jiā"), 1);   // 麻
  EXPECT_EQ(group("xié"), 3);   // 皆
  EXPECT_EQ(group("shí"), 13);  // apical i after sh: 支
  EXPECT_EQ(group("qī"), 12);   // i: 齐
  EXPECT_EQ(group("yú"), 12);   // ü: 齐
  EXPECT_EQ(group("ér"), 12);
  EXPECT_EQ(group("hú"), 14);   // 姑
  EXPECT_EQ(group("xīn"), 9);   // 文
  EXPECT_EQ(group("shēn"), 9);
  EXPECT_EQ(group("zān"), 8);   // 寒
  EXPECT_EQ(group("qíng"), 11);
  EXPECT_EQ(group("róng"), 11); // ong with eng/ing: 庚
  EXPECT_EQ(group("guō"), 2);   // uo: 波
  EXPECT_STREQ(g::xinyun_group_name(7), "尤");
}

TEST(UnihanReadings, UnionOfFieldsWithoutDuplicates) {
  const auto table = g::UnihanReadings::from_text(
      "# comment\n"
      "U+770B\tkMandarin\tkàn\n"
      "U+770B\tkHanyuPinlu\tkàn(6042) kān(66)\n"
      "U+770B\tkXHC1983\t0632.020:kān 0633.060:kàn\n"
      "U+770B\tkDefinition\tlook, see\n"
      "U+91CD\tkTGHZ2013\t047.150:chóng 481.090:zhòng\n");
  ASSERT_EQ(table->readings(U'看').size(), 2u);
  EXPECT_EQ(table->readings(U'看')[0].tone, 4);
  EXPECT_EQ(table->readings(U'看')[1].tone, 1);
  ASSERT_EQ(table->readings(U'重').size(), 2u);
  EXPECT_EQ(table->readings(U'重')[0].initial, "ch");
  EXPECT_TRUE(table->readings(U'水').empty());
}

TEST(UnihanReadings, LoadsTheDebianFileAndFailsClearly) {
  const auto table = g::UnihanReadings::cached(g::kDefaultUnihanReadingsPath);
  EXPECT_GT(table->size(), 40000u);
  ASSERT_FALSE(table->readings(U'流').empty());
  EXPECT_EQ(table->readings(U'流')[0].final, "iou");
  EXPECT_THROW(g::UnihanReadings::load("/nonexistent/Unihan.txt.bz2"), std::runtime_error);
}

TEST(PoemParser, TitleInBracketsAndAuthorDropped) {
  const auto poem = g::parse_poem("《登鹳雀楼》王之涣\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。");
  ASSERT_TRUE(poem.title);
  EXPECT_EQ(*poem.title, U"登鹳雀楼");
  ASSERT_EQ(poem.lines.size(), 4u);
  EXPECT_EQ(poem.lines[0], U"白日依山尽");
  EXPECT_EQ(poem.lines[3], U"更上一层楼");
}

TEST(PoemParser, LabelledTitleAndBareTitleLine) {
  const auto labelled = g::parse_poem("题目：春景\n春风吹绿柳，细雨润红花。");
  ASSERT_TRUE(labelled.title);
  EXPECT_EQ(*labelled.title, U"春景");
  EXPECT_EQ(labelled.lines.size(), 2u);
  const auto bare = g::parse_poem("春景\n春风吹绿柳，细雨润红花。");
  ASSERT_TRUE(bare.title);
  EXPECT_EQ(*bare.title, U"春景");
  // One line per row without punctuation: the first row is verse, not a title.
  const auto rows = g::parse_poem("白日依山尽\n黄河入海流\n欲穷千里目\n更上一层楼");
  EXPECT_FALSE(rows.title);
  EXPECT_EQ(rows.lines.size(), 4u);
}

TEST(PoemParser, AuthorLineUnderTheTitleIsDropped) {
  const auto poem = g::parse_poem("静夜思\n（唐）李白\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。");
  ASSERT_TRUE(poem.title);
  EXPECT_EQ(*poem.title, U"静夜思");
  ASSERT_EQ(poem.lines.size(), 4u);
  EXPECT_EQ(poem.lines[0], U"床前明月光");
  // Without a title, a short first line stays verse material of its own.
  EXPECT_EQ(g::parse_poem("春\n花开，叶落。").lines.size(), 2u);
}

TEST(PoemParser, KeepsOnlyHanAndSplitsAtPunctuation) {
  const auto poem = g::parse_poem("  白日 依山尽 (1)! 黄河入海流;\n\n  ...  \n作者：王之涣");
  EXPECT_FALSE(poem.title);
  ASSERT_EQ(poem.lines.size(), 2u);
  EXPECT_EQ(poem.lines[0], U"白日依山尽");
  EXPECT_EQ(poem.lines[1], U"黄河入海流");
  EXPECT_TRUE(g::parse_poem("").lines.empty());
  EXPECT_THROW(g::parse_poem("白日\xe4\xb8"), std::invalid_argument);
}

TEST(PoemForm, ReadsTheRequestFromThePrompt) {
  const auto f = g::requested_form("请写一首七言律诗，以《秋思》为题。");
  EXPECT_EQ(f.rows, 8);
  EXPECT_EQ(f.chars, 7);
  EXPECT_TRUE(f.title_asked);
  EXPECT_EQ(f.title, "秋思");
  const auto q = g::requested_form("写一首五绝，题目自拟");
  EXPECT_EQ(q.rows, 4);
  EXPECT_EQ(q.chars, 5);
  EXPECT_TRUE(q.title_asked);
  EXPECT_FALSE(q.title);
  const auto none = g::requested_form("写一首关于春天的诗");
  EXPECT_FALSE(none.rows);
  EXPECT_FALSE(none.chars);
  EXPECT_FALSE(none.title_asked);
}

TEST(PoemParser, AuthorLinesAreNotVerse) {
  const auto dotted = g::parse_poem("《春晓》\n唐代 · 孟浩然\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。");
  EXPECT_EQ(dotted.title, U"春晓");
  EXPECT_EQ(dotted.author, U"唐代 · 孟浩然");
  EXPECT_EQ(dotted.lines.size(), 4u);
  const auto dash = g::parse_poem("床前明月光，疑是地上霜。\n举头望明月，低头思故乡。\n——李白");
  EXPECT_EQ(dash.author, U"——李白");
  EXPECT_EQ(dash.lines.size(), 4u);
  const auto bracket = g::parse_poem("山行\n[唐] 杜牧\n远上寒山石径斜，白云生处有人家。");
  EXPECT_EQ(bracket.author, U"[唐] 杜牧");
  EXPECT_EQ(bracket.lines.size(), 2u);
  const auto inline_dash = g::parse_poem("床前明月光，疑是地上霜。——李白《静夜思》");
  EXPECT_FALSE(inline_dash.title);
  EXPECT_EQ(inline_dash.author, U"——李白《静夜思》");
  EXPECT_EQ(inline_dash.lines.size(), 2u);
}

TEST(PoemParser, ChatPreamblesAndClosingsAreExtraText) {
  const auto poem = g::parse_poem(
      "好的，以下是一首五言绝句：\n\n**《春晓》**\n\n春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。\n\n"
      "这首诗描写了春天早晨的景色，表达了诗人对春天的喜爱。");
  EXPECT_EQ(poem.title, U"春晓");
  EXPECT_EQ(poem.lines.size(), 4u);
  ASSERT_EQ(poem.extra.size(), 2u);
  EXPECT_EQ(poem.extra[0], "好的，以下是一首五言绝句：");
  EXPECT_EQ(g::parse_poem("Here is a poem:\n白日依山尽，黄河入海流。").extra.size(), 1u);
  EXPECT_TRUE(g::parse_poem("白日依山尽，黄河入海流。").extra.empty());
}

TEST(PoemParser, RowsSeparatedBySpacesOrOnOneLine) {
  const auto spaced = g::parse_poem("白日依山尽 黄河入海流 欲穷千里目 更上一层楼");
  ASSERT_EQ(spaced.lines.size(), 4u);
  EXPECT_EQ(spaced.lines[3], U"更上一层楼");
  EXPECT_EQ(g::parse_poem("朝辞白帝彩云间　千里江陵一日还").lines.size(), 2u);  // U+3000
  EXPECT_EQ(g::parse_poem("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。").lines.size(), 4u);
  // Short pieces stay one line: "白日 依山尽" is a stray space.
  EXPECT_EQ(g::parse_poem("白日 依山尽").lines.size(), 1u);
}
