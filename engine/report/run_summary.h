#pragma once
// Run directories -> per-run summary figures -> a table over seeds (Markdown for the README, CSV).
//
// A run directory holds metrics.jsonl (one JSON object per logged step: "stage", "step", optional
// "global_step", and numeric metrics such as "probs/chosen"; a metric may be absent from a row),
// config.yaml (the resolved config: top-level `name:`, optional `seed:` and `sweep_point:` map) and
// run.json ({"name":..., "status": "completed"|"failed", ...}; optional).
//
// For the CLI (`prefengine report RUN_DIR... [--output FILE]`):
//   RunData load_run(const std::string& dir);
//   RunSummary summarize_run(const RunData& run, const SummaryOptions& options = {});
//   std::vector<SummaryGroup> group_over_seeds(const std::vector<RunSummary>& runs,
//                                              double rejected_threshold = 1e-3);
//   std::string summary_markdown(const std::vector<SummaryGroup>& groups);
//   std::string summary_csv(const std::vector<SummaryGroup>& groups);
//   std::string runs_csv(const std::vector<RunSummary>& runs);
//   std::vector<SummaryGroup> write_summary(const std::vector<std::string>& dirs,
//       const std::string& out_dir, const SummaryOptions& options = {});
//       // writes out_dir/summary.md, out_dir/summary.csv and out_dir/runs.csv
// Errors: std::invalid_argument for bad content ("path:line[:column]: ..."), std::runtime_error for
// a missing or unreadable file; both name the file.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prefengine {

// One line of metrics.jsonl.
struct MetricRow {
  std::string stage;                     // "stage" field; "" when the row has none
  int64_t step = 0;                      // "step": counts from 1 within the stage
  std::optional<int64_t> global_step;    // "global_step": counts across stages, when logged
  std::map<std::string, double> values;  // numeric fields; JSON null / "nan" become NaN
};

// Everything the report needs from one run directory.
struct RunData {
  std::string dir;                                 // the directory as given
  std::string name;                                // config.yaml `name:`
  std::optional<int64_t> seed;                     // config.yaml `seed:`
  std::map<std::string, std::string> sweep_point;  // config.yaml `sweep_point:` (flattened, a.b: v)
  std::map<std::string, std::string> stage_methods;  // stage name -> loss plugin (or stage kind)
  std::string status;               // run.json "status"; "unknown" without run.json
  std::vector<MetricRow> rows;      // metrics.jsonl in file order
  std::vector<std::string> stages;  // stage names in order of first appearance

  // "name [k=v, ...] seed=s": a short unique-ish label for legends and tables.
  std::string label() const;
  // The stage `stage`, or the last stage when empty; throws std::invalid_argument naming the known
  // stages when there is no such stage.
  std::string resolve_stage(const std::string& stage) const;
  // (step, value) of `metric` over the rows of `stage` that log it, in file order.
  void series(const std::string& stage, const std::string& metric, std::vector<double>* steps,
              std::vector<double>* values) const;
  // Each row's position on one axis across all stages: its global_step when logged, else its
  // step after the largest position of the rows before it that belong to earlier stages.
  std::vector<double> global_positions() const;
  // (global position, value) of `metric` over all rows that log it, in file order.
  void series_all_stages(const std::string& metric, std::vector<double>* positions,
                         std::vector<double>* values) const;
  // (global position of its first row, name) of every stage after the first.
  std::vector<std::pair<double, std::string>> stage_starts() const;
};

// Parses a metrics.jsonl file; `path` is used in error messages ("path:line: ...").
std::vector<MetricRow> read_metrics_jsonl(const std::string& path);

// Loads a run directory (see the file comment).
RunData load_run(const std::string& dir);

// What to summarise.
struct SummaryOptions {
  std::string stage;                 // stage to summarise; empty: each run's last stage
  double rejected_threshold = 1e-3;  // "steps until probs/rejected < threshold"; must be in (0, 1)
  void validate() const;             // throws std::invalid_argument naming the bad field
};

// Figures of one run over one stage. A figure whose metric the stage never logs is NaN.
struct RunSummary {
  std::string dir;                                 // run directory
  std::string name;                                // config name
  std::map<std::string, std::string> sweep_point;  // swept option values
  std::optional<int64_t> seed;                     // seed, when the config has one
  std::string stage;                               // the summarised stage
  std::string method;           // loss plugin (or stage kind) of that stage; "" if unknown
  std::string status;           // run.json status
  int64_t last_step = 0;        // largest step logged in the stage
  double peak_chosen = 0;       // max probs/chosen
  double peak_chosen_step = 0;  // step of the first row reaching that max
  double final_chosen = 0;      // probs/chosen of the last row that logs it
  double final_rejected = 0;    // likewise probs/rejected
  double final_unseen = 0;      // likewise probs/unseen
  double final_never_seen = 0;  // likewise probs/never_seen
  std::optional<int64_t>
      steps_to_rejected_below;  // first step with probs/rejected < threshold; none: never
  double final_loss = 0;        // loss of the last row that logs it
  // What language-model runs log instead of probs/*: the last logged value of
  // logps/{chosen,rejected}_per_token and of eval/score_mean, eval/accuracy.
  double final_chosen_per_token = 0;
  double final_rejected_per_token = 0;
  double final_eval_score = 0;
  double final_eval_accuracy = 0;
};

RunSummary summarize_run(const RunData& run, const SummaryOptions& options = {});

// Mean and sample standard deviation (n - 1) of the finite values; std is NaN for n < 2.
struct Stat {
  double mean = 0;
  double std = 0;
  int n = 0;  // number of finite values that went in
};
Stat mean_std(const std::vector<double>& values);

// Runs that differ only by seed: same name, sweep point and stage.
struct SummaryGroup {
  std::string name;                                // config name
  std::map<std::string, std::string> sweep_point;  // swept option values
  std::string stage;                               // summarised stage
  std::string method;                              // loss plugin of the stage (first run's)
  std::vector<std::string> dirs;                   // member run directories
  std::vector<int64_t> seeds;                      // their seeds (runs without one are left out)
  int failed = 0;                                  // members whose status is "failed"
  Stat peak_chosen, peak_chosen_step, final_chosen, final_rejected, final_unseen, final_never_seen,
      final_loss, final_chosen_per_token, final_rejected_per_token, final_eval_score,
      final_eval_accuracy;           // over the members
  Stat steps_to_rejected_below;      // over the members that got there
  int reached = 0;                   // members whose probs/rejected fell below
  double rejected_threshold = 1e-3;  // the threshold used
};

// Groups in order of first appearance.
std::vector<SummaryGroup> group_over_seeds(const std::vector<RunSummary>& runs,
                                           double rejected_threshold = 1e-3);

// "key=value<separator>key=value" of a sweep point, keys in order.
std::string join_point(const std::map<std::string, std::string>& point, const char* separator);
// 3 significant digits without an exponent for 1e-3 <= |v| < 1e6 ("1500", "0.312"), else "2.1e-30";
// "n/a" for NaN.
std::string format_number(double v);

// "mean ± std" with 3 significant digits ("n/a" for no values, the mean alone for one).
std::string format_stat(const Stat& stat);

// The table as cells: the header row first, then one row per group (what Markdown and HTML show).
// The columns of the language-model figures (per-token log-probs, eval score and accuracy) are
// there when a group has one of them; the probability columns are left out when no group has a
// probability (the language-model runs log none).
std::vector<std::vector<std::string>> summary_table(const std::vector<SummaryGroup>& groups);

std::string summary_markdown(const std::vector<SummaryGroup>& groups);
std::string summary_csv(const std::vector<SummaryGroup>& groups);
// One row per run (no averaging), for plotting elsewhere; NaN and "never" are empty cells.
std::string runs_csv(const std::vector<RunSummary>& runs);

// Loads, summarises and groups `dirs` and writes out_dir/summary.md, out_dir/summary.csv and
// out_dir/runs.csv (out_dir is created). Returns the groups.
std::vector<SummaryGroup> write_summary(const std::vector<std::string>& dirs,
                                        const std::string& out_dir,
                                        const SummaryOptions& options = {});

}  // namespace prefengine
