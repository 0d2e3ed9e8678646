#include "engine/grading/grade_file.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <istream>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>
#include <stdexcept>

#include "prefengine/grader.h"

namespace prefengine {
namespace {

using nlohmann::json;

// The offset of the first byte that breaks UTF-8, or npos.
size_t invalid_utf8_at(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t len = b < 0x80 ? 1 : (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return i;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (c & 0x3F);
    }
    const uint32_t min = len == 1 ? 0 : len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string::npos;
}

bool blank(const std::string& s) {
  return s.find_first_not_of(" \t\r\n") == std::string::npos;
}

// The string field `key`: nullopt when absent (or null, if `nullable`); throws for other types.
std::optional<std::string> string_field(const json& record, const char* key, bool nullable) {
  const auto it = record.find(key);
  if (it == record.end() || (nullable && it->is_null())) return std::nullopt;
  if (!it->is_string()) {
    throw std::invalid_argument(std::string("field '") + key + "' must be a string, got " +
                                it->type_name());
  }
  return it->get<std::string>();
}

// The result for an empty response when the grader itself refuses one: its lowest score, each
// dimension at 0.
GradeResult empty_result(const Grader& grader) {
  GradeResult r;
  r.score = grader.min_score();
  for (const auto& name : grader.dimensions()) r.dimensions.emplace_back(name, 0.0);
  r.reason = "empty response";
  return r;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

}  // namespace

void GradeFileOptions::validate() const {
  if (max_line_bytes != 0 && max_response_bytes != 0 && max_line_bytes < max_response_bytes) {
    throw std::invalid_argument("max_line_bytes (" + std::to_string(max_line_bytes) +
                                ") must be at least max_response_bytes (" +
                                std::to_string(max_response_bytes) + ")");
  }
}

GradeSummary grade_stream(const Grader& grader, std::istream& input, std::ostream* output,
                          const GradeFileOptions& options) {
  options.validate();
  GradeSummary summary;
  const std::vector<std::string> names = grader.dimensions();
  std::map<std::string, double> sums;
  std::vector<std::string> order = names;
  double score_sum = 0;
  size_t fives = 0, fours_or_fives = 0;
  const bool rubric = grader.min_score() == 1 && grader.max_score() == 5;

  std::string line;
  size_t line_number = 0;
  while (std::getline(input, line)) {
    ++line_number;
    if (blank(line)) continue;
    ++summary.records;
    json record;
    std::string error;
    try {
      if (options.max_line_bytes != 0 && line.size() > options.max_line_bytes) {
        throw std::invalid_argument("line has " + std::to_string(line.size()) +
                                    " bytes, more than max_line_bytes=" +
                                    std::to_string(options.max_line_bytes));
      }
      if (const size_t bad = invalid_utf8_at(line); bad != std::string::npos) {
        throw std::invalid_argument("invalid UTF-8 at byte " + std::to_string(bad) +
                                    " of the line");
      }
      try {
        record = json::parse(line);
      } catch (const json::parse_error& e) {
        record = json();
        throw std::invalid_argument(std::string("not JSON: ") + e.what());
      }
      if (!record.is_object()) {
        const std::string type = record.type_name();
        record = json();
        throw std::invalid_argument("not a JSON object but " + type);
      }
      GradeInput in;
      const auto prompt = string_field(record, "prompt", /*nullable=*/false);
      const auto response = string_field(record, "response", /*nullable=*/false);
      if (!prompt) throw std::invalid_argument("missing field 'prompt'");
      if (!response) throw std::invalid_argument("missing field 'response'");
      in.prompt = *prompt;
      in.response = *response;
      // Numeric references (GSM8K-style datasets store 18, not "18") are taken as written.
      if (const auto it = record.find("reference"); it != record.end() && it->is_number()) {
        in.reference = it->dump();
      } else {
        in.reference = string_field(record, "reference", /*nullable=*/true);
      }
      if (options.max_response_bytes != 0 && in.response.size() > options.max_response_bytes) {
        throw std::invalid_argument("response has " + std::to_string(in.response.size()) +
                                    " bytes, more than max_response_bytes=" +
                                    std::to_string(options.max_response_bytes));
      }
      GradeResult result;
      // An empty response is the policy's failure, not the record's: it scores the grader's
      // lowest score (an error would leave it out of the mean and flatter the policy).
      const bool empty = blank(in.response);
      try {
        result = grader.grade(in);
        if (empty && result.score != grader.min_score()) {
          result.score = grader.min_score();
          result.reason = "empty response";
        }
      } catch (const std::exception& e) {
        if (!empty) throw std::invalid_argument(std::string("grader: ") + e.what());
        result = empty_result(grader);
      } catch (...) {
        if (!empty) throw std::invalid_argument("grader: unknown exception");
        result = empty_result(grader);
      }
      json scores = json::object();
      for (const auto& [name, value] : result.dimensions) {
        scores[name] = value;
        if (sums.count(name) == 0 && std::find(order.begin(), order.end(), name) == order.end()) {
          order.push_back(name);
        }
        sums[name] += value;
      }
      record["score"] = result.score;
      record["scores"] = std::move(scores);
      record["reason"] = result.reason;
      ++summary.graded;
      summary.empty_responses += empty ? 1 : 0;
      score_sum += result.score;
      fives += result.score >= 5 ? 1 : 0;
      fours_or_fives += result.score >= 4 ? 1 : 0;
    } catch (const std::exception& e) {
      error = e.what();
    }
    if (!error.empty()) {
      ++summary.errors;
      if (summary.error_samples.size() < options.max_error_samples) {
        summary.error_samples.push_back("line " + std::to_string(line_number) + ": " + error);
      }
      if (!record.is_object()) record = json::object();
      record["line"] = line_number;
      record["error"] = error;
    }
    if (output) {
      *output << record.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    }
  }
  if (summary.graded > 0) {
    const double n = static_cast<double>(summary.graded);
    summary.mean_score = score_sum / n;
    for (const auto& name : order) {
      const auto it = sums.find(name);
      summary.mean_dimensions.emplace_back(name, it == sums.end() ? 0.0 : it->second / n);
    }
    if (rubric) {
      summary.rate_5_points = fives / n;
      summary.rate_4_or_5_points = fours_or_fives / n;
    }
    summary.share_at_least_4 = fours_or_fives / n;
  }
  if (output) output->flush();
  return summary;
}

GradeSummary grade_file(const Grader& grader, const std::string& input_path,
                        const std::optional<std::string>& output_path,
                        const GradeFileOptions& options) {
  std::ifstream input(input_path, std::ios::binary);
  if (!input) throw std::runtime_error("cannot open " + input_path + " for reading");
  std::ofstream output;
  if (output_path) {
    output.open(*output_path, std::ios::binary | std::ios::trunc);
    if (!output) throw std::runtime_error("cannot open " + *output_path + " for writing");
  }
  GradeSummary summary = grade_stream(grader, input, output_path ? &output : nullptr, options);
  if (input.bad()) throw std::runtime_error("error reading " + input_path);
  if (output_path && !output) throw std::runtime_error("error writing " + *output_path);
  return summary;
}

std::string format_summary_line(const GradeSummary& summary) {
  std::ostringstream out;
  out << "summary: mean_score=" << (summary.graded > 0 ? fixed(summary.mean_score, 3) : "n/a")
      << " share_score_ge_4=" << (summary.graded > 0 ? fixed(summary.share_at_least_4, 3) : "n/a")
      << " errors=" << summary.errors << " graded=" << summary.graded
      << " records=" << summary.records;
  return out.str();
}

std::string format_grade_summary(const GradeSummary& summary) {
  std::ostringstream out;
  out << "graded " << summary.graded << " of " << summary.records << " records";
  if (summary.errors > 0) out << " (" << summary.errors << " with errors)";
  out << "\n";
  if (summary.graded > 0) {
    out << "mean score  " << fixed(summary.mean_score, 3) << "\n";
    size_t width = 0;
    for (const auto& d : summary.mean_dimensions) width = std::max(width, d.first.size());
    for (const auto& [name, value] : summary.mean_dimensions) {
      out << "  " << name << std::string(width - name.size() + 2, ' ') << fixed(value, 3) << "\n";
    }
    if (summary.rate_5_points) {
      out << "5 points    " << fixed(100 * *summary.rate_5_points, 1) << "%\n";
    }
    if (summary.rate_4_or_5_points) {
      out << "4&5 points  " << fixed(100 * *summary.rate_4_or_5_points, 1) << "%\n";
    }
  }
  for (const auto& e : summary.error_samples) out << "error: " << e << "\n";
  if (summary.errors > summary.error_samples.size()) {
    out << "... and " << (summary.errors - summary.error_samples.size()) << " more errors\n";
  }
  out << format_summary_line(summary) << "\n";
  return out.str();
}

}  // namespace prefengine
