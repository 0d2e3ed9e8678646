// The summary's tables: markdown and CSV renderings of the groups and the runs (split from
// run_summary.cpp, which reads and summarises the runs).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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

std::vector<std::vector<std::string>> summary_table(const std::vector<SummaryGroup>& groups) {
  const double threshold = groups.empty() ? 1e-3 : groups.front().rejected_threshold;
  std::vector<std::vector<std::string>> table;
  table.push_back({"run", "method", "sweep point", "seeds", "peak p(chosen)", "step of peak",
                   "final p(chosen)", "final p(rejected)", "final p(unseen)", "final p(never seen)",
                   "steps to p(rejected) < " + threshold_text(threshold), "final loss"});
  for (const auto& g : groups) {
    std::string seeds = g.seeds.empty() ? "-" : seeds_text(g);
    if (g.failed > 0) seeds += " (" + std::to_string(g.failed) + " failed)";
    table.push_back({g.name, g.method.empty() ? "-" : g.method,
                     g.sweep_point.empty() ? "-" : join_point(g.sweep_point, ", "), seeds,
                     format_stat(g.peak_chosen), format_stat(g.peak_chosen_step),
                     format_stat(g.final_chosen), format_stat(g.final_rejected),
                     format_stat(g.final_unseen), format_stat(g.final_never_seen), steps_cell(g),
                     format_stat(g.final_loss)});
  }
  return table;
}

std::string summary_markdown(const std::vector<SummaryGroup>& groups) {
  const auto table = summary_table(groups);
  std::ostringstream md;
  for (std::size_t r = 0; r < table.size(); ++r) {
    md << '|';
    for (const auto& cell : table[r]) md << ' ' << markdown_cell(cell) << " |";
    md << '\n';
    if (r == 0) md << "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
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
         "rejected_threshold,final_loss_mean,final_loss_std\n";
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
        << csv_number(g.final_loss.mean) << ',' << csv_number(g.final_loss.std) << '\n';
  }
  return csv.str();
}

std::string runs_csv(const std::vector<RunSummary>& runs) {
  std::ostringstream csv;
  csv << "dir,name,method,stage,sweep_point,seed,status,last_step,peak_chosen,peak_chosen_step,"
         "final_chosen,final_rejected,final_unseen,final_never_seen,steps_to_rejected_below,"
         "final_loss\n";
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
        << ',' << csv_number(r.final_loss) << '\n';
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
