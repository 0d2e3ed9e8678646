#pragma once
// The summary table of a sweep: per grid point, mean and std over seeds of the 3D diagnostics of
// each run's last stage that logs probs/* (a toy stage), or else of its last stage that logs
// logps/chosen_per_token (a language model's pairwise stage) (engine/report's run summary covers single runs; the
// two share the metric definitions below and can be unified).
//   start_chosen      probs/chosen on the stage's first metrics row
//   peak_chosen       max probs/chosen over the stage
//   peak_chosen_step  the step of the first row at that max (where a person marks the turn)
//   half_gain_lost_step  first step after the peak with probs/chosen <= (start + peak) / 2
//   final_chosen      probs/chosen on its last row
//   final_unseen      probs/unseen on its last row
//   final_never_seen  probs/never_seen on its last row
//   final_logps_rejected  logps/rejected on its last row (probs/rejected underflows to 0)
//   rejected_1e-3_step  first stage step with probs/rejected < 1e-3 (absent when never)
//   final_eval_score, final_eval_correct  eval/score_mean and eval/accuracy (generation, graded) on
//                     the last row that has them
//   eval_chosen_per_token_change, eval_rejected_per_token_change  eval/logps_{chosen,rejected}_
//                     per_token on the last evaluation minus the first (held-out pairs, Table 1)
//   final_beta_rejected  beta/rejected on the last row (adaptive_dpo)
//   warn_<property>_step  the step the 3D early warning for drastic_drop / degradation /
//                     dispersion fired (run.json; absent when it did not)
//   final_eval_accuracy, eval_accuracy_change  eval/pair_accuracy on the last row and the mean
//                     |step-to-step change| of eval/pair_accuracy (only when the stage evaluates)
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace prefengine {

struct RunMetricsSummary {
  std::string stage;                      // the stage summarised ("" when no stage logs probs/*)
  std::map<std::string, double> values;   // the names above; absent when not measured
};

// Reads <run_directory>/metrics.jsonl.
RunMetricsSummary summarize_run(const std::string& run_directory);

struct SummaryRow {
  std::string point;
  int64_t seeds = 0;  // runs that completed
  int64_t failed = 0; // runs that did not
  std::map<std::string, std::vector<double>> samples;  // per metric, one value per seed that has it
};

// The column order of summary.csv / summary.md.
const std::vector<std::string>& summary_metric_names();

// Writes summary.csv (point, seeds, <metric>_mean, <metric>_std, <metric>_n) and summary.md
// (mean ± std; "k/N" added when only k of N seeds have the metric, e.g. the rejected probability
// never fell below 1e-3) into `directory`.
void write_sweep_summary(const std::string& directory, const std::vector<SummaryRow>& rows);

}  // namespace prefengine
