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

TEST(SloganRequest, ReadsChineseLimits) {
  EXPECT_EQ(g::read_slogan_request(kGreenPrompt).limit, 10u);
  EXPECT_EQ(g::read_slogan_request("写一句十五字以内的口号").limit, 15u);
  EXPECT_EQ(g::read_slogan_request("口号二十个字以内").limit, 20u);
  EXPECT_EQ(g::read_slogan_request("广告语少于8个字").limit, 7u);
  EXPECT_EQ(g::read_slogan_request("限12字").limit, 12u);
  EXPECT_EQ(g::read_slogan_request("写一句口号，字数不超过10").limit, 10u);
  EXPECT_FALSE(g::read_slogan_request("为2024年的春节写一句口号").limit);
}

TEST(SloganRequest, ReadsEnglishLimits) {
  EXPECT_EQ(g::read_slogan_request("Write a slogan within 8 words.").limit, 8u);
  EXPECT_EQ(g::read_slogan_request("At most 6 words, please").limit, 6u);
  EXPECT_EQ(g::read_slogan_request("in fewer than 5 words").limit, 4u);
  EXPECT_EQ(g::read_slogan_request("a 5-word slogan").limit, 5u);
  EXPECT_EQ(g::read_slogan_request("Write a slogan of 7 words for 3 products").limit, 7u);
  EXPECT_FALSE(g::read_slogan_request("Write a slogan for our 3 shops").limit);
}

TEST(SloganRequest, ReadsQuotedKeywords) {
  EXPECT_EQ(g::read_slogan_request("必须包含“绿色”和“健康”两个词").keywords,
            (std::vector<std::string>{"绿色", "健康"}));
  EXPECT_EQ(g::read_slogan_request("Include \"fresh\" in it.").keywords,
            (std::vector<std::string>{"fresh"}));
  // A quoted theme is not a required keyword.
  EXPECT_TRUE(g::read_slogan_request("以“春天”为主题写口号").keywords.empty());
}

TEST(SloganLength, CountsHanCharactersAndEnglishWords) {
  EXPECT_EQ(g::slogan_length("绿色生活，从我做起"), 8u);
  EXPECT_EQ(g::slogan_length("Just do it!"), 3u);
  EXPECT_EQ(g::slogan_length("iPhone 15，新体验"), 5u);
  EXPECT_EQ(g::slogan_length("Don't stop-believing"), 2u);
  EXPECT_EQ(g::slogan_length(""), 0u);
}

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
