// The record-file core of `prefengine grade`: per-record errors never stop the run, scores are
// written per record, and the summary's means and rubric rates are hand-computed below.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "engine/grading/grade_file.h"
#include "math/math_grader.h"
#include "poem/poem_grader.h"
#include "slogan/slogan_grader.h"

namespace g = prefengine::plugins::graders;
using nlohmann::json;

namespace {

std::vector<json> read_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(json::parse(line));
  return out;
}

// A grader that throws something that is not a std::exception for the prompt "boom".
class ThrowingGrader : public prefengine::Grader {
 public:
  prefengine::GradeResult grade(const prefengine::GradeInput& input) const override {
    if (input.prompt == "boom") throw 42;
    return prefengine::GradeResult{0.5, {{"only", 0.5}}, "fine"};
  }
  std::vector<std::string> dimensions() const override { return {"only"}; }
};

const std::string kMathRecords =
    R"({"prompt":"What is 15+3?","response":"15 + 3 = 18, so \\boxed{18}","reference":"18"})" "\n"
    R"({"prompt":"q","response":"\\boxed{18}","reference":"18"})" "\n"
    "\n"
    "hello\n"
    R"({"prompt":"q","response":"   ","reference":"1"})" "\n"
    "{\"prompt\":\"q\",\"response\":\"bad \xff byte\",\"reference\":\"1\"}\n"
    R"({"prompt":"q"})" "\n"
    R"({"prompt":"q","response":"\\boxed{1}"})" "\n"
    R"({"prompt":"q","response":")" + std::string(70000, 'x') + R"(","reference":"1"})" "\n"
    "[1,2]\n"
    R"({"prompt":5,"response":"a"})" "\n"
    R"({"prompt":"q","response":"\\boxed{17}","reference":null,"id":"keep-me"})" "\n"
    R"({"prompt":"q","response":"\\boxed{17}","reference":"18","id":7})" "\n";

}  // namespace

TEST(GradeFile, BadRecordsBecomeErrorsAndTheRunGoesOn) {
  g::MathGrader grader{g::MathGraderOptions{}};
  std::istringstream in(kMathRecords);
  std::ostringstream out;
  const auto summary = prefengine::grade_stream(grader, in, &out);
  EXPECT_EQ(summary.records, 12u);
  EXPECT_EQ(summary.graded, 4u);
  EXPECT_EQ(summary.errors, 8u);
  EXPECT_EQ(summary.empty_responses, 1u);
  const auto records = read_lines(out.str());
  ASSERT_EQ(records.size(), 12u);
  EXPECT_EQ(records[0]["score"], 5.0);
  EXPECT_EQ(records[0]["scores"]["answer"], 1.0);
  EXPECT_EQ(records[0]["prompt"], "What is 15+3?");
  EXPECT_TRUE(records[0]["reason"].is_string());
  EXPECT_EQ(records[1]["score"], 4.0);
  // Input line 4 ("hello") is output record 3: the blank line 3 is skipped.
  EXPECT_EQ(records[2]["line"], 4);
  EXPECT_NE(records[2]["error"].get<std::string>().find("not JSON"), std::string::npos);
  // A blank response is no error: the lowest score, counted in the mean.
  EXPECT_EQ(records[3]["score"], 1.0);
  EXPECT_FALSE(records[3].contains("error"));
  EXPECT_NE(records[4]["error"].get<std::string>().find("invalid UTF-8"), std::string::npos);
  EXPECT_EQ(records[5]["error"], "missing field 'response'");
  EXPECT_NE(records[6]["error"].get<std::string>().find("reference"), std::string::npos);
  EXPECT_NE(records[7]["error"].get<std::string>().find("max_response_bytes"), std::string::npos);
  EXPECT_NE(records[8]["error"].get<std::string>().find("not a JSON object"), std::string::npos);
  EXPECT_NE(records[9]["error"].get<std::string>().find("'prompt' must be a string"),
            std::string::npos);
  EXPECT_EQ(records[10]["id"], "keep-me");  // a null reference is no reference: an error
  EXPECT_TRUE(records[10].contains("error"));
  EXPECT_EQ(records[11]["score"], 1.0);
  EXPECT_EQ(records[11]["id"], 7);
  for (const auto& r : records) EXPECT_NE(r.contains("error"), r.contains("score")) << r;
}

TEST(GradeFile, SummaryMeansAndRubricRates) {
  g::MathGrader grader{g::MathGraderOptions{}};
  std::istringstream in(kMathRecords);
  const auto s = prefengine::grade_stream(grader, in, nullptr);
  // Graded scores 5, 4, 1 (the blank response), 1.
  EXPECT_DOUBLE_EQ(s.mean_score, 11.0 / 4.0);
  ASSERT_EQ(s.mean_dimensions.size(), 4u);
  EXPECT_EQ(s.mean_dimensions[0].first, "answer");
  EXPECT_DOUBLE_EQ(s.mean_dimensions[0].second, 2.0 / 4.0);
  EXPECT_EQ(s.mean_dimensions[1].first, "working");
  EXPECT_DOUBLE_EQ(s.mean_dimensions[1].second, 1.0 / 4.0);
  ASSERT_TRUE(s.rate_5_points && s.rate_4_or_5_points);
  EXPECT_DOUBLE_EQ(*s.rate_5_points, 1.0 / 4.0);
  EXPECT_DOUBLE_EQ(*s.rate_4_or_5_points, 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.share_at_least_4, 2.0 / 4.0);
  EXPECT_EQ(s.error_samples.size(), 5u);
  EXPECT_EQ(s.error_samples[0].rfind("line 4: not JSON", 0), 0u) << s.error_samples[0];
  const std::string text = prefengine::format_grade_summary(s);
  EXPECT_NE(text.find("graded 4 of 12 records (8 with errors)"), std::string::npos) << text;
  EXPECT_NE(text.find("mean score  2.750"), std::string::npos) << text;
  EXPECT_NE(text.find("5 points    25.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("4&5 points  50.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("... and 3 more errors"), std::string::npos) << text;
  // The summary line comes last.
  const std::string line = "summary: mean_score=2.750 share_score_ge_4=0.500 errors=8 graded=4 records=12\n";
  ASSERT_GE(text.size(), line.size());
  EXPECT_EQ(text.substr(text.size() - line.size()), line) << text;
}

TEST(GradeFile, NonRubricGraderHasNoRates) {
  g::SloganGrader grader{g::SloganGraderOptions{}};
  std::istringstream in(
      R"({"prompt":"写一条不超过10个字的口号","response":"绿色生活，从我做起"})" "\n"
      R"({"prompt":"写一条不超过10个字的口号","response":"最佳选择"})" "\n");
  const auto s = prefengine::grade_stream(grader, in, nullptr);
  EXPECT_EQ(s.graded, 2u);
  EXPECT_FALSE(s.rate_5_points);
  // Scores 1 and 0.75 (banned word).
  EXPECT_DOUBLE_EQ(s.mean_score, 0.875);
  EXPECT_EQ(prefengine::format_grade_summary(s).find("points"), std::string::npos);
}

// A grader that refuses empty responses: grade_stream still scores them, at min_score.
class RefusesEmptyGrader : public prefengine::Grader {
 public:
  prefengine::GradeResult grade(const prefengine::GradeInput& input) const override {
    if (input.response.find_first_not_of(" \t\n") == std::string::npos) {
      throw std::invalid_argument("nothing to grade");
    }
    return prefengine::GradeResult{4, {{"only", 1}}, "fine"};
  }
  std::vector<std::string> dimensions() const override { return {"only"}; }
  double min_score() const override { return 1; }
  double max_score() const override { return 5; }
};

TEST(GradeFile, EmptyResponsesScoreTheLowestScoreNeverAnError) {
  const std::string records = R"({"prompt":"写一首五言绝句","response":""})" "\n"
                              R"({"prompt":"写一条不超过10个字的口号","response":" \n\t "})" "\n";
  std::istringstream poem_in(records);
  const auto poem = prefengine::grade_stream(g::PoemGrader{g::PoemGraderOptions{}}, poem_in, nullptr);
  EXPECT_EQ(poem.errors, 0u);
  EXPECT_EQ(poem.graded, 2u);
  EXPECT_DOUBLE_EQ(poem.mean_score, 0.0);
  std::istringstream slogan_in(records);
  const auto slogan =
      prefengine::grade_stream(g::SloganGrader{g::SloganGraderOptions{}}, slogan_in, nullptr);
  EXPECT_EQ(slogan.errors, 0u);
  EXPECT_DOUBLE_EQ(slogan.mean_score, 0.0);
  std::istringstream other_in(records);
  std::ostringstream out;
  const auto other = prefengine::grade_stream(RefusesEmptyGrader{}, other_in, &out);
  EXPECT_EQ(other.errors, 0u);
  EXPECT_EQ(other.empty_responses, 2u);
  EXPECT_DOUBLE_EQ(other.mean_score, 1.0);
  EXPECT_EQ(read_lines(out.str())[0]["reason"], "empty response");
}

TEST(GradeFile, NumericReferencesAreAccepted) {
  g::MathGrader grader{g::MathGraderOptions{}};
  std::istringstream in(R"({"prompt":"q","response":"\\boxed{18}","reference":18})" "\n"
                        R"({"prompt":"q","response":"\\boxed{0.5}","reference":0.5})" "\n"
                        R"({"prompt":"q","response":"\\boxed{1}","reference":[1]})" "\n");
  std::ostringstream out;
  const auto s = prefengine::grade_stream(grader, in, &out);
  EXPECT_EQ(s.graded, 2u);
  EXPECT_DOUBLE_EQ(s.mean_score, 4.0);
  EXPECT_NE(read_lines(out.str())[2]["error"].get<std::string>().find("'reference' must be a string"),
            std::string::npos);
}

TEST(GradeFile, NonStandardExceptionsFromTheGraderAreCaught) {
  ThrowingGrader grader;
  std::istringstream in(R"({"prompt":"boom","response":"x"})" "\n"
                        R"({"prompt":"ok","response":"x"})" "\n");
  std::ostringstream out;
  const auto s = prefengine::grade_stream(grader, in, &out);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.graded, 1u);
  EXPECT_EQ(read_lines(out.str())[0]["error"], "grader: unknown exception");
  EXPECT_DOUBLE_EQ(s.mean_dimensions[0].second, 0.5);
}

TEST(GradeFile, LimitsAreOptions) {
  ThrowingGrader grader;
  prefengine::GradeFileOptions options;
  options.max_response_bytes = 3;
  options.max_line_bytes = 40;
  std::istringstream in(R"({"prompt":"ok","response":"abcd"})" "\n"
                        R"({"prompt":"ok","response":"abc","padding":"..............."})" "\n");
  const auto s = prefengine::grade_stream(grader, in, nullptr, options);
  EXPECT_EQ(s.errors, 2u);
  EXPECT_NE(s.error_samples[0].find("max_response_bytes=3"), std::string::npos);
  EXPECT_NE(s.error_samples[1].find("max_line_bytes=40"), std::string::npos);
  prefengine::GradeFileOptions bad;
  bad.max_line_bytes = 10;
  bad.max_response_bytes = 100;
  EXPECT_THROW(bad.validate(), std::invalid_argument);
}

TEST(GradeFile, ReadsAndWritesFiles) {
  const std::string dir = ::testing::TempDir();
  const std::string input = dir + "grade_file_in.jsonl";
  const std::string output = dir + "grade_file_out.jsonl";
  {
    std::ofstream f(input);
    f << R"({"prompt":"q","response":"\\boxed{2}","reference":"2"})" "\n";
  }
  g::MathGrader grader{g::MathGraderOptions{}};
  const auto s = prefengine::grade_file(grader, input, output);
  EXPECT_EQ(s.graded, 1u);
  std::ifstream f(output);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_EQ(read_lines(text.str())[0]["score"], 4.0);
  EXPECT_EQ(prefengine::grade_file(grader, input, std::nullopt).graded, 1u);
  EXPECT_THROW(prefengine::grade_file(grader, dir + "no_such_file.jsonl", std::nullopt),
               std::runtime_error);
  EXPECT_THROW(prefengine::grade_file(grader, input, std::string("/nonexistent/dir/out.jsonl")),
               std::runtime_error);
  std::remove(input.c_str());
  std::remove(output.c_str());
}

// The sample files in tests/data/graders, one per grader (also handy for `prefengine grade`).
TEST(GradeFile, SampleFilesForEachGrader) {
  const std::string data = std::string(PREFENGINE_SOURCE_DIR) + "/tests/data/graders/";
  // math: 5 (correct, checked step), 4 (correct, no working), 3 (wrong answer, the step it
  // shows is right), 1 (no answer), 1 (an empty response: the lowest score, no error).
  const auto math = prefengine::grade_file(g::MathGrader{g::MathGraderOptions{}},
                                           data + "math.jsonl", std::nullopt);
  EXPECT_EQ(math.records, 5u);
  EXPECT_EQ(math.errors, 0u);
  EXPECT_DOUBLE_EQ(math.mean_score, 14.0 / 5.0);
  EXPECT_DOUBLE_EQ(*math.rate_5_points, 0.2);
  EXPECT_DOUBLE_EQ(*math.rate_4_or_5_points, 0.4);
  // poem: 1 (all pass) and 0.9 (rhyme 0.5); the third line is not JSON.
  const auto poem = prefengine::grade_file(g::PoemGrader{g::PoemGraderOptions{}},
                                           data + "poem.jsonl", std::nullopt);
  EXPECT_EQ(poem.graded, 2u);
  EXPECT_EQ(poem.errors, 1u);
  EXPECT_DOUBLE_EQ(poem.mean_score, 0.95);
  // slogan: 1, and 0.5 (a banned word and a repeated phrase).
  const auto slogan = prefengine::grade_file(g::SloganGrader{g::SloganGraderOptions{}},
                                             data + "slogan.jsonl", std::nullopt);
  EXPECT_EQ(slogan.graded, 2u);
  EXPECT_DOUBLE_EQ(slogan.mean_score, 0.75);
}
