// `prefengine grade` through the executable: the exit status when nothing could be graded, the
// --max-response-bytes option and the summary line.
#include <gtest/gtest.h>

#include <string>

#include "test_util.h"

namespace {

using Result = prefengine::testing::CommandResult;

Result run(const std::string& args) {
  return prefengine::testing::run_shell(std::string(PREFENGINE_CLI) + " " + args + " 2>&1");
}

}  // namespace

TEST(GradeCli, ExitsNonZeroWhenNoRecordCouldBeGraded) {
  const std::string dir = prefengine::testing::make_temp_dir("grade-cli-none");
  const std::string input = prefengine::testing::write_file(dir + "/in.jsonl",
      "not json\n{\"prompt\": \"q\"}\n");
  const Result r = run("grade --grader math --input " + input);
  EXPECT_NE(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("no record of 2 could be graded"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("summary: mean_score=n/a share_score_ge_4=n/a errors=2 graded=0 records=2"),
            std::string::npos) << r.output;
  const std::string empty = prefengine::testing::write_file(dir + "/empty.jsonl", "");
  EXPECT_NE(run("grade --grader math --input " + empty).code, 0);
}

TEST(GradeCli, SummaryLineAndEmptyResponses) {
  const std::string dir = prefengine::testing::make_temp_dir("grade-cli-summary");
  const std::string input = prefengine::testing::write_file(dir + "/in.jsonl",
      "{\"prompt\": \"1+1?\", \"response\": \"1 + 1 = 2. The answer is \\\\boxed{2}.\", \"reference\": \"2\"}\n"
      "{\"prompt\": \"2+2?\", \"response\": \"   \", \"reference\": \"4\"}\n"
      "broken\n");
  const Result r = run("grade --grader math --input " + input);
  EXPECT_EQ(r.code, 0) << r.output;
  // Scores 5 and 1 (the empty response): mean 3, one of two at 4 or more, one error.
  EXPECT_NE(r.output.find("summary: mean_score=3.000 share_score_ge_4=0.500 errors=1 graded=2 records=3"),
            std::string::npos) << r.output;
}

TEST(GradeCli, OutputOverTheInputIsRefused) {
  const std::string dir = prefengine::testing::make_temp_dir("grade-cli-same");
  const std::string text = "{\"prompt\": \"1+1?\", \"response\": \"\\\\boxed{2}\", \"reference\": \"2\"}\n";
  const std::string input = prefengine::testing::write_file(dir + "/in.jsonl", text);
  for (const std::string& output : {input, dir + "/./in.jsonl"}) {
    const Result r = run("grade --grader math --input " + input + " --output " + output);
    EXPECT_NE(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("is the input file"), std::string::npos) << r.output;
  }
  EXPECT_EQ(prefengine::testing::read_file(input), text);  // untouched
}

TEST(GradeCli, MaxResponseBytesRaisesTheCap) {
  const std::string dir = prefengine::testing::make_temp_dir("grade-cli-cap");
  const std::string long_response = std::string(70000, 'x') + " so \\\\boxed{7}";
  const std::string input = prefengine::testing::write_file(dir + "/in.jsonl",
      "{\"prompt\": \"q\", \"response\": \"" + long_response + "\", \"reference\": \"7\"}\n");
  const Result capped = run("grade --grader math --input " + input);
  EXPECT_NE(capped.code, 0) << capped.output;  // the only record is over the default 65536 bytes
  EXPECT_NE(capped.output.find("max_response_bytes=65536"), std::string::npos) << capped.output;
  const Result raised = run("grade --grader math --max-response-bytes 200000 --input " + input);
  EXPECT_EQ(raised.code, 0) << raised.output;
  EXPECT_NE(raised.output.find("errors=0 graded=1"), std::string::npos) << raised.output;
  const Result unlimited = run("grade --grader math --max-response-bytes 0 --input " + input);
  EXPECT_EQ(unlimited.code, 0) << unlimited.output;
  const Result negative = run("grade --grader math --max-response-bytes -1 --input " + input);
  EXPECT_NE(negative.code, 0);
  EXPECT_NE(negative.output.find("--max-response-bytes"), std::string::npos) << negative.output;
}
