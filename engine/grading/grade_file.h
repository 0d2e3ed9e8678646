#pragma once
// The record-file core of `prefengine grade --grader NAME --input FILE.jsonl [--output FILE.jsonl]`.
//
//   GradeSummary grade_file(const Grader& grader, const std::string& input_path,
//                           const std::optional<std::string>& output_path,
//                           const GradeFileOptions& options = {});
//   GradeSummary grade_stream(const Grader& grader, std::istream& input, std::ostream* output,
//                             const GradeFileOptions& options = {});
//   std::string format_grade_summary(const GradeSummary& summary);
//   std::string format_summary_line(const GradeSummary& summary);
//
// Input: JSON Lines, one object a line with "prompt" and "response" (strings) and, where there
// is one, "reference" (a string, a number or null). Blank lines are skipped. Output: each record as read,
// plus "score" (number), "scores" (object: dimension -> number) and "reason" (string); a record
// that cannot be graded gets "error" (string) and "line" (1-based) instead, and the run goes on:
// a line that is not JSON or not an object, invalid UTF-8, a missing or non-string field, a too
// long response, or an exception from the grader. An empty or white-space-only response is no
// error: it scores the grader's min_score() (counted in the mean, so a policy that answers
// nothing is not flattered). Only an unreadable input or
// unwritable output file throws (std::runtime_error).
#include <cstddef>
#include <iosfwd>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prefengine {

class Grader;

struct GradeFileOptions {
  size_t max_response_bytes = 65536;  // a longer response is a per-record error; 0 = no limit
  size_t max_line_bytes = 4 << 20;    // a longer input line is a per-record error; 0 = no limit
  size_t max_error_samples = 5;       // how many error messages the summary keeps
  void validate() const;              // throws std::invalid_argument when max_line_bytes is
                                      // smaller than max_response_bytes (both non-zero)
};

struct GradeSummary {
  size_t records = 0;  // non-blank input lines
  size_t graded = 0;   // records graded
  size_t errors = 0;   // records with an error (records = graded + errors)
  double mean_score = 0;                                         // over graded records
  std::vector<std::pair<std::string, double>> mean_dimensions;  // over graded, grader's order
  // For a 1-5 rubric grader (min_score 1, max_score 5, e.g. math): the share of graded records
  // with 5 points and with 4 or 5 points ("answer correct"); nullopt for other graders.
  std::optional<double> rate_5_points;
  std::optional<double> rate_4_or_5_points;
  double share_at_least_4 = 0;  // the share of graded records scoring >= 4 (any grader)
  size_t empty_responses = 0;   // graded records whose response was empty (scored min_score)
  std::vector<std::string> error_samples;  // the first errors, "line N: message"
};

GradeSummary grade_stream(const Grader& grader, std::istream& input, std::ostream* output,
                          const GradeFileOptions& options = {});

// Reads `input_path`, writes `output_path` when given (created or truncated).
GradeSummary grade_file(const Grader& grader, const std::string& input_path,
                        const std::optional<std::string>& output_path,
                        const GradeFileOptions& options = {});

// A few lines for the console: counts, mean score, mean per dimension, the rubric rates, the
// first errors, and format_summary_line last.
std::string format_grade_summary(const GradeSummary& summary);

// One machine-readable line: "summary: mean_score=3.500 share_score_ge_4=0.500 errors=1
// graded=2 records=3" (n/a for the mean and the share when nothing was graded).
std::string format_summary_line(const GradeSummary& summary);

}  // namespace prefengine
