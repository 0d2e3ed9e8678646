// Reading slogan prompts (limits, keywords) and counting slogans. Expected values worked out by
// hand. Links no plugin API (fast to start).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "slogan/slogan_request.h"

namespace g = prefengine::plugins::graders;

TEST(SloganRequest, ReadsChineseLimits) {
  EXPECT_EQ(g::read_slogan_request("为环保产品写一条不超过10个字的广告语，必须包含“绿色”。").limit, 10u);
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

// One test per documented phrasing (slogan_request.h).
TEST(SloganRequest, KeywordLengthIsNotTheLimit) {
  const auto r = g::read_slogan_request("为环保袋写一句广告语，需出现「环保」二字。");
  EXPECT_FALSE(r.limit);
  EXPECT_EQ(r.keywords, (std::vector<std::string>{"环保"}));
  EXPECT_EQ(g::read_slogan_request("要求出现“分类”两个字，限10字。").limit, 10u);
}

TEST(SloganRequest, RangesSetBothEnds) {
  for (const char* prompt : {"写一句8到12个字的标语", "写一句8至12字的标语", "写一句8-12字的标语",
                             "写一句8～12个字的标语", "a slogan of 8 to 12 words",
                             "a slogan between 8 and 12 words"}) {
    const auto r = g::read_slogan_request(prompt);
    EXPECT_EQ(r.minimum, 8u) << prompt;
    EXPECT_EQ(r.limit, 12u) << prompt;
  }
}

TEST(SloganRequest, MinimumsAlone) {
  for (const char* prompt : {"至少10个字", "不少于10个字", "最少10字", "10个字以上",
                             "at least 10 words", "no fewer than 10 words"}) {
    const auto r = g::read_slogan_request(prompt);
    EXPECT_EQ(r.minimum, 10u) << prompt;
    EXPECT_FALSE(r.limit) << prompt;
  }
  const auto both = g::read_slogan_request("至少6个字，不超过10个字");
  EXPECT_EQ(both.minimum, 6u);
  EXPECT_EQ(both.limit, 10u);
}

TEST(SloganRequest, AboutNIsWithinAFifth) {
  for (const char* prompt : {"10字左右", "约10个字", "about 10 words", "around 10 words"}) {
    const auto r = g::read_slogan_request(prompt);
    EXPECT_EQ(r.minimum, 8u) << prompt;
    EXPECT_EQ(r.limit, 12u) << prompt;
  }
}
