#pragma once
// metrics.jsonl (one object per logged step, appended and flushed at once) and metrics.csv (the
// same rows under the union of all columns: appended, rewritten atomically when a column appears), in the run directory.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace prefengine {

struct MetricsRow {
  std::string stage;                       // the stage's name
  int64_t step = 0;                        // optimizer step within the stage, from 1
  int64_t global_step = 0;                 // optimizer steps across stages
  std::vector<std::pair<std::string, double>> values;  // name -> value, in order

  void set(const std::string& name, double value);
  const double* find(const std::string& name) const;
};

class MetricsLogger {
 public:
  // Creates (or, with `append`, continues) the files in `directory`.
  explicit MetricsLogger(const std::string& directory, bool append = false);

  // Every write is checked (std::runtime_error naming the file and the errno text).
  void log(const MetricsRow& row);
  // fsyncs both files (before a checkpoint, which must not refer to rows that are not on disk).
  void sync() const;
  const std::vector<MetricsRow>& rows() const { return rows_; }

 private:
  void write_csv() const;
  std::string csv_line(const MetricsRow& row) const;

  std::string jsonl_path_;
  std::string csv_path_;
  std::vector<MetricsRow> rows_;
  std::vector<std::string> columns_;
};

}  // namespace prefengine
