// The summary's tables: markdown and CSV renderings of the groups and the runs (split from
// run_summary.cpp, which reads and summarises the runs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/report/run_summary.h"

namespace prefengine {
namespace {

namespace fs = std::filesystem;

std::string csv_number(double v) {
  if (std::isnan(v)) return "";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string seeds_text(const SummaryGroup& g) {
  std::string out;
  for (int64_t s : g.seeds) out += (out.empty() ? "" : ", ") + std::to_string(s);
  return out;
}

}  // namespace

std::string format_stat(const Stat& stat) {
  if (stat.n == 0) return "n/a";
  if (stat.n == 1 || std::isnan(stat.std)) return format_number(stat.mean);
  return format_number(stat.mean) + " ± " + format_number(stat.std);
}

namespace {

std::string threshold_text(double threshold) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", threshold);
  return buffer;
}

std::string steps_cell(const SummaryGroup& g) {
  const int n = static_cast<int>(g.dirs.size());
  if (g.reached == 0) return "never";
  std::string out = format_stat(g.steps_to_rejected_below);
  if (g.reached < n) out += " (" + std::to_string(g.reached) + "/" + std::to_string(n) + " runs)";
  return out;
}

std::string markdown_cell(std::string text) {
  std::string out;
  for (char c : text) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return out;
}

}  // namespace

namespace {

// One column of the summary table: its header, its cell, and whether a group has a value there.
struct Column {
  std::string header;
  std::function<std::string(const SummaryGroup&)> cell;
  std::function<bool(const SummaryGroup&)> has;  // null: always shown
  bool numeric = true;
};

Column stat_column(const std::string& header, Stat SummaryGroup::*field) {
  return {header, [field](const SummaryGroup& g) { return format_stat(g.*field); },
          [field](const SummaryGroup& g) { return (g.*field).n > 0; }};
}

// The columns shown for `groups` (see summary_table in run_summary.h).
std::vector<Column> summary_columns(const std::vector<SummaryGroup>& groups) {
  const double threshold = groups.empty() ? 1e-3 : groups.front().rejected_threshold;
  std::vector<Column> probability = {
      stat_column("peak p(chosen)", &SummaryGroup::peak_chosen),
      stat_column("step of peak", &SummaryGroup::peak_chosen_step),
      stat_column("final p(chosen)", &SummaryGroup::final_chosen),
      stat_column("final p(rejected)", &SummaryGroup::final_rejected),
      stat_column("final p(unseen)", &SummaryGroup::final_unseen),
      stat_column("final p(never seen)", &SummaryGroup::final_never_seen),
      {"steps to p(rejected) < " + threshold_text(threshold), steps_cell,
       [](const SummaryGroup& g) { return g.final_rejected.n > 0; }}};
  const std::vector<Column> language_model = {
      stat_column("final logp/token chosen", &SummaryGroup::final_chosen_per_token),
      stat_column("final logp/token rejected", &SummaryGroup::final_rejected_per_token),
      stat_column("final eval score", &SummaryGroup::final_eval_score),
      stat_column("final eval accuracy", &SummaryGroup::final_eval_accuracy)};
  auto shown = [&](const Column& c) {
    return std::any_of(groups.begin(), groups.end(), [&](const SummaryGroup& g) { return c.has(g); });
  };
  std::vector<Column> columns = {
      {"run", [](const SummaryGroup& g) { return g.name; }, nullptr, false},
      {"method", [](const SummaryGroup& g) { return g.method.empty() ? std::string("-") : g.method; }, nullptr, false},
      {"sweep point",
       [](const SummaryGroup& g) { return g.sweep_point.empty() ? std::string("-") : join_point(g.sweep_point, ", "); },
       nullptr, false},
      {"seeds",
       [](const SummaryGroup& g) {
         std::string seeds = g.seeds.empty() ? "-" : seeds_text(g);
         if (g.failed > 0) seeds += " (" + std::to_string(g.failed) + " failed)";
         return seeds;
       },
       nullptr, false}};
  // The probability columns unless no group logs a probability.
  if (std::any_of(probability.begin(), probability.end(), shown) ||
      !std::any_of(language_model.begin(), language_model.end(), shown)) {
    for (auto& c : probability) {
      c.has = nullptr;
      columns.push_back(std::move(c));
    }
  }
  for (const auto& c : language_model) {
    if (shown(c)) columns.push_back(c);
  }
  columns.push_back(stat_column("final loss", &SummaryGroup::final_loss));
  columns.back().has = nullptr;
  return columns;
}

// The table of `columns` for `groups`: the header row, then one row per group.
std::vector<std::vector<std::string>> table_of(const std::vector<Column>& columns,
                                               const std::vector<SummaryGroup>& groups) {
  std::vector<std::vector<std::string>> table(1);
  for (const auto& c : columns) table[0].push_back(c.header);
  for (const auto& g : groups) {
    table.emplace_back();
    for (const auto& c : columns) table.back().push_back(c.cell(g));
  }
  return table;
}

}  // namespace

std::vector<std::vector<std::string>> summary_table(const std::vector<SummaryGroup>& groups) {
  return table_of(summary_columns(groups), groups);
}

std::string summary_markdown(const std::vector<SummaryGroup>& groups) {
  const std::vector<Column> columns = summary_columns(groups);
  const auto table = table_of(columns, groups);
  std::string rule = "|";
  for (const auto& c : columns) rule += c.numeric ? "--:|" : "---|";
  std::ostringstream md;
  for (std::size_t r = 0; r < table.size(); ++r) {
    md << '|';
    for (const auto& cell : table[r]) md << ' ' << markdown_cell(cell) << " |";
    md << '\n';
    if (r == 0) md << rule << '\n';
  }
  return md.str();
}

std::string summary_csv(const std::vector<SummaryGroup>& groups) {
  std::ostringstream csv;
  csv << "name,method,stage,sweep_point,seeds,runs,failed";
  for (const char* f : {"peak_chosen", "peak_chosen_step", "final_chosen", "final_rejected",
                        "final_unseen", "final_never_seen"}) {
    csv << ',' << f << "_mean," << f << "_std";
  }
  csv << ",steps_to_rejected_below_mean,steps_to_rejected_below_std,rejected_below_runs,"
         "rejected_threshold,final_loss_mean,final_loss_std";
  for (const char* f : {"final_chosen_per_token", "final_rejected_per_token", "final_eval_score",
                        "final_eval_accuracy"}) {
    csv << ',' << f << "_mean," << f << "_std";
  }
  csv << '\n';
  for (const auto& g : groups) {
    std::string seeds;
    for (int64_t s : g.seeds) seeds += (seeds.empty() ? "" : ";") + std::to_string(s);
    csv << csv_field(g.name) << ',' << csv_field(g.method) << ',' << csv_field(g.stage) << ','
        << csv_field(join_point(g.sweep_point, ";")) << ',' << csv_field(seeds) << ','
        << g.dirs.size() << ',' << g.failed;
    for (const Stat* s : {&g.peak_chosen, &g.peak_chosen_step, &g.final_chosen, &g.final_rejected,
                          &g.final_unseen, &g.final_never_seen, &g.steps_to_rejected_below}) {
      csv << ',' << csv_number(s->mean) << ',' << csv_number(s->std);
    }
    csv << ',' << g.reached << ',' << csv_number(g.rejected_threshold) << ','
        << csv_number(g.final_loss.mean) << ',' << csv_number(g.final_loss.std);
    for (const Stat* s : {&g.final_chosen_per_token, &g.final_rejected_per_token, &g.final_eval_score,
                          &g.final_eval_accuracy}) {
      csv << ',' << csv_number(s->mean) << ',' << csv_number(s->std);
    }
    csv << '\n';
  }
  return csv.str();
}

std::string runs_csv(const std::vector<RunSummary>& runs) {
  std::ostringstream csv;
  csv << "dir,name,method,stage,sweep_point,seed,status,last_step,peak_chosen,peak_chosen_step,"
         "final_chosen,final_rejected,final_unseen,final_never_seen,steps_to_rejected_below,"
         "final_loss,final_chosen_per_token,final_rejected_per_token,final_eval_score,final_eval_accuracy\n";
  for (const auto& r : runs) {
    csv << csv_field(r.dir) << ',' << csv_field(r.name) << ',' << csv_field(r.method) << ','
        << csv_field(r.stage) << ',' << csv_field(join_point(r.sweep_point, ";")) << ','
        << (r.seed ? std::to_string(*r.seed) : "") << ',' << csv_field(r.status) << ','
        << r.last_step;
    for (double v : {r.peak_chosen, r.peak_chosen_step, r.final_chosen, r.final_rejected,
                     r.final_unseen, r.final_never_seen}) {
      csv << ',' << csv_number(v);
    }
    csv << ',' << (r.steps_to_rejected_below ? std::to_string(*r.steps_to_rejected_below) : "")
        << ',' << csv_number(r.final_loss);
    for (double v : {r.final_chosen_per_token, r.final_rejected_per_token, r.final_eval_score, r.final_eval_accuracy}) {
      csv << ',' << csv_number(v);
    }
    csv << '\n';
  }
  return csv.str();
}

std::vector<SummaryGroup> write_summary(const std::vector<std::string>& dirs,
                                        const std::string& out_dir, const SummaryOptions& options) {
  options.validate();
  std::vector<RunSummary> runs;
  for (const auto& dir : dirs) runs.push_back(summarize_run(load_run(dir), options));
  auto groups = group_over_seeds(runs, options.rejected_threshold);
  fs::create_directories(out_dir);
  for (const auto& [file, text] :
       {std::pair<std::string, std::string>{"summary.md", summary_markdown(groups)},
        std::pair<std::string, std::string>{"summary.csv", summary_csv(groups)},
        std::pair<std::string, std::string>{"runs.csv", runs_csv(runs)}}) {
    const std::string path = (fs::path(out_dir) / file).string();
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path);
  }
  return groups;
}

}  // namespace prefengine
