#pragma once
// `prefengine report RUN_DIR... [--output FILE]`: one self-contained report.html (inline CSS and
// inline SVG; no scripts, no network, no external fonts) with
//   - the summary table over seeds (see run_summary.h),
//   - when several runs are given, one overlay chart per metric comparing the runs (with a legend),
//   - one panel per run: its probabilities overlaid in one chart, then one chart per metric,
// for the metrics probs/{chosen,rejected,unseen,never_seen}, grad/{chosen,rejected,ratio}_log10,
// loss, any rewards/*, logps/* and eval/* present, and ReportOptions::extra_metrics, against the
// step of the chosen stage (or, with ReportOptions::all_stages, against the global step across all
// stages). Charts use a log y axis when the positive values span more than 2 decades.
//
// For the CLI:
//   void write_html_report(const std::vector<std::string>& run_dirs, const std::string& out_path,
//                          const ReportOptions& options = {});
// Errors as in run_summary.h (the file and line of a bad metrics line, a missing file).
//
// Every chart is an <svg class="chart chart-compare|chart-run|chart-probs" id="..."
// data-metric="..." data-run="..."> (data-run is the run's index in run_dirs, or "all").
#include <cstddef>
#include <string>
#include <vector>

namespace prefengine {

struct RunData;

// What the report shows; every field has a usable default.
struct ReportOptions {
  std::string title = "prefengine report";  // page title and heading
  std::string stage;                        // stage to plot and summarise; empty: each run's last
  bool all_stages = false;  // plot every stage against the global step, stage starts marked
                            // (the summary table still covers `stage`)
  std::vector<std::string> extra_metrics;  // more metric names to chart (e.g. "grad_norm"); a name
                                           // ending in '*' is every metric logged with that prefix
  double rejected_threshold = 1e-3;        // for the summary's "steps to p(rejected) < ..."
  std::size_t max_points = 2000;           // points per line at most (evenly thinned); 0: all
  int chart_width = 640;                   // px per chart
  int chart_height = 300;                  // px per chart
  void validate() const;                   // throws std::invalid_argument naming the bad field
};

// The metrics charted for these runs, in report order: the fixed ones that any run logs in its
// plotted stage, then the rewards/*, logps/* and eval/* found there (each prefix sorted), then
// extra_metrics (a trailing '*' expanded to the metrics found with that prefix, sorted).
std::vector<std::string> report_metrics(const std::vector<RunData>& runs,
                                        const ReportOptions& options);

// The whole page as a string.
std::string render_html_report(const std::vector<RunData>& runs, const ReportOptions& options);

// Loads run_dirs and writes the page to out_path (parent directories are created).
void write_html_report(const std::vector<std::string>& run_dirs, const std::string& out_path,
                       const ReportOptions& options = {});

}  // namespace prefengine
