// Math answer parsing: extraction, normalisation, evaluation, equivalence and the arithmetic
// check. Every expected value below was worked out by hand. Links no plugin API (fast to start).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "math/answer_equivalence.h"
#include "math/answer_extractor.h"
#include "math/answer_normalizer.h"
#include "math/arithmetic_check.h"
#include "math/math_expression.h"

namespace g = prefengine::plugins::graders;

TEST(AnswerExtractor, BoxedWithNestedBraces) {
  EXPECT_EQ(g::extract_boxed("so \\boxed{\\frac{1}{2}}."), "\\frac{1}{2}");
  EXPECT_EQ(g::extract_boxed("\\boxed{a^{2}+b_{1}}"), "a^{2}+b_{1}");
  EXPECT_EQ(g::extract_boxed("\\boxed{\\{1,2\\}}"), "\\{1,2\\}");
}

TEST(AnswerExtractor, LastBoxWins) {
  EXPECT_EQ(g::extract_boxed("first \\boxed{3}, then \\boxed{4}"), "4");
  EXPECT_EQ(g::extract_boxed("\\boxed{3} but really \\fbox{7}"), "7");
}

TEST(AnswerExtractor, UnbracedAndUnclosedBoxes) {
  EXPECT_EQ(g::extract_boxed("$\\boxed 5$"), "5");
  EXPECT_EQ(g::extract_boxed("\\boxed{12"), std::nullopt);
  EXPECT_EQ(g::extract_boxed("no box here"), std::nullopt);
  EXPECT_EQ(g::extract_boxed("\\boxedsomething{3}"), std::nullopt);
}

TEST(AnswerExtractor, AnswerPhrases) {
  EXPECT_EQ(g::extract_final_answer("Adding up, the answer is 42. Done."), "42");
  EXPECT_EQ(g::extract_final_answer(
                "Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct."),
            "\\frac{3}{4}");
  EXPECT_EQ(g::extract_final_answer("Work...\nFinal Answer: x = 7\nThanks"), "x = 7");
  EXPECT_EQ(g::extract_final_answer("所以答案是 12。"), "12");
  EXPECT_EQ(g::extract_final_answer("She has 3 + 4 = 7 left.\n#### 7"), "7");
  EXPECT_EQ(g::extract_marked_answer("Natalia sold 48/2 = 24 clips.\n#### 72"), "72");
  EXPECT_EQ(g::extract_final_answer("Adding them up.\n**Answer:** 5\n"), "5");
  EXPECT_EQ(g::extract_final_answer("**The answer is 3/4.**"), "3/4");
}

TEST(AnswerExtractor, FallsBackToTheLastNumber) {
  EXPECT_EQ(g::extract_final_answer("3 apples and 15 more make 18 in all"), "18");
  EXPECT_EQ(g::extract_final_answer("it costs 1,234 dollars"), "1,234");
  EXPECT_EQ(g::extract_final_answer("the ratio is 3/4, see"), "3/4");
  EXPECT_EQ(g::extract_final_answer("a drop of -2.5 degrees"), "-2.5");
  EXPECT_EQ(g::extract_final_answer("so the probability is $\\frac{1}{12}$."), "\\frac{1}{12}");
  EXPECT_EQ(g::extract_final_answer("it is -\\dfrac{3}{4}"), "-\\dfrac{3}{4}");
  EXPECT_EQ(g::extract_final_answer("\\frac{1}{2} of 6 is 3"), "3");
  EXPECT_EQ(g::extract_final_answer("I do not know."), std::nullopt);
  EXPECT_EQ(g::extract_final_answer(""), std::nullopt);
}

TEST(AnswerExtractor, MarkedAnswersOnly) {
  EXPECT_EQ(g::extract_marked_answer("\\boxed{(1, 2)}"), "(1, 2)");
  EXPECT_EQ(g::extract_marked_answer("The answer is 7."), "7");
  EXPECT_EQ(g::extract_marked_answer("(1, 2)"), std::nullopt);
  EXPECT_EQ(g::extract_marked_answer("\\frac{1}{2}"), std::nullopt);
}

TEST(AnswerNormalizer, FractionsAndShorthands) {
  EXPECT_EQ(g::normalize_answer("\\dfrac{1}{2}"), "\\frac{1}{2}");
  EXPECT_EQ(g::normalize_answer("\\tfrac12"), "\\frac{1}{2}");
  EXPECT_EQ(g::normalize_answer("\\sqrt3"), "\\sqrt{3}");
  EXPECT_EQ(g::normalize_answer("3/4"), "\\frac{3}{4}");
  EXPECT_EQ(g::normalize_answer("\\boxed{3}"), "3");
}

TEST(AnswerNormalizer, DelimitersUnitsAndSigns) {
  EXPECT_EQ(g::normalize_answer("\\left( 1, 2 \\right)"), "(1,2)");
  EXPECT_EQ(g::normalize_answer("10\\text{ units}"), "10");
  EXPECT_EQ(g::normalize_answer("5 square feet"), "5");
  EXPECT_EQ(g::normalize_answer("12 \\text{cm}^2"), "12");
  EXPECT_EQ(g::normalize_answer("90^\\circ"), "90");
  EXPECT_EQ(g::normalize_answer("90°"), "90");
  EXPECT_EQ(g::normalize_answer("50\\%"), "50");
  EXPECT_EQ(g::normalize_answer("\\$100"), "100");
  EXPECT_EQ(g::normalize_answer("$7$"), "7");
  EXPECT_EQ(g::normalize_answer("\\text{(B)}"), "(B)");
}

TEST(AnswerNormalizer, NumbersAndAssignments) {
  EXPECT_EQ(g::normalize_answer("x = 5"), "5");
  EXPECT_EQ(g::normalize_answer(".5"), "0.5");
  EXPECT_EQ(g::normalize_answer("-.5"), "-0.5");
  EXPECT_EQ(g::normalize_answer("007"), "7");
  EXPECT_EQ(g::normalize_answer("1,000,000"), "1000000");
  EXPECT_EQ(g::normalize_answer("8."), "8");
  EXPECT_EQ(g::normalize_answer("x \\in [1, 2]"), "[1,2]");
  EXPECT_EQ(g::normalize_answer("x = 2, y = 3"), "2,3");
  EXPECT_EQ(g::normalize_answer("f(x) = 2x+1"), "2x+1");
  EXPECT_EQ(g::normalize_answer("x = 1,000"), "1000");
}

TEST(MathExpression, ExactRationalArithmetic) {
  const auto v = g::evaluate_expression("\\frac{1}{3}+\\frac{1}{6}");
  ASSERT_TRUE(v && v->exact);
  EXPECT_EQ(v->exact->num, 1);
  EXPECT_EQ(v->exact->den, 2);
  const auto p = g::evaluate_expression("2^{10}");
  ASSERT_TRUE(p && p->exact);
  EXPECT_EQ(p->exact->num, 1024);
  const auto r = g::evaluate_expression("\\sqrt{\\frac{9}{4}}");
  ASSERT_TRUE(r && r->exact);
  EXPECT_EQ(r->exact->num, 3);
  EXPECT_EQ(r->exact->den, 2);
}

TEST(MathExpression, InexactValues) {
  const auto v = g::evaluate_expression("2\\sqrt{2}");
  ASSERT_TRUE(v);
  EXPECT_FALSE(v->exact);
  EXPECT_NEAR(v->approx, 2.8284271247461903, 1e-12);
  const auto pi = g::evaluate_expression("\\frac{\\pi}{2}");
  ASSERT_TRUE(pi);
  EXPECT_NEAR(pi->approx, 1.5707963267948966, 1e-12);
}

TEST(MathExpression, RejectsWhatItCannotRead) {
  EXPECT_FALSE(g::evaluate_expression(""));
  EXPECT_FALSE(g::evaluate_expression("1+"));
  EXPECT_FALSE(g::evaluate_expression("(1+2"));
  EXPECT_FALSE(g::evaluate_expression("\\frac{1}"));
  EXPECT_FALSE(g::evaluate_expression(std::string(5000, '(')));
}

TEST(AnswerEquivalence, FractionsAndDecimals) {
  EXPECT_TRUE(g::answers_equivalent("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(g::answers_equivalent("1/2", "\\dfrac12"));
  EXPECT_TRUE(g::answers_equivalent("\\frac{2}{4}", "\\frac{1}{2}"));
  EXPECT_TRUE(g::answers_equivalent("3", "3.0"));
  EXPECT_TRUE(g::answers_equivalent(".5", "0.50"));
  EXPECT_FALSE(g::answers_equivalent("0.333", "\\frac13"));
  EXPECT_FALSE(g::answers_equivalent("\\frac{1}{2}", "\\frac{1}{3}"));
}

TEST(AnswerEquivalence, RootsPiPowersAndScientificNotation) {
  EXPECT_TRUE(g::answers_equivalent("2\\sqrt{2}", "\\sqrt{8}"));
  EXPECT_TRUE(g::answers_equivalent("\\frac{\\sqrt{3}}{2}", "0.8660254037844386"));
  EXPECT_TRUE(g::answers_equivalent("\\pi", "3.14159265358979"));
  EXPECT_FALSE(g::answers_equivalent("3.14", "\\pi"));
  EXPECT_TRUE(g::answers_equivalent("2^{10}", "1024"));
  EXPECT_TRUE(g::answers_equivalent("1.5\\times10^{3}", "1500"));
  EXPECT_TRUE(g::answers_equivalent("1.5e3", "1500"));
  EXPECT_TRUE(g::answers_equivalent("2.5 \\cdot 10^{-2}", "0.025"));
}

TEST(AnswerEquivalence, MixedNumbers) {
  EXPECT_TRUE(g::answers_equivalent("2\\frac{1}{2}", "2.5"));
  EXPECT_TRUE(g::answers_equivalent("-2\\frac{1}{2}", "-\\frac{5}{2}"));
  // Not a mixed number: a product with a fraction of symbols.
  EXPECT_TRUE(g::answers_equivalent("2\\frac{\\pi}{3}", "\\frac{2\\pi}{3}"));
}

TEST(AnswerEquivalence, HugeAnswersAreComparedAsText) {
  const std::string huge(20000, '1');
  EXPECT_TRUE(g::answers_equivalent(huge, huge));
  EXPECT_FALSE(g::answers_equivalent(huge, huge + "1"));
}

TEST(AnswerEquivalence, TupleOrderMatters) {
  EXPECT_TRUE(g::answers_equivalent("(1,2)", "\\left(1, 2\\right)"));
  EXPECT_FALSE(g::answers_equivalent("(1,2)", "(2,1)"));
  EXPECT_TRUE(g::answers_equivalent("(\\frac{1}{2}, 3)", "(0.5, 3)"));
  EXPECT_FALSE(g::answers_equivalent("(1,2)", "(1,2,3)"));
  // Not a tuple: two bracketed factors.
  EXPECT_TRUE(g::answers_equivalent("(1+2)(3+4)", "21"));
}

TEST(AnswerEquivalence, IntervalsNeedTheSameBrackets) {
  EXPECT_TRUE(g::answers_equivalent("[0,1)", "[0, 1)"));
  EXPECT_FALSE(g::answers_equivalent("[0,1)", "[0,1]"));
  EXPECT_FALSE(g::answers_equivalent("(1,2)", "[1,2]"));
  EXPECT_TRUE(g::answers_equivalent("(-\\infty, 3]", "(-\\infty,3]"));
  EXPECT_TRUE(g::answers_equivalent("(-\\infty,0)\\cup(1,\\infty)", "(1,\\infty)\\cup(-\\infty,0)"));
}

TEST(AnswerEquivalence, SetsAndListsIgnoreOrder) {
  EXPECT_TRUE(g::answers_equivalent("\\{1,2,3\\}", "\\{3,2,1\\}"));
  EXPECT_TRUE(g::answers_equivalent("-2, 3", "3,-2"));
  EXPECT_FALSE(g::answers_equivalent("\\{1,2\\}", "\\{1,2,3\\}"));
  EXPECT_FALSE(g::answers_equivalent("\\{1,2\\}", "(1,2)"));
}

TEST(AnswerEquivalence, UnitsSignsAndAssignments) {
  EXPECT_TRUE(g::answers_equivalent("10 units", "10"));
  EXPECT_FALSE(g::answers_equivalent("10 units", "100 units"));
  EXPECT_FALSE(g::answers_equivalent("10", "100"));
  EXPECT_TRUE(g::answers_equivalent("x=5", "5"));
  EXPECT_TRUE(g::answers_equivalent("x = 2, y = 3", "3, 2"));
  EXPECT_TRUE(g::answers_equivalent("B", "\\text{(B)}"));
  EXPECT_TRUE(g::answers_equivalent("50\\%", "50"));
  EXPECT_TRUE(g::answers_equivalent("90^\\circ", "90"));
  EXPECT_TRUE(g::answers_equivalent("\\$1,000", "1000"));
  EXPECT_TRUE(g::answers_equivalent("\\text{(B)}", "(B)"));
}

TEST(AnswerEquivalence, ExpressionsInVariables) {
  EXPECT_TRUE(g::answers_equivalent("2x+1", "1+2x"));
  EXPECT_TRUE(g::answers_equivalent("y = x^2 - 1", "(x-1)(x+1)"));
  EXPECT_FALSE(g::answers_equivalent("2x+1", "2x-1"));
  EXPECT_FALSE(g::answers_equivalent("2x", "2y"));
}

TEST(AnswerEquivalence, RepeatingDecimalsPlusMinusAndMinervaSubstitutions) {
  EXPECT_EQ(g::normalize_answer("0.\\overline{3}"), "\\frac{3}{9}");
  EXPECT_TRUE(g::answers_equivalent("0.\\overline{3}", "\\frac13"));
  EXPECT_TRUE(g::answers_equivalent("0.1\\overline{6}", "\\frac{1}{6}"));
  // 1.2363636... = 1.2 + 0.036/0.99 = 68/55.
  EXPECT_TRUE(g::answers_equivalent("1.2\\overline{36}", "\\frac{68}{55}"));
  EXPECT_FALSE(g::answers_equivalent("0.\\overline{3}", "0.3"));
  // Too many digits for exact arithmetic: the command is dropped, nothing throws.
  EXPECT_EQ(g::normalize_answer("123456789.123456\\overline{123456789}"), "123456789.123456123456789");
  EXPECT_TRUE(g::answers_equivalent("1\\pm\\sqrt{2}", "1-\\sqrt{2}, 1+\\sqrt{2}"));
  EXPECT_FALSE(g::answers_equivalent("1\\pm\\sqrt{2}", "1+\\sqrt{2}"));
  EXPECT_TRUE(g::answers_equivalent("3 \\text{ and } 5", "3, 5"));
  EXPECT_TRUE(g::answers_equivalent("5^{\\mathrm{th}}", "5"));
  EXPECT_TRUE(g::answers_equivalent("x \\leq 3", "x\\le3"));
}

TEST(AnswerEquivalence, WordsAreTextNotProducts) {
  EXPECT_TRUE(g::answers_equivalent("\\text{Monday}", "Monday"));
  EXPECT_FALSE(g::answers_equivalent("\\text{no}", "\\text{on}"));
  EXPECT_FALSE(g::answers_equivalent("east", "seat"));
  EXPECT_TRUE(g::answers_equivalent("xy", "xy"));
  EXPECT_TRUE(g::answers_equivalent("2xy", "2yx"));
  EXPECT_TRUE(g::answers_equivalent("1{,}000", "1000"));
  EXPECT_TRUE(g::answers_equivalent("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"));
  EXPECT_TRUE(g::answers_equivalent("3\\sqrt{2}", "\\sqrt{18}"));
}

TEST(AnswerEquivalence, ToleranceIsConfigurable) {
  EXPECT_FALSE(g::answers_equivalent("3.14", "\\pi"));
  g::EquivalenceOptions loose;
  loose.tolerance = 1e-3;
  EXPECT_TRUE(g::answers_equivalent("3.14", "\\pi", loose));
  g::EquivalenceOptions negative;
  negative.tolerance = -1;
  EXPECT_THROW(negative.validate(), std::invalid_argument);
}

TEST(ArithmeticCheck, FindsAndChecksEquations) {
  const auto r = g::check_arithmetic(
      "First 2 \\times 3 = 6, then 7 / 2 = 3.5 and 3 x 4 = 12; also 1/3 = 0.33. "
      "But 5 + 5 = 11 and $\\frac{1}{2} + 1 = 1.5$. Set x + 2 = 5. 2^{10} = 1024.");
  ASSERT_EQ(r.steps.size(), 7u);  // "x + 2 = 5" has a variable: not checked
  EXPECT_EQ(r.correct(), 6u);
  EXPECT_FALSE(r.steps[4].correct);  // 5 + 5 = 11
}

TEST(ArithmeticCheck, RoundingAndSeparators) {
  EXPECT_EQ(g::check_arithmetic("1/3 = 0.34").correct(), 0u);
  EXPECT_EQ(g::check_arithmetic("1,000 + 1 = 1,001").correct(), 1u);
  EXPECT_TRUE(g::check_arithmetic("the year 2024 = now").steps.empty());
}

TEST(ArithmeticCheck, SkipsWhatItCannotEvaluate) {
  // \binom{6}{2} = 15 is right but is no product; a_1 + 2 has a subscript; x+2 a variable.
  EXPECT_TRUE(g::check_arithmetic("$\\binom{6}{2} = 15$, $a_1 + 2 = 5$, $x+2=5$, $3! + 1 = 7$").steps.empty());
  EXPECT_TRUE(g::check_arithmetic("1/2 + 1/3 = 5/6 and 3^2 + 4^2 = 5^2").steps.empty());
  // A space separates a word from the arithmetic.
  const auto r = g::check_arithmetic("We get 3 + 4 = 7, then x = 2 + 3 = 5.");
  ASSERT_EQ(r.steps.size(), 2u);
  EXPECT_EQ(r.correct(), 2u);
}

TEST(ArithmeticCheck, WorkingTokens) {
  EXPECT_EQ(g::working_tokens("We add 3 and 4. \\boxed{7}"), 5u);
  EXPECT_EQ(g::working_tokens("先算三加四"), 5u);
}
