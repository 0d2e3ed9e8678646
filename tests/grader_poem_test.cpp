// The poem grader on whole poems. The Tang poems are in the public domain; their broken variants
// each break exactly one dimension. Expected values were worked out by hand from the modern
// readings of each character.
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>
#include <thread>
#include <vector>

#include "poem/poem_grader.h"

namespace g = prefengine::plugins::graders;
using prefengine::GradeInput;
using prefengine::GradeResult;

namespace {

std::map<std::string, double> dims(const GradeResult& r) {
  return std::map<std::string, double>(r.dimensions.begin(), r.dimensions.end());
}

const g::PoemGrader& grader() {
  static const g::PoemGrader kGrader{g::PoemGraderOptions{}};
  return kGrader;
}

GradeResult grade(const std::string& prompt, const std::string& poem) {
  return grader().grade(GradeInput{prompt, poem, std::nullopt});
}

// 王之涣《登鹳雀楼》: 仄起, first line not rhyming (A B C D); rhyme 流 liú / 楼 lóu (尤).
const char* kDengGuanque = "《登鹳雀楼》王之涣\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。";
// 李白《早发白帝城》: 7-character quatrain, rhyme 间 jiān / 还 huán / 山 shān (寒).
const char* kZaofaBaidi = "朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。";
// 杜牧《山行》: 7-character quatrain, even lines rhyme 家 jiā / 花 huā (麻).
const char* kShanxing = "远上寒山石径斜，白云生处有人家。\n停车坐爱枫林晚，霜叶红于二月花。";
// 白居易《赋得古原草送别》: eight 5-character lines, rhyme 荣 róng / 生 shēng / 城 chéng /
// 情 qíng (庚).
const char* kGuyuancao =
    "离离原上草，一岁一枯荣。\n野火烧不尽，春风吹又生。\n远芳侵古道，晴翠接荒城。\n"
    "又送王孙去，萋萋满别情。";

// 李商隐《无题》: eight 7-character lines, rhyme 残 cán / 干 gān / 寒 hán / 看 kān (寒); the last
// line fits its level ending only through the second reading of 看 (kān, not kàn).
const char* kWuti =
    "相见时难别亦难，东风无力百花残。春蚕到死丝方尽，蜡炬成灰泪始干。"
    "晓镜但愁云鬓改，夜吟应觉月光寒。蓬山此去无多路，青鸟殷勤为探看。";

}  // namespace

TEST(PoemGrader, TangPoemsPass) {
  for (const auto& [prompt, poem] : std::vector<std::pair<std::string, std::string>>{
           {"写一首五言绝句", kDengGuanque},
           {"写一首七言绝句", kZaofaBaidi},
           {"写一首七言绝句", kShanxing},
           {"写一首五言律诗", kGuyuancao},
           {"写一首七言律诗", kWuti},
           {"写一首诗", kDengGuanque}}) {
    const auto r = grade(prompt, poem);
    EXPECT_EQ(r.score, 1.0) << poem << "\n" << r.reason;
  }
}

TEST(PoemGrader, WrongCharacterCountFailsOnlyCharsPerRow) {
  const auto r = grade("写一首五言绝句", "白日依山，黄河入海流。欲穷千里目，更上一层楼。");
  auto d = dims(r);
  EXPECT_EQ(d["chars_per_row"], 0.75);
  EXPECT_EQ(d["row_number"], 1.0);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["tone_pattern"], 1.0);
  EXPECT_EQ(d["title"], 1.0);
  EXPECT_NE(r.reason.find("line 1 has 4 characters"), std::string::npos) << r.reason;
}

TEST(PoemGrader, SevenCharacterRegulatedVerseWithAShortLine) {
  // 《无题》 with 丝方 dropped from line 3 (five characters left of seven): 7 of 8 lines right.
  auto d = dims(grade("写一首七言律诗",
                      "相见时难别亦难，东风无力百花残。春蚕到死尽，蜡炬成灰泪始干。"
                      "晓镜但愁云鬓改，夜吟应觉月光寒。蓬山此去无多路，青鸟殷勤为探看。"));
  EXPECT_EQ(d["chars_per_row"], 7.0 / 8.0);
  EXPECT_EQ(d["row_number"], 1.0);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["tone_pattern"], 1.0);
}

TEST(PoemGrader, ExtraLineFailsOnlyRowNumber) {
  auto d = dims(grade("写一首五言绝句",
                            "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。春风吹又生。"));
  EXPECT_EQ(d["row_number"], 0.0);
  EXPECT_EQ(d["chars_per_row"], 1.0);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["tone_pattern"], 1.0);
}

TEST(PoemGrader, MissingLineOfRegulatedVerseFailsOnlyRowNumber) {
  auto d = dims(grade("写一首五言律诗",
                            "离离原上草，一岁一枯荣。野火烧不尽，春风吹又生。远芳侵古道，"
                            "晴翠接荒城。又送王孙去。"));
  EXPECT_EQ(d["row_number"], 0.0);
  EXPECT_EQ(d["chars_per_row"], 1.0);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["tone_pattern"], 1.0);
}

TEST(PoemGrader, SwappedRhymeCharacterFailsOnlyRhyme) {
  // 楼 lóu (尤) -> 台 tái (开), still a level tone where the pattern wants one.
  auto d = dims(grade("写一首五言绝句", "白日依山尽，黄河入海流。欲穷千里目，更上一层台。"));
  EXPECT_EQ(d["rhyme"], 0.5);
  EXPECT_EQ(d["tone_pattern"], 1.0);
  EXPECT_EQ(d["chars_per_row"], 1.0);
  EXPECT_EQ(d["row_number"], 1.0);
  // 花 huā (麻) -> 天 tiān (寒) in 《山行》.
  auto s = dims(grade("写一首七言绝句",
                            "远上寒山石径斜，白云生处有人家。停车坐爱枫林晚，霜叶红于二月天。"));
  EXPECT_EQ(s["rhyme"], 0.5);
  EXPECT_EQ(s["tone_pattern"], 1.0);
}

TEST(PoemGrader, BrokenToneFailsOnlyTonePattern) {
  // 河 hé (level) -> 水 shuǐ (oblique) at position 2 of a 平平仄仄平 line.
  auto d = dims(grade("写一首五言绝句", "白日依山尽，黄水入海流。欲穷千里目，更上一层楼。"));
  EXPECT_EQ(d["tone_pattern"], 0.75);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["chars_per_row"], 1.0);
  EXPECT_EQ(d["row_number"], 1.0);
}

TEST(PoemGrader, PolyphonicCharactersFitWithAnyReading) {
  // 杜甫《春望》: 别 (bié/biè) at an oblique position and 胜 (shèng/shēng) at a level one fit
  // through their second readings. Its rhyme 簪 zān is in 寒 in modern Mandarin, not with
  // 深 心 金 (文): a known limit of judging Tang verse by modern rhyme.
  auto d = dims(grade("写一首五言律诗",
                            "国破山河在，城春草木深。感时花溅泪，恨别鸟惊心。烽火连三月，"
                            "家书抵万金。白头搔更短，浑欲不胜簪。"));
  EXPECT_EQ(d["tone_pattern"], 1.0);
  EXPECT_EQ(d["rhyme"], 0.75);
}

TEST(PoemGrader, TitleAsThePromptAsks) {
  const std::string body = "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。";
  EXPECT_EQ(dims(grade("写一首五言绝句，题为《登鹳雀楼》", kDengGuanque))["title"], 1.0);
  EXPECT_EQ(dims(grade("写一首五言绝句，题为《登鹳雀楼》", "《登楼》\n" + body))["title"], 0.5);
  EXPECT_EQ(dims(grade("写一首五言绝句，题为《登鹳雀楼》", body))["title"], 0.0);
  EXPECT_EQ(dims(grade("写一首五言绝句，并加上标题", body))["title"], 0.0);
  EXPECT_EQ(dims(grade("写一首五言绝句，并加上标题", "题目：登楼\n" + body))["title"], 1.0);
  EXPECT_EQ(dims(grade("写一首五言绝句", body))["title"], 1.0);
}

TEST(PoemGrader, WrongFormForThePrompt) {
  // A five-character quatrain where seven characters were asked for: no line has the asked
  // length, so no line can be checked for tones either.
  auto d = dims(grade("写一首七言绝句", kDengGuanque));
  EXPECT_EQ(d["chars_per_row"], 0.0);
  EXPECT_EQ(d["tone_pattern"], 0.0);
  EXPECT_EQ(d["rhyme"], 1.0);
  EXPECT_EQ(d["row_number"], 1.0);
  // Eight lines where a quatrain was asked for.
  EXPECT_EQ(dims(grade("写一首五言绝句", kGuyuancao))["row_number"], 0.0);
}

TEST(PoemGrader, StrictRhymeSchemeNeedsTheSameFinal) {
  g::PoemGraderOptions options;
  options.rhyme_scheme = "strict";
  g::PoemGrader strict{options};
  // 流 liú (iou) and 楼 lóu (ou) share the group 尤 but not the final.
  auto d = dims(strict.grade(GradeInput{"写一首五言绝句", kDengGuanque, std::nullopt}));
  EXPECT_EQ(d["rhyme"], 0.5);
}

TEST(PoemGrader, OptionsAndBadInput) {
  g::PoemGraderOptions bad;
  bad.rhyme_scheme = "pingshui";
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad = g::PoemGraderOptions{};
  bad.readings_path = "";
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  prefengine::PluginOptions options("graders.poem");
  options.set_scalar("rhyme_scheme", "xinyn");
  EXPECT_THROW(g::PoemGrader{options}, std::invalid_argument);
  prefengine::PluginOptions missing("graders.poem");
  missing.set_scalar("readings_path", "/nonexistent/readings.txt");
  EXPECT_THROW(g::PoemGrader{missing}, std::runtime_error);
  prefengine::PluginOptions good("graders.poem");
  good.set_scalar("rhyme_scheme", "xinyun");
  g::PoemGrader grader{good};
  EXPECT_TRUE(good.unread_keys().empty());
  EXPECT_THROW(grader.grade(GradeInput{"写诗", "白日\xff", std::nullopt}), std::invalid_argument);
  const auto empty = grader.grade(GradeInput{"写一首五言绝句", "", std::nullopt});
  EXPECT_EQ(empty.score, 0.0);  // an empty response scores the lowest score on every dimension
  for (const auto& d : empty.dimensions) EXPECT_EQ(d.second, 0.0) << d.first;
}

TEST(PoemGrader, StrictModeRejectsExtraText) {
  g::PoemGraderOptions options;
  options.strict = true;
  const g::PoemGrader strict{options};
  const g::PoemGrader lenient{g::PoemGraderOptions{}};
  const std::string poem = "《登鹳雀楼》\n白日依山尽，黄河入海流。\n欲穷千里目，更上一层楼。";
  const GradeInput clean{"写一首五言绝句", poem, std::nullopt};
  EXPECT_EQ(strict.grade(clean).score, lenient.grade(clean).score);
  EXPECT_GT(strict.grade(clean).score, 0.5);
  const GradeInput chatty{"写一首五言绝句", "好的，以下是一首五言绝句：\n" + poem + "\n希望你喜欢！", std::nullopt};
  EXPECT_EQ(lenient.grade(chatty).score, lenient.grade(clean).score);  // not counted as rows
  const auto r = strict.grade(chatty);
  EXPECT_EQ(r.score, 0.0);
  EXPECT_NE(r.reason.find("strict"), std::string::npos) << r.reason;
  const GradeInput signed_poem{"写一首五言绝句", poem + "\n——王之涣", std::nullopt};
  EXPECT_EQ(strict.grade(signed_poem).score, 0.0);
  prefengine::PluginOptions yaml("graders.poem");
  yaml.set_scalar("strict", "true");
  EXPECT_EQ(g::PoemGrader{yaml}.grade(chatty).score, 0.0);
}

TEST(PoemGrader, ConcurrentGradingGivesTheSameResults) {
  // One grader shared by threads, as a PPO reward would be: grade() is const and the readings
  // table is read-only after construction.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"写一首五言绝句", kDengGuanque},
      {"写一首五言绝句", "白日依山尽，黄河入海流。欲穷千里目，更上一层台。"},
      {"写一首七言律诗", kWuti}};
  std::vector<double> expected;
  for (const auto& [prompt, poem] : cases) expected.push_back(grade(prompt, poem).score);
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        for (size_t i = 0; i < cases.size(); ++i) {
          if (grade(cases[i].first, cases[i].second).score != expected[i]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(expected, (std::vector<double>{1.0, 0.9, 1.0}));
  for (int m : mismatches) EXPECT_EQ(m, 0);
}
