#include "engine/sweep/sweep_summary.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace prefengine {
namespace {

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

// Sample standard deviation (n - 1); 0 for one value.
double std_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

std::string format(double x) {
  char text[32];
  if (x != 0 && (std::abs(x) < 1e-3 || std::abs(x) >= 1e5)) std::snprintf(text, sizeof text, "%.2e", x);
  else if (std::abs(x - std::round(x)) < 1e-9 && std::abs(x) >= 10) std::snprintf(text, sizeof text, "%.0f", x);
  else std::snprintf(text, sizeof text, "%.4f", x);
  return text;
}

// The step at which each 3D early warning of `stage` fired (run.json stages[].warnings), as
// warn_<property>_step; nothing when run.json is absent (a run that never started its stages).
void read_warning_steps(const std::string& run_directory, const std::string& stage, RunMetricsSummary* out) {
  const std::string path = run_directory + "/run.json";
  std::ifstream in(path);
  if (!in) return;
  const auto status = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!status.is_object() || !status.contains("stages") || !status["stages"].is_array()) return;
  try {
    for (const auto& entry : status["stages"]) {
      if (!entry.is_object() || entry.value("name", "") != stage || !entry.contains("warnings")) continue;
      for (const auto& w : entry["warnings"]) {
        const std::string key = "warn_" + w.at("property").get<std::string>() + "_step";
        if (!out->values.count(key)) out->values[key] = w.at("step").get<double>();
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path + ": unexpected warnings entry: " + e.what());
  }
}

}  // namespace

const std::vector<std::string>& summary_metric_names() {
  static const std::vector<std::string> names = {
      "start_chosen",          "peak_chosen",         "peak_chosen_step",       "half_gain_lost_step",
      "final_chosen",          "final_unseen",        "final_never_seen",       "final_logps_rejected",
      "rejected_1e-3_step",    "final_eval_accuracy", "eval_accuracy_change",   "final_eval_score",
      "final_eval_correct",    "eval_chosen_per_token_change", "eval_rejected_per_token_change",
      "final_beta_rejected",   "warn_drastic_drop_step", "warn_degradation_step", "warn_dispersion_step"};
  return names;
}

RunMetricsSummary summarize_run(const std::string& run_directory) {
  std::ifstream in(run_directory + "/metrics.jsonl");
  if (!in) throw std::runtime_error(run_directory + "/metrics.jsonl: cannot open");
  std::vector<nlohmann::json> rows;
  std::string line;
  std::string stage;
  bool toy_stage = false;  // a stage with probs/chosen was seen: it wins over per-token ones
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    // A damaged row names its file:line (not the JSON library's message alone).
    const std::string where = run_directory + "/metrics.jsonl:" + std::to_string(number);
    auto row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object()) throw std::invalid_argument(where + ": expected a JSON object (a metrics row)");
    rows.push_back(std::move(row));
    // The toy's stages log probs/*; a language model's pairwise stages logps/*_per_token.
    const bool toy = rows.back().contains("probs/chosen");
    if (toy || rows.back().contains("logps/chosen_per_token")) {
      if (!rows.back().contains("stage") || !rows.back()["stage"].is_string()) {
        throw std::invalid_argument(where + ": expected a string field 'stage'");
      }
      if (toy || !toy_stage) stage = rows.back()["stage"].get<std::string>();
      toy_stage = toy_stage || toy;
    }
  }
  RunMetricsSummary out;
  out.stage = stage;
  if (stage.empty()) return out;
  bool first = true;
  double start = NAN, peak = -1, last_acc = NAN, change_sum = 0;
  std::vector<std::pair<double, double>> chosen_curve;  // (step, probs/chosen)
  std::map<std::string, double> first_of;                // first value of a metric in the stage
  int64_t changes = 0;
  try {  // a field of the wrong type: one line naming the file
    for (const auto& row : rows) {
      if (!row.contains("stage") || row["stage"] != stage) continue;
      if (row.contains("probs/chosen")) {
        const double chosen = row["probs/chosen"].get<double>();
        if (first) out.values["start_chosen"] = start = chosen;
        first = false;
        if (chosen > peak) {
          peak = chosen;
          out.values["peak_chosen_step"] = row["step"].get<double>();
        }
        chosen_curve.emplace_back(row["step"].get<double>(), chosen);
        out.values["final_chosen"] = chosen;
        if (row.contains("logps/rejected")) out.values["final_logps_rejected"] = row["logps/rejected"].get<double>();
        if (row.contains("probs/unseen")) out.values["final_unseen"] = row["probs/unseen"].get<double>();
        if (row.contains("probs/never_seen")) out.values["final_never_seen"] = row["probs/never_seen"].get<double>();
        if (row.contains("probs/rejected") && row["probs/rejected"].get<double>() < 1e-3 &&
            !out.values.count("rejected_1e-3_step")) {
          out.values["rejected_1e-3_step"] = row["step"].get<double>();
        }
      }
      // Generation and held-out pair metrics of evaluation rows: the last value, or the change
      // from the first evaluation to the last.
      for (const auto& [column, metric] : {std::pair<const char*, const char*>{"final_eval_score", "eval/score_mean"},
                                           {"final_eval_correct", "eval/accuracy"},
                                           {"final_beta_rejected", "beta/rejected"}}) {
        if (row.contains(metric) && row[metric].is_number()) out.values[column] = row[metric].get<double>();
      }
      for (const auto& [column, metric] :
           {std::pair<const char*, const char*>{"eval_chosen_per_token_change", "eval/logps_chosen_per_token"},
            {"eval_rejected_per_token_change", "eval/logps_rejected_per_token"}}) {
        if (!row.contains(metric) || !row[metric].is_number()) continue;
        const double v = row[metric].get<double>();
        if (!first_of.count(metric)) first_of[metric] = v;
        out.values[column] = v - first_of[metric];
      }
      if (row.contains("eval/pair_accuracy")) {
        const double acc = row["eval/pair_accuracy"].get<double>();
        if (!std::isnan(last_acc)) {
          change_sum += std::abs(acc - last_acc);
          ++changes;
        }
        last_acc = acc;
        out.values["final_eval_accuracy"] = acc;
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(run_directory + "/metrics.jsonl: unexpected metrics row: " + e.what());
  }
  if (!first) out.values["peak_chosen"] = peak;
  // The first step after the peak at which the chosen probability is back below the middle of
  // its rise (start + peak) / 2: it has given back half of what it gained.
  if (peak > start) {
    const double half = 0.5 * (start + peak);
    bool past_peak = false;
    for (const auto& [step, chosen] : chosen_curve) {
      if (step == out.values["peak_chosen_step"]) past_peak = true;
      if (past_peak && chosen <= half) {
        out.values["half_gain_lost_step"] = step;
        break;
      }
    }
  }
  read_warning_steps(run_directory, stage, &out);
  if (changes > 0) out.values["eval_accuracy_change"] = change_sum / static_cast<double>(changes);
  return out;
}

void write_sweep_summary(const std::string& directory, const std::vector<SummaryRow>& rows) {
  const auto& names = summary_metric_names();
  // only the metrics some run has
  std::vector<std::string> used;
  for (const auto& name : names) {
    for (const auto& row : rows) {
      auto it = row.samples.find(name);
      if (it != row.samples.end() && !it->second.empty()) {
        used.push_back(name);
        break;
      }
    }
  }
  {
    std::ofstream csv(directory + "/summary.csv");
    csv << "point,seeds,failed";
    for (const auto& name : used) csv << "," << name << "_mean," << name << "_std," << name << "_n";
    csv << "\n";
    for (const auto& row : rows) {
      csv << "\"" << row.point << "\"," << row.seeds << "," << row.failed;
      for (const auto& name : used) {
        auto it = row.samples.find(name);
        if (it == row.samples.end() || it->second.empty()) {
          csv << ",,,0";
        } else {
          csv << "," << mean_of(it->second) << "," << std_of(it->second) << "," << it->second.size();
        }
      }
      csv << "\n";
    }
    if (!csv) throw std::runtime_error(directory + "/summary.csv: cannot write");
  }
  std::ofstream md(directory + "/summary.md");
  md << "| point | seeds |";
  for (const auto& name : used) md << " " << name << " |";
  md << "\n|---|---|";
  for (size_t i = 0; i < used.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& row : rows) {
    md << "| " << row.point << " | " << row.seeds << (row.failed ? " (" + std::to_string(row.failed) + " failed)" : "")
       << " |";
    for (const auto& name : used) {
      auto it = row.samples.find(name);
      if (it == row.samples.end() || it->second.empty()) {
        const bool step_of_event = name == "rejected_1e-3_step" || name == "half_gain_lost_step" ||
                                   name.rfind("warn_", 0) == 0;
        md << (step_of_event ? " never |" : " – |");
        continue;
      }
      md << " " << format(mean_of(it->second)) << " ± " << format(std_of(it->second));
      if (static_cast<int64_t>(it->second.size()) < row.seeds) md << " (" << it->second.size() << "/" << row.seeds << ")";
      md << " |";
    }
    md << "\n";
  }
  if (!md) throw std::runtime_error(directory + "/summary.md: cannot write");
}

}  // namespace prefengine
