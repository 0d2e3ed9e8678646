#pragma once
// metrics.jsonl (one object per logged step, appended and flushed at once) and metrics.csv (the
// same rows under the union of all columns: appended, rewritten atomically when a column appears), in the run directory.
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace prefengine {

class TensorBoardWriter;

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
  ~MetricsLogger();

  // report_to: [tensorboard]: the rows of `stages` also go, every scalar at the row's stage step, to
  // an events file in ROOT/<stage>/ (engine/metrics/tensorboard_writer.h), one record per row.
  // Older events files there are removed first; the rows already logged (a resumed run's kept
  // metrics.jsonl rows) are written again into the new file, so it holds exactly the stage's
  // metrics.jsonl rows, no step twice (their wall_time is the time of this rewrite).
  void enable_tensorboard(const std::string& root, const std::set<std::string>& stages);

  // Every write is checked (std::runtime_error naming the file and the errno text).
  void log(const MetricsRow& row);
  // fsyncs both files and the TensorBoard files (before a checkpoint, which must not refer to rows that are not on disk).
  void sync() const;
  const std::vector<MetricsRow>& rows() const { return rows_; }

 private:
  void write_csv() const;
  std::string csv_line(const MetricsRow& row) const;

  std::string jsonl_path_;
  std::string csv_path_;
  std::vector<MetricsRow> rows_;
  std::vector<std::string> columns_;
  std::string tensorboard_root_;
  std::set<std::string> tensorboard_stages_;
  std::map<std::string, std::unique_ptr<TensorBoardWriter>> tensorboard_;
};

}  // namespace prefengine
