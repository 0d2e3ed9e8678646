// Math answers compared by value (issue 16): big integers, matrices, factorials and binomials,
// equations in other forms, text case, GiNaC's symbolic comparison and its budget, and extraction
// that a hedging policy cannot game. Every expected value was worked out by hand.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "math/answer_equivalence.h"
#include "math/answer_extractor.h"
#include "math/answer_normalizer.h"
#include "math/math_expression.h"
#include "math/symbolic_equivalence.h"

namespace g = prefengine::plugins::graders;

TEST(MathVerify, BigIntegersAreExact) {
  // 20 digits, off by one: a relative tolerance would pass it.
  EXPECT_FALSE(g::answers_equivalent("12345678901234567891", "12345678901234567890"));
  EXPECT_TRUE(g::answers_equivalent("12345678901234567890", "12,345,678,901,234,567,890"));
  EXPECT_TRUE(g::answers_equivalent("2^{100}", "1267650600228229401496703205376"));
  EXPECT_FALSE(g::answers_equivalent("2^{100}", "1267650600228229401496703205377"));
  EXPECT_TRUE(g::answers_equivalent("\\frac{10^{30}}{4}", "250000000000000000000000000000"));
  EXPECT_FALSE(g::answers_equivalent("100000000000000000000.5", "100000000000000000000"));
  const auto v = g::evaluate_expression("123456789012345678901234");
  ASSERT_TRUE(v.has_value());
  EXPECT_TRUE(v->overflow);
  EXPECT_FALSE(v->exact.has_value());
}

TEST(MathVerify, FactorialsAndBinomials) {
  EXPECT_TRUE(g::answers_equivalent("5!", "120"));
  EXPECT_TRUE(g::answers_equivalent("\\binom{6}{3}", "20"));
  EXPECT_TRUE(g::answers_equivalent("\\dbinom{10}{2}", "45"));
  EXPECT_TRUE(g::answers_equivalent("\\frac{7!}{2!5!}", "21"));
  EXPECT_FALSE(g::answers_equivalent("5!", "100"));
  EXPECT_TRUE(g::answers_equivalent("25!", "15511210043330985984000000"));  // past 64 bits
  EXPECT_FALSE(g::answers_equivalent("25!", "15511210043330985984000001"));
  EXPECT_TRUE(g::answers_equivalent("\\binom{70}{35}", "112186277816662845432"));
  EXPECT_EQ(g::evaluate_expression("\\binom{6}{7}")->exact->num, 0);
}

TEST(MathVerify, MatricesAndVectorsEntryByEntry) {
  EXPECT_TRUE(g::answers_equivalent("\\begin{pmatrix} 1 & \\frac12 \\\\ 3 & 4 \\end{pmatrix}",
                                    "\\begin{bmatrix}1&0.5\\\\3&4\\end{bmatrix}"));
  EXPECT_FALSE(g::answers_equivalent("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
                                     "\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}"));
  EXPECT_FALSE(g::answers_equivalent("\\begin{pmatrix}1&2\\end{pmatrix}",
                                     "\\begin{pmatrix}1\\\\2\\\\0\\end{pmatrix}"));
  // A column vector and the tuple of its entries.
  EXPECT_TRUE(g::answers_equivalent("\\begin{pmatrix} -1 \\\\ 2 \\\\ \\sqrt{4} \\end{pmatrix}", "(-1, 2, 2)"));
  EXPECT_FALSE(g::answers_equivalent("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "(-1, 2)"));
  // A trailing row break adds no row.
  EXPECT_TRUE(g::answers_equivalent("\\begin{pmatrix}1\\\\2\\\\\\end{pmatrix}",
                                    "\\begin{pmatrix}1\\\\2\\end{pmatrix}"));
}

TEST(MathVerify, EquationsOfALineInAnotherForm) {
  EXPECT_TRUE(g::answers_equivalent("y = 2x + 3", "2x - y + 3 = 0"));
  EXPECT_TRUE(g::answers_equivalent("x^2 + y^2 = 4", "2x^2 + 2y^2 - 8 = 0"));
  EXPECT_TRUE(g::answers_equivalent("y = -\\frac{1}{2}x + 1", "x + 2y = 2"));
  EXPECT_FALSE(g::answers_equivalent("y = 2x + 3", "2x - y - 3 = 0"));
  EXPECT_FALSE(g::answers_equivalent("y = 2x + 3", "y = 3x + 2"));
  // An assignment still compares by its value.
  EXPECT_TRUE(g::answers_equivalent("x = 5", "5"));
}

TEST(MathVerify, TextAnswersIgnoreCase) {
  EXPECT_TRUE(g::answers_equivalent("\\text{Yes}", "yes"));
  EXPECT_TRUE(g::answers_equivalent("\\textbf{NO}", "\\text{no}"));
  EXPECT_FALSE(g::answers_equivalent("\\text{yes}", "no"));
  EXPECT_FALSE(g::answers_equivalent("no", "on"));
}

TEST(MathVerify, SymbolicExpressionsByGinac) {
  EXPECT_EQ(g::symbolic_compare("(x+1)^2", "x^2+2x+1"), g::SymbolicVerdict::kEqual);
  EXPECT_EQ(g::symbolic_compare("\\frac{x^2-1}{x-1}", "x+1"), g::SymbolicVerdict::kEqual);
  EXPECT_EQ(g::symbolic_compare("(x+1)^2", "x^2+1"), g::SymbolicVerdict::kDifferent);
  // GiNaC leaves \sqrt{8} unsimplified: the numeric comparison decides such constants.
  EXPECT_EQ(g::symbolic_compare("2\\sqrt{2}", "\\sqrt{8}"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("2\\sqrt{2}", "\\sqrt{9}"), g::SymbolicVerdict::kDifferent);
  EXPECT_TRUE(g::answers_equivalent("2\\sqrt{2}", "\\sqrt{8}"));
  EXPECT_EQ(g::symbolic_compare("\\sin(x)^2+\\cos(x)^2", "1"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("y=2x+3", "1"), g::SymbolicVerdict::kUnknown);  // not an expression
  EXPECT_EQ(g::symbolic_compare_equations("y=2x+3", "2x-y+3=0"), g::SymbolicVerdict::kEqual);
  EXPECT_EQ(g::symbolic_compare_equations("y=2x+3", "y=2x-3"), g::SymbolicVerdict::kDifferent);
  EXPECT_TRUE(g::answers_equivalent("\\frac{2x+2}{2}", "x+1"));
  EXPECT_TRUE(g::answers_equivalent("(a-b)(a+b)", "a^2-b^2"));
  EXPECT_FALSE(g::answers_equivalent("(a-b)^2", "a^2-b^2"));
  // Sampling stays the fallback for what GiNaC leaves open.
  EXPECT_EQ(g::symbolic_compare("\\sin(2x)", "2\\sin(x)\\cos(x)"), g::SymbolicVerdict::kUnknown);
  EXPECT_TRUE(g::answers_equivalent("\\sin(2x)", "2\\sin(x)\\cos(x)"));
  EXPECT_FALSE(g::answers_equivalent("\\sin(2x)", "2\\sin(x)"));
}

TEST(MathVerify, SymbolicBudget) {
  g::SymbolicBudget small;
  small.max_chars = 5;
  EXPECT_EQ(g::symbolic_compare("(x+1)^2", "x^2+2x+1", small), g::SymbolicVerdict::kUnknown);
  // Exponents past the size budget are refused before GiNaC expands anything.
  EXPECT_EQ(g::symbolic_compare("(x+y+z)^{500}", "1"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("10^{100000000}", "1"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("1000!", "1"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("\\frac{1}{0}", "1"), g::SymbolicVerdict::kUnknown);
  // Zero to a power that is not a positive number: refused before GiNaC (which would throw).
  EXPECT_EQ(g::symbolic_compare("x^{0^0}", "x"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("0^{x}", "0"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("0^{-2}", "1"), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("0^{2}+x", "x"), g::SymbolicVerdict::kEqual);
  g::SymbolicBudget bad_chars;
  bad_chars.max_chars = 0;
  EXPECT_THROW(bad_chars.validate(), std::invalid_argument);
  g::SymbolicBudget bad_time;
  bad_time.max_millis = 0;
  EXPECT_THROW(bad_time.validate(), std::invalid_argument);
  g::EquivalenceOptions options;
  options.symbolic.max_millis = -1;
  EXPECT_THROW(options.validate(), std::invalid_argument);
}

TEST(MathVerify, TheTimeBudgetCountsTheComparisonsCpuTime) {
  // A budget of 1 us stops GiNaC after its first step; the default one lets it finish.
  g::SymbolicBudget tiny;
  tiny.max_millis = 0.001;
  EXPECT_EQ(g::symbolic_compare("(x+1)^{12}", "(1+x)^{12}", tiny), g::SymbolicVerdict::kUnknown);
  EXPECT_EQ(g::symbolic_compare("(x+1)^{12}", "(1+x)^{12}"), g::SymbolicVerdict::kEqual);
  // The budget's clock is the thread's CPU time: 200 ms of waiting (a thread not scheduled on a
  // loaded machine) spends almost none of it.
  const double before = g::thread_cpu_millis();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_LT(g::thread_cpu_millis() - before, 20.0);
  // ... while work does.
  const double start = g::thread_cpu_millis();
  volatile double sink = 0;
  for (int i = 0; i < 20000000 && g::thread_cpu_millis() - start < 5.0; ++i) sink = sink + 1.0;
  EXPECT_GE(g::thread_cpu_millis() - start, 5.0);
}

TEST(MathVerify, KeepsWhatAlreadyWorked) {
  EXPECT_TRUE(g::answers_equivalent("0.5", "\\frac{1}{2}"));
  EXPECT_TRUE(g::answers_equivalent("1,000", "1000"));
  EXPECT_FALSE(g::answers_equivalent("1,2", "12"));
  EXPECT_TRUE(g::answers_equivalent("\\{3, 1\\}", "\\{1,3\\}"));
  EXPECT_TRUE(g::answers_equivalent("(-\\infty, 3]", "(-\\infty,3]"));
  EXPECT_TRUE(g::answers_equivalent("1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}"));
  EXPECT_TRUE(g::answers_equivalent("5 \\text{ cm}^2", "5"));
}

TEST(MathExtraction, SeveralDifferentBoxesOfferedAsAlternativesAreAHedge) {
  const auto e = g::extract_answer("It is \\boxed{3} or \\boxed{4}.");
  EXPECT_TRUE(e.ambiguous);
  ASSERT_EQ(e.candidates.size(), 2u);
  ASSERT_TRUE(e.answer.has_value());
  EXPECT_FALSE(g::answers_equivalent(*e.answer, "4"));
  EXPECT_FALSE(g::answers_equivalent(*e.answer, "3"));
  const auto either = g::extract_answer("The answer is either 3 or 4.");
  EXPECT_TRUE(either.ambiguous);
  EXPECT_FALSE(g::answers_equivalent(*either.answer, "4"));
  EXPECT_TRUE(g::extract_answer("答案是 3 或 4。").ambiguous);
  // An unmarked hedge gives no answer at all (not its last number).
  const auto loose = g::extract_answer("It could be 3 or 4");
  EXPECT_TRUE(loose.ambiguous);
  EXPECT_FALSE(loose.answer.has_value());
  // Both roots of a quadratic, joined by "or", are the list the reference asks for.
  const auto roots = g::extract_answer("So \\boxed{x = 2 \\text{ or } x = 3}.");
  ASSERT_TRUE(roots.answer.has_value());
  EXPECT_TRUE(g::answers_equivalent(*roots.answer, "2, 3"));
  // The same value boxed twice is one answer.
  const auto twice = g::extract_answer("\\boxed{4} and again \\boxed{4}");
  EXPECT_FALSE(twice.ambiguous);
  EXPECT_EQ(twice.answer, "4");
}

TEST(MathExtraction, NeighbouringBoxesFormOneMultiPartAnswer) {
  const auto e = g::extract_answer("The roots are $\\boxed{3}$ and $\\boxed{5}$.");
  EXPECT_FALSE(e.ambiguous);
  ASSERT_TRUE(e.answer.has_value());
  EXPECT_TRUE(g::answers_equivalent(*e.answer, "3, 5"));
  EXPECT_FALSE(g::answers_equivalent(*e.answer, "5"));
  // Far apart (a correction in between): the last one stands.
  EXPECT_EQ(g::extract_final_answer("\\boxed{3}. Wait, that is wrong; redo: \\boxed{5}"), "5");
}

TEST(MathExtraction, NegatedAnswers) {
  EXPECT_EQ(g::extract_final_answer("the answer is not 12; it is 15"), "15");
  EXPECT_EQ(g::extract_final_answer("The answer is 15, not 12."), "15");
  EXPECT_EQ(g::extract_final_answer("答案不是12，而是15。"), "15");
  EXPECT_EQ(g::extract_final_answer("The answer is not 12."), std::nullopt);
}

TEST(MathExtraction, ChineseAndFullWidth) {
  const auto a = g::extract_final_answer("一共有 18 个苹果，所以答案是 18 个。");
  ASSERT_TRUE(a.has_value());
  EXPECT_TRUE(g::answers_equivalent(*a, "18"));
  EXPECT_TRUE(g::answers_equivalent(*g::extract_final_answer("答案：１８"), "18"));
  EXPECT_TRUE(g::answers_equivalent(*g::extract_final_answer("答：小明有 25 元。"), "25"));
  EXPECT_TRUE(g::answers_equivalent("１２０", "120"));
  EXPECT_TRUE(g::answers_equivalent("（１，２）", "(1,2)"));
  EXPECT_TRUE(g::answers_equivalent("3、5", "3,5"));
  EXPECT_EQ(g::normalize_answer("18 个"), "18");
  EXPECT_EQ(g::normalize_answer("无解"), "无解");
}

TEST(MathExtraction, EmptyResponseHasNoAnswer) {
  EXPECT_FALSE(g::extract_answer("").answer.has_value());
  EXPECT_FALSE(g::extract_answer("   \n\t ").answer.has_value());
}
