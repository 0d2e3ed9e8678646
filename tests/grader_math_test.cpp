// The math grader: the 1-5 rubric and its options. Expected scores worked out by hand.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "math/math_grader.h"

namespace g = prefengine::plugins::graders;
using prefengine::GradeInput;

namespace {
GradeInput math_input(std::string response, std::string reference = "18") {
  return GradeInput{"What is 15 + 3?", std::move(response), std::move(reference)};
}
}  // namespace

TEST(MathGrader, RubricFivePointsForCorrectAnswerAndProcess) {
  g::MathGrader grader{g::MathGraderOptions{}};
  const auto r = grader.grade(math_input("We add: 15 + 3 = 18, so the answer is \\boxed{18}."));
  EXPECT_EQ(r.score, 5);
  ASSERT_EQ(r.dimensions.size(), 4u);
  EXPECT_EQ(r.dimensions[0], std::make_pair(std::string("answer"), 1.0));
  EXPECT_EQ(r.dimensions[2], std::make_pair(std::string("arithmetic"), 1.0));
}

TEST(MathGrader, RubricFourPointsWithoutWorkingOrWhenVerbose) {
  g::MathGrader grader{g::MathGraderOptions{}};
  EXPECT_EQ(grader.grade(math_input("\\boxed{18}")).score, 4);
  g::MathGraderOptions verbose;
  verbose.verbose_chars = 100;
  std::string text = "We add: 15 + 3 = 18. ";
  for (int i = 0; i < 10; ++i) text += "Let us double check this again carefully. ";
  text += "\\boxed{18}";
  const auto r = g::MathGrader{verbose}.grade(math_input(text));
  EXPECT_EQ(r.score, 4);
  EXPECT_EQ(r.dimensions[3].second, 0.0);
}

TEST(MathGrader, RubricThreePoints) {
  g::MathGrader grader{g::MathGraderOptions{}};
  // Correct answer, but a wrong step on the way.
  EXPECT_EQ(grader.grade(math_input("15 + 3 = 19, no wait, \\boxed{18}")).score, 3);
  // Wrong answer, the steps that can be checked are right (misread the problem).
  EXPECT_EQ(grader.grade(math_input("15 + 4 = 19, so \\boxed{19}")).score, 3);
}

TEST(MathGrader, RubricTwoAndOnePoints) {
  g::MathGrader grader{g::MathGraderOptions{}};
  // One of three steps right: mostly wrong process.
  EXPECT_EQ(grader.grade(math_input("2 + 2 = 4, 15 + 3 = 17, 17 * 2 = 35, \\boxed{35}")).score, 2);
  // Every checked step wrong.
  EXPECT_EQ(grader.grade(math_input("15 + 3 = 17 so \\boxed{17}")).score, 1);
  // A bare wrong answer.
  EXPECT_EQ(grader.grade(math_input("\\boxed{17}")).score, 1);
  // No answer at all.
  EXPECT_EQ(grader.grade(math_input("I cannot solve this.")).score, 1);
}

TEST(MathGrader, ReferenceMayBeAWholeSolution) {
  g::MathGrader grader{g::MathGraderOptions{}};
  EXPECT_EQ(grader.grade(math_input("\\boxed{\\frac{1}{2}}", "So it is \\boxed{0.5}.")).score, 4);
}

TEST(MathGrader, BareReferencesAreTakenWhole) {
  g::MathGrader grader{g::MathGraderOptions{}};
  // Not cut down to their last number ("2").
  EXPECT_EQ(grader.grade(math_input("\\boxed{\\dfrac12}", "\\frac{1}{2}")).score, 4);
  EXPECT_EQ(grader.grade(math_input("\\boxed{2}", "\\frac{1}{2}")).score, 1);
  EXPECT_EQ(grader.grade(math_input("\\boxed{(1,2)}", "(1, 2)")).score, 4);
  EXPECT_EQ(grader.grade(math_input("\\boxed{(2,1)}", "(1, 2)")).score, 1);
}

TEST(MathGrader, RejectsMissingReferenceAndBadOptions) {
  g::MathGrader grader{g::MathGraderOptions{}};
  EXPECT_THROW(grader.grade(GradeInput{"q", "\\boxed{1}", std::nullopt}), std::invalid_argument);
  EXPECT_THROW(grader.grade(GradeInput{"q", "\\boxed{1}", std::string("  ")}), std::invalid_argument);
  g::MathGraderOptions bad;
  bad.tolerance = -1;
  EXPECT_THROW(g::MathGrader{bad}, std::invalid_argument);
  prefengine::PluginOptions options("graders.math");
  options.set_scalar("tolerance", "abc");
  EXPECT_THROW(g::MathGrader{options}, std::invalid_argument);
  prefengine::PluginOptions negative("graders.math");
  negative.set_scalar("verbose_chars", "-3");
  EXPECT_THROW(g::MathGrader{negative}, std::invalid_argument);
}

TEST(MathGrader, ReadsItsOptions) {
  prefengine::PluginOptions options("graders.math");
  options.set_scalar("tolerance", "0.001");
  options.set_scalar("verbose_chars", "0");
  options.set_scalar("min_working_tokens", "3");
  g::MathGrader grader{options};
  EXPECT_TRUE(options.unread_keys().empty());
  EXPECT_EQ(grader.grade(math_input("\\boxed{3.14}", "\\pi")).dimensions[0].second, 1.0);
}

TEST(MathGrader, HedgedAndEmptyResponsesScoreTheLowest) {
  g::MathGrader grader{g::MathGraderOptions{}};
  const auto hedge = grader.grade(math_input("15 + 3 = 18, so it is $\\boxed{18}$ or $\\boxed{19}$."));
  EXPECT_EQ(hedge.score, 1);
  EXPECT_NE(hedge.reason.find("several different final answers"), std::string::npos) << hedge.reason;
  const auto empty = grader.grade(math_input("  \n "));
  EXPECT_EQ(empty.score, 1);
  EXPECT_NE(empty.reason.find("empty response"), std::string::npos) << empty.reason;
  // Both roots asked for, joined by "or": the list the reference names.
  EXPECT_EQ(grader.grade(math_input("\\boxed{x=2 \\text{ or } x=3}", "2, 3")).score, 4);
}

TEST(MathGrader, SymbolicBudgetOptions) {
  prefengine::PluginOptions yaml("graders.math");
  yaml.set_scalar("symbolic_max_chars", "100");
  yaml.set_scalar("symbolic_max_ms", "20");
  g::MathGrader grader{yaml};
  EXPECT_TRUE(yaml.unread_keys().empty());
  EXPECT_EQ(grader.grade(math_input("\\boxed{(x+1)^2}", "x^2+2x+1")).score, 4);
  g::MathGraderOptions no_chars;
  no_chars.symbolic_max_chars = 0;
  EXPECT_THROW(g::MathGrader{no_chars}, std::invalid_argument);
  g::MathGraderOptions no_time;
  no_time.symbolic_max_ms = 0;
  EXPECT_THROW(g::MathGrader{no_time}, std::invalid_argument);
  g::MathGraderOptions too_long;
  too_long.symbolic_max_ms = 20000;
  EXPECT_THROW(g::MathGrader{too_long}, std::invalid_argument);
}
