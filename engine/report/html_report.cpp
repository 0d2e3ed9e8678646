#include "engine/report/html_report.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "engine/report/run_summary.h"
#include "engine/report/svg_chart.h"

namespace prefengine {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string>& fixed_metrics() {
  static const std::vector<std::string> kMetrics = {
      "probs/chosen",      "probs/rejected",      "probs/unseen",     "probs/never_seen",
      "grad/chosen_log10", "grad/rejected_log10", "grad/ratio_log10", "loss"};
  return kMetrics;
}

const std::vector<std::string>& probability_metrics() {
  static const std::vector<std::string> kMetrics = {"probs/chosen", "probs/rejected",
                                                    "probs/unseen", "probs/never_seen"};
  return kMetrics;
}

// "probs/never_seen" -> "probs-never_seen": safe in an id.
std::string slug(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-';
    out += keep ? c : '-';
  }
  return out;
}

// Whether `run` logs `metric` in `stage` (in any stage when all_stages).
bool logs_metric(const RunData& run, const std::string& stage, bool all_stages,
                 const std::string& metric) {
  for (const auto& row : run.rows) {
    if ((all_stages || row.stage == stage) && row.values.count(metric)) return true;
  }
  return false;
}

// Keeps at most max_points points, evenly spaced, always with the last one.
void thin(std::vector<double>* x, std::vector<double>* y, std::size_t max_points) {
  if (max_points == 0 || x->size() <= max_points) return;
  const std::size_t stride = (x->size() + max_points - 2) / (max_points - 1);
  std::vector<double> tx, ty;
  for (std::size_t i = 0; i < x->size(); i += stride) {
    tx.push_back((*x)[i]);
    ty.push_back((*y)[i]);
  }
  if (tx.back() != x->back()) {
    tx.push_back(x->back());
    ty.push_back(y->back());
  }
  x->swap(tx);
  y->swap(ty);
}

ChartSeries make_series(const RunData& run, const std::string& stage, bool all_stages,
                        const std::string& metric, const std::string& label,
                        const std::string& color, std::size_t max_points) {
  ChartSeries s;
  s.label = label;
  s.color = color;
  if (all_stages) {
    run.series_all_stages(metric, &s.x, &s.y);
  } else {
    run.series(stage, metric, &s.x, &s.y);
  }
  thin(&s.x, &s.y, max_points);
  return s;
}

constexpr const char* kStyle = R"(
body { font-family: sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
.meta { color: #555; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td { white-space: nowrap; }
th { background: #f2f2f2; } td.text { text-align: left; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.grid svg { border: 1px solid #ddd; }
.run-panel { border-top: 2px solid #ddd; margin-top: 16px; }
code { font-size: 12px; }
)";

}  // namespace

void ReportOptions::validate() const {
  if (chart_width < 200) {
    throw std::invalid_argument("ReportOptions.chart_width must be >= 200, got " +
                                std::to_string(chart_width));
  }
  if (chart_height < 120) {
    throw std::invalid_argument("ReportOptions.chart_height must be >= 120, got " +
                                std::to_string(chart_height));
  }
  if (max_points == 1) {
    throw std::invalid_argument("ReportOptions.max_points must be 0 (all) or >= 2, got 1");
  }
  SummaryOptions summary;
  summary.rejected_threshold = rejected_threshold;
  try {
    summary.validate();
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("ReportOptions.rejected_threshold must be in (0, 1), got " +
                                std::to_string(rejected_threshold));
  }
}

std::vector<std::string> report_metrics(const std::vector<RunData>& runs,
                                        const ReportOptions& options) {
  std::vector<std::string> stages;
  for (const auto& run : runs) stages.push_back(run.resolve_stage(options.stage));
  auto any_logs = [&](const std::string& metric) {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      if (logs_metric(runs[i], stages[i], options.all_stages, metric)) return true;
    }
    return false;
  };
  std::vector<std::string> metrics;
  for (const auto& m : fixed_metrics()) {
    if (any_logs(m)) metrics.push_back(m);
  }
  // The metrics of the plotted stages whose names start with `prefix`, sorted.
  auto found = [&](const std::string& prefix) {
    std::set<std::string> names;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      for (const auto& row : runs[i].rows) {
        if (!options.all_stages && row.stage != stages[i]) continue;
        for (const auto& kv : row.values) {
          if (kv.first.rfind(prefix, 0) == 0) names.insert(kv.first);
        }
      }
    }
    return names;
  };
  auto add = [&](const std::string& m) {
    if (std::find(metrics.begin(), metrics.end(), m) == metrics.end()) metrics.push_back(m);
  };
  for (const char* prefix : {"rewards/", "logps/", "eval/"}) {
    for (const auto& m : found(prefix)) add(m);
  }
  for (const auto& m : options.extra_metrics) {
    if (!m.empty() && m.back() == '*') {
      for (const auto& f : found(m.substr(0, m.size() - 1))) add(f);
    } else {
      add(m);
    }
  }
  return metrics;
}

std::string render_html_report(const std::vector<RunData>& runs, const ReportOptions& options) {
  options.validate();
  if (runs.empty()) throw std::invalid_argument("report: no run directories given");
  std::vector<std::string> stages;
  for (const auto& run : runs) stages.push_back(run.resolve_stage(options.stage));
  const std::vector<std::string> metrics = report_metrics(runs, options);

  SummaryOptions summary_options;
  summary_options.stage = options.stage;
  summary_options.rejected_threshold = options.rejected_threshold;
  std::vector<RunSummary> summaries;
  for (const auto& run : runs) summaries.push_back(summarize_run(run, summary_options));
  const auto groups = group_over_seeds(summaries, options.rejected_threshold);

  // Runs that differ only by seed share a colour and one legend entry in the comparison charts,
  // so that many seeds of a few settings stay readable; with nothing to group, each run is its own.
  std::vector<std::size_t> group_of(runs.size(), 0);
  std::vector<bool> first_of_group(runs.size(), false);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    for (std::size_t g = 0; g < groups.size(); ++g) {
      if (groups[g].name == runs[i].name && groups[g].sweep_point == runs[i].sweep_point &&
          groups[g].stage == stages[i]) {
        group_of[i] = g;
        break;
      }
    }
    first_of_group[i] =
        std::find(group_of.begin(), group_of.begin() + i, group_of[i]) == group_of.begin() + i;
  }
  const bool by_group = groups.size() > 1 && groups.size() < runs.size();
  auto run_color = [&](std::size_t i) { return palette_color(by_group ? group_of[i] : i); };
  auto legend_label = [&](std::size_t i) -> std::string {
    const SummaryGroup& g = groups[group_of[i]];
    if (!by_group || g.dirs.size() == 1) return runs[i].label();
    if (!first_of_group[i]) return "";  // the group's first run carries the entry
    RunData shown;                      // name and sweep point only: label() without the seed
    shown.name = runs[i].name;
    shown.sweep_point = runs[i].sweep_point;
    std::string seeds;
    for (int64_t seed : g.seeds) seeds += (seeds.empty() ? "" : ",") + std::to_string(seed);
    return shown.label() + (seeds.empty() ? "" : " seeds=" + seeds);
  };

  ChartOptions base;
  base.x_label = options.all_stages ? "global step" : "step";
  base.width = options.chart_width;
  base.height = options.chart_height;

  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
       << xml_escape(options.title) << "</title>\n<style>" << kStyle
       << "</style>\n</head>\n<body>\n";
  html << "<h1>" << xml_escape(options.title) << "</h1>\n<p class=\"meta\">" << runs.size()
       << (runs.size() == 1 ? " run" : " runs") << "; x axis: "
       << (options.all_stages ? "global step across all stages (dashed lines: stage starts)"
                              : "step within the stage")
       << "; a y axis is "
       << "log-scaled when its positive values span more than two decades.</p>\n";

  // Summary over seeds.
  html << "<h2 id=\"summary\">Summary</h2>\n<table class=\"summary\">\n";
  const auto table = summary_table(groups);
  for (std::size_t r = 0; r < table.size(); ++r) {
    html << "<tr>";
    for (std::size_t c = 0; c < table[r].size(); ++c) {
      const char* tag = r == 0 ? "th" : "td";
      html << '<' << tag << (c < 4 ? " class=\"text\"" : "") << '>' << xml_escape(table[r][c])
           << "</" << tag << '>';
    }
    html << "</tr>\n";
  }
  html << "</table>\n";

  // The runs.
  html << "<h2 id=\"runs\">Runs</h2>\n<table class=\"runs\">\n<tr><th class=\"text\">#</th>"
       << "<th class=\"text\">run</th><th class=\"text\">directory</th><th class=\"text\">status"
       << "</th><th class=\"text\">stage</th><th>rows</th><th>last step</th></tr>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    html << "<tr><td class=\"text\">" << i << "</td><td class=\"text\"><a href=\"#run-" << i
         << "\">" << xml_escape(runs[i].label()) << "</a></td><td class=\"text\"><code>"
         << xml_escape(runs[i].dir) << "</code></td><td class=\"text\">"
         << xml_escape(runs[i].status) << "</td><td class=\"text\">" << xml_escape(stages[i])
         << "</td><td>" << runs[i].rows.size() << "</td><td>" << summaries[i].last_step
         << "</td></tr>\n";
  }
  html << "</table>\n";

  // Runs compared, one chart per metric.
  if (runs.size() > 1) {
    html << "<h2 id=\"compare\">Comparison</h2>\n<div class=\"grid\">\n";
    for (const auto& metric : metrics) {
      std::vector<ChartSeries> series;
      for (std::size_t i = 0; i < runs.size(); ++i) {
        series.push_back(make_series(runs[i], stages[i], options.all_stages, metric,
                                     legend_label(i), run_color(i), options.max_points));
      }
      ChartOptions chart = base;
      chart.title = metric + " (all runs)";
      chart.y_label = metric;
      chart.css_class = "chart-compare";
      chart.id = "compare-" + slug(metric);
      chart.data_metric = metric;
      chart.data_run = "all";
      html << render_line_chart(series, chart);
    }
    html << "</div>\n";
  }

  // One panel per run.
  html << "<h2 id=\"per-run\">Per run</h2>\n";
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunData& run = runs[i];
    html << "<section class=\"run-panel\" id=\"run-" << i << "\">\n<h3>" << xml_escape(run.label())
         << " <small>(" << (options.all_stages ? "all stages" : "stage " + xml_escape(stages[i]))
         << ", " << xml_escape(run.status) << ")</small></h3>\n<div class=\"grid\">\n";
    std::vector<ChartSeries> probs;
    for (std::size_t m = 0; m < probability_metrics().size(); ++m) {
      const std::string& metric = probability_metrics()[m];
      if (!logs_metric(run, stages[i], options.all_stages, metric)) continue;
      probs.push_back(make_series(run, stages[i], options.all_stages, metric, metric,
                                  palette_color(m), options.max_points));
    }
    if (!probs.empty()) {
      ChartOptions chart = base;
      chart.title = "probabilities: " + run.label();
      chart.y_label = "probability";
      chart.css_class = "chart-probs";
      chart.id = "run" + std::to_string(i) + "-probs";
      chart.data_metric = "probs/*";
      chart.data_run = std::to_string(i);
      if (options.all_stages) chart.x_markers = run.stage_starts();
      html << render_line_chart(probs, chart);
    }
    for (const auto& metric : metrics) {
      ChartOptions chart = base;
      chart.title = metric + ": " + run.label();
      chart.y_label = metric;
      chart.css_class = "chart-run";
      chart.id = "run" + std::to_string(i) + "-" + slug(metric);
      chart.data_metric = metric;
      chart.data_run = std::to_string(i);
      if (options.all_stages) chart.x_markers = run.stage_starts();
      html << render_line_chart({make_series(run, stages[i], options.all_stages, metric, metric,
                                             run_color(i), options.max_points)},
                                chart);
    }
    html << "</div>\n</section>\n";
  }
  html << "</body>\n</html>\n";
  return html.str();
}

void write_html_report(const std::vector<std::string>& run_dirs, const std::string& out_path,
                       const ReportOptions& options) {
  options.validate();
  std::vector<RunData> runs;
  for (const auto& dir : run_dirs) runs.push_back(load_run(dir));
  const std::string page = render_html_report(runs, options);
  const fs::path path(out_path);
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(out_path, std::ios::binary);
  out << page;
  if (!out) throw std::runtime_error("cannot write " + out_path);
}

}  // namespace prefengine
