// The slogan grader: the prompt's limit and keywords, counting, and the four dimensions.
// Expected values worked out by hand.
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include "slogan/slogan_grader.h"

namespace g = prefengine::plugins::graders;
using prefengine::GradeInput;

namespace {

std::map<std::string, double> grade(const std::string& prompt, const std::string& slogan,
                                    const g::SloganGraderOptions& options = {}) {
  const auto r = g::SloganGrader{options}.grade(GradeInput{prompt, slogan, std::nullopt});
  return std::map<std::string, double>(r.dimensions.begin(), r.dimensions.end());
}

const char* kGreenPrompt = "为环保产品写一条不超过10个字的广告语，必须包含“绿色”。";

}  // namespace

TEST(SloganGrader, GoodSloganPassesEverything) {
  const auto r = g::SloganGrader{g::SloganGraderOptions{}}.grade(
      GradeInput{kGreenPrompt, "绿色生活，从我做起", std::nullopt});
  EXPECT_EQ(r.score, 1.0);
  EXPECT_EQ(g::SloganGrader{g::SloganGraderOptions{}}.dimensions(),
            (std::vector<std::string>{"word_count", "keywords", "banned_words", "repetition"}));
}

TEST(SloganGrader, OverTheLimitScalesDown) {
  // 14 characters against a limit of 10: 1 - 4/10.
  auto d = grade(kGreenPrompt, "绿色生活从我做起让地球更美丽");
  EXPECT_DOUBLE_EQ(d["word_count"], 0.6);
  EXPECT_EQ(d["keywords"], 1.0);
  // 21 or more against 10: 0.
  EXPECT_EQ(grade(kGreenPrompt, "绿色生活从我做起让地球更美丽让天空更蓝让水更清")["word_count"], 0.0);
  EXPECT_EQ(grade(kGreenPrompt, "")["word_count"], 0.0);
}

TEST(SloganGrader, MissingKeyword) {
  auto d = grade(kGreenPrompt, "低碳生活，从我做起");
  EXPECT_EQ(d["keywords"], 0.0);
  EXPECT_EQ(d["word_count"], 1.0);
  EXPECT_EQ(grade("必须包含“绿色”和“健康”", "绿色出行")["keywords"], 0.5);
}

TEST(SloganGrader, BannedSuperlatives) {
  EXPECT_EQ(grade(kGreenPrompt, "最佳绿色选择")["banned_words"], 0.0);
  EXPECT_EQ(grade(kGreenPrompt, "绿色家电销量第一")["banned_words"], 0.0);
  EXPECT_EQ(grade("Write a slogan", "The no.1 choice")["banned_words"], 0.0);
  EXPECT_EQ(grade(kGreenPrompt, "绿色生活，从我做起")["banned_words"], 1.0);
}

TEST(SloganGrader, RepeatedPhrase) {
  auto d = grade(kGreenPrompt, "绿色生活，绿色未来");
  EXPECT_EQ(d["repetition"], 0.0);
  EXPECT_EQ(d["keywords"], 1.0);
  EXPECT_EQ(grade("Write a slogan", "Fresh and fresh and tasty")["repetition"], 0.0);
  // One repeated word is not a repeated phrase of two.
  EXPECT_EQ(grade("Write a slogan", "Fresh bread, fresh milk")["repetition"], 1.0);
}

TEST(SloganGrader, EnglishPromptAndWordBoundaries) {
  const std::string prompt = "Write a slogan within 6 words that must include \"fresh\".";
  auto ok = grade(prompt, "Fresh taste, every single day");
  EXPECT_EQ(ok["word_count"], 1.0);
  EXPECT_EQ(ok["keywords"], 1.0);
  EXPECT_EQ(grade(prompt, "Refreshing drinks for you")["keywords"], 0.0);
  EXPECT_DOUBLE_EQ(grade(prompt, "Fresh taste every single day for you")["word_count"],
                   1.0 - 1.0 / 6.0);
}

TEST(SloganGrader, OptionsReplaceDefaultsAndAreValidated) {
  prefengine::PluginOptions options("graders.slogan");
  prefengine::OptionEntry banned;
  banned.is_list = true;
  banned.list = {"cheap"};
  options.set("banned_words", banned);
  options.set_scalar("required_keywords", "Acme");
  g::SloganGrader grader{options};
  EXPECT_TRUE(options.unread_keys().empty());
  const auto r = grader.grade(GradeInput{"Write a slogan", "Cheap and best", std::nullopt});
  std::map<std::string, double> d(r.dimensions.begin(), r.dimensions.end());
  EXPECT_EQ(d["banned_words"], 0.0);
  EXPECT_EQ(d["keywords"], 0.0);
  // The custom list replaces the default one: 最佳 is allowed now.
  const auto r2 = grader.grade(GradeInput{"口号", "Acme 最佳", std::nullopt});
  EXPECT_EQ(r2.dimensions[2].second, 1.0);

  g::SloganGraderOptions bad;
  bad.banned_words = {" "};
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  bad = g::SloganGraderOptions{};
  bad.min_repeat_chars = 0;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
  prefengine::PluginOptions zero("graders.slogan");
  zero.set_scalar("min_repeat_words", "0");
  EXPECT_THROW(g::SloganGrader{zero}, std::invalid_argument);
  EXPECT_THROW(g::SloganGrader{g::SloganGraderOptions{}}.grade(
                   GradeInput{"口号", "abc\xc3", std::nullopt}),
               std::invalid_argument);
}

TEST(SloganGrader, MinimumLengthIsEnforced) {
  const g::SloganGrader grader{g::SloganGraderOptions{}};
  const auto short_one = grader.grade(GradeInput{"写一句8到12个字的安全标语", "注意安全", std::nullopt});
  EXPECT_DOUBLE_EQ(short_one.dimensions[0].second, 0.5);  // 4 of at least 8: 1 - 4/8
  EXPECT_NE(short_one.reason.find("< minimum 8"), std::string::npos) << short_one.reason;
  const auto fine = grader.grade(GradeInput{"写一句8到12个字的安全标语", "安全出行，平安到家", std::nullopt});
  EXPECT_DOUBLE_EQ(fine.dimensions[0].second, 1.0);
}

TEST(SloganGrader, EmptyResponseScoresZero) {
  const g::SloganGrader grader{g::SloganGraderOptions{}};
  const auto r = grader.grade(GradeInput{"写一条口号", "  ", std::nullopt});
  EXPECT_EQ(r.score, 0.0);
  for (const auto& d : r.dimensions) EXPECT_EQ(d.second, 0.0) << d.first;
}
