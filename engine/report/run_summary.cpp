#include "engine/report/run_summary.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace prefengine {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string location(const std::string& path, std::size_t line) {
  return path + ":" + std::to_string(line);
}

// Non-finite values that a JSON writer may have spelt as strings.
bool special_number(const std::string& text, double* value) {
  if (text == "nan" || text == "NaN" || text == "-nan") {
    *value = kNaN;
  } else if (text == "inf" || text == "Infinity" || text == "+inf") {
    *value = std::numeric_limits<double>::infinity();
  } else if (text == "-inf" || text == "-Infinity") {
    *value = -std::numeric_limits<double>::infinity();
  } else {
    return false;
  }
  return true;
}

// An integer field ("step", "global_step"): a JSON integer, or a float with an integral value.
int64_t integer_field(const json& value, const std::string& key, const std::string& where) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    const double d = value.get<double>();
    if (std::isfinite(d) && d == std::floor(d)) return static_cast<int64_t>(d);
  }
  throw std::invalid_argument(where + ": \"" + key + "\" must be an integer, got " + value.dump());
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Flattens a sweep_point map: {loss: {beta: 0.1}} -> {"loss.beta": "0.1"}.
void flatten(const YAML::Node& node, const std::string& prefix,
             std::map<std::string, std::string>* out) {
  if (node.IsMap()) {
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      flatten(kv.second, prefix.empty() ? key : prefix + "." + key, out);
    }
  } else if (node.IsScalar()) {
    (*out)[prefix] = node.Scalar();
  } else if (node.IsNull()) {
    (*out)[prefix] = "null";
  } else {
    YAML::Emitter emitter;
    emitter << YAML::Flow << node;
    (*out)[prefix] = emitter.c_str();
  }
}

}  // namespace

std::string join_point(const std::map<std::string, std::string>& point, const char* separator) {
  std::string out;
  for (const auto& [key, value] : point) {
    if (!out.empty()) out += separator;
    out += key + "=" + value;
  }
  return out;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0.0) return "0";
  char buffer[64];
  const double a = std::abs(v);
  if (a >= 1e-3 && a < 1e6) {
    const int decimals = std::max(0, 2 - static_cast<int>(std::floor(std::log10(a))));
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, v);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.3g", v);
  }
  return buffer;
}

std::string RunData::label() const {
  std::string out = name;
  if (!sweep_point.empty()) out += " [" + join_point(sweep_point, ", ") + "]";
  if (seed) out += " seed=" + std::to_string(*seed);
  return out;
}

std::string RunData::resolve_stage(const std::string& stage) const {
  if (stages.empty()) throw std::invalid_argument(dir + ": metrics.jsonl has no rows");
  if (stage.empty()) return stages.back();
  if (std::find(stages.begin(), stages.end(), stage) != stages.end()) return stage;
  std::string known;
  for (const auto& s : stages) known += (known.empty() ? "" : ", ") + s;
  throw std::invalid_argument(dir + ": no stage '" + stage +
                              "' in metrics.jsonl (stages: " + known + ")");
}

void RunData::series(const std::string& stage, const std::string& metric,
                     std::vector<double>* steps, std::vector<double>* values) const {
  steps->clear();
  values->clear();
  for (const auto& row : rows) {
    if (row.stage != stage) continue;
    const auto it = row.values.find(metric);
    if (it == row.values.end()) continue;
    steps->push_back(static_cast<double>(row.step));
    values->push_back(it->second);
  }
}

std::vector<double> RunData::global_positions() const {
  std::vector<double> positions;
  positions.reserve(rows.size());
  double offset = 0;    // where the current stage starts when rows carry no global_step
  double furthest = 0;  // largest position so far
  const std::string* stage = nullptr;
  for (const auto& row : rows) {
    if (stage && row.stage != *stage) offset = furthest;
    stage = &row.stage;
    const double position = row.global_step ? static_cast<double>(*row.global_step)
                                            : offset + static_cast<double>(row.step);
    positions.push_back(position);
    furthest = std::max(furthest, position);
  }
  return positions;
}

void RunData::series_all_stages(const std::string& metric, std::vector<double>* positions,
                                std::vector<double>* values) const {
  positions->clear();
  values->clear();
  const std::vector<double> x = global_positions();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto it = rows[i].values.find(metric);
    if (it == rows[i].values.end()) continue;
    positions->push_back(x[i]);
    values->push_back(it->second);
  }
}

std::vector<std::pair<double, std::string>> RunData::stage_starts() const {
  std::vector<std::pair<double, std::string>> starts;
  const std::vector<double> x = global_positions();
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].stage != rows[i - 1].stage) starts.emplace_back(x[i], rows[i].stage);
  }
  return starts;
}

std::vector<MetricRow> read_metrics_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<MetricRow> rows;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = location(path, number);
    json object;
    try {
      object = json::parse(line);
    } catch (const json::parse_error& e) {
      // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 40: <why>";
      // the line is ours, the column (e.byte) is the parser's.
      const std::string what = e.what();
      const auto column = what.find(", column ");
      const auto reason = column == std::string::npos ? column : what.find(": ", column);
      throw std::invalid_argument(where + ":" + std::to_string(e.byte) + ": not valid JSON: " +
                                  (reason == std::string::npos ? what : what.substr(reason + 2)));
    }
    if (!object.is_object()) {
      throw std::invalid_argument(where + ": expected a JSON object, got " + object.type_name());
    }
    MetricRow row;
    const auto step = object.find("step");
    if (step == object.end()) throw std::invalid_argument(where + ": no \"step\" field");
    row.step = integer_field(*step, "step", where);
    if (const auto stage = object.find("stage"); stage != object.end()) {
      if (!stage->is_string()) {
        throw std::invalid_argument(where + ": \"stage\" must be a string, got " + stage->dump());
      }
      row.stage = stage->get<std::string>();
    }
    if (const auto global = object.find("global_step"); global != object.end()) {
      row.global_step = integer_field(*global, "global_step", where);
    }
    for (const auto& [key, value] : object.items()) {
      if (key == "step" || key == "stage" || key == "global_step") continue;
      double number_value = 0;
      if (value.is_number()) {
        row.values[key] = value.get<double>();
      } else if (value.is_null()) {
        row.values[key] = kNaN;
      } else if (value.is_string() && special_number(value.get<std::string>(), &number_value)) {
        row.values[key] = number_value;
      }
      // Other strings, booleans and structures (timestamps, notes) are not metrics.
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

RunData load_run(const std::string& dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw std::runtime_error("not a run directory: " + dir);
  RunData run;
  run.dir = dir;

  const std::string config_path = (root / "config.yaml").string();
  if (!fs::exists(config_path)) throw std::runtime_error("cannot open " + config_path);
  YAML::Node config;
  try {
    config = YAML::LoadFile(config_path);
  } catch (const YAML::BadFile&) {
    throw std::runtime_error("cannot open " + config_path);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(config_path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": " + e.msg);
  }
  try {
    if (!config.IsMap() || !config["name"] || !config["name"].IsScalar()) {
      throw std::invalid_argument(config_path + ": no top-level `name:`");
    }
    run.name = config["name"].as<std::string>();
    if (const auto seed = config["seed"]; seed && !seed.IsNull()) run.seed = seed.as<int64_t>();
    if (const auto point = config["sweep_point"]; point && !point.IsNull()) {
      if (!point.IsMap()) {
        throw std::invalid_argument(config_path + ":" + std::to_string(point.Mark().line + 1) +
                                    ": `sweep_point:` must be a map");
      }
      flatten(point, "", &run.sweep_point);
    }
    if (const auto stages = config["stages"]; stages && stages.IsSequence()) {
      for (const auto& stage : stages) {
        if (!stage.IsMap() || !stage["name"]) continue;
        std::string method;
        if (stage["loss"] && stage["loss"].IsMap() && stage["loss"]["plugin"]) {
          method = stage["loss"]["plugin"].as<std::string>();
        } else if (stage["kind"]) {
          method = stage["kind"].as<std::string>();
        }
        run.stage_methods[stage["name"].as<std::string>()] = method;
      }
    }
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(config_path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": " + e.msg);
  }

  const std::string run_json_path = (root / "run.json").string();
  run.status = "unknown";
  if (fs::exists(run_json_path)) {
    json info;
    try {
      info = json::parse(read_text(run_json_path));
    } catch (const json::parse_error& e) {
      throw std::invalid_argument(run_json_path + ": not valid JSON: " + e.what());
    }
    if (info.is_object() && info.contains("status") && info["status"].is_string()) {
      run.status = info["status"].get<std::string>();
    }
  }

  run.rows = read_metrics_jsonl((root / "metrics.jsonl").string());
  for (const auto& row : run.rows) {
    if (std::find(run.stages.begin(), run.stages.end(), row.stage) == run.stages.end()) {
      run.stages.push_back(row.stage);
    }
  }
  return run;
}

void SummaryOptions::validate() const {
  if (!(rejected_threshold > 0.0 && rejected_threshold < 1.0)) {
    throw std::invalid_argument("SummaryOptions.rejected_threshold must be in (0, 1), got " +
                                format_number(rejected_threshold));
  }
}

RunSummary summarize_run(const RunData& run, const SummaryOptions& options) {
  options.validate();
  RunSummary s;
  s.dir = run.dir;
  s.name = run.name;
  s.sweep_point = run.sweep_point;
  s.seed = run.seed;
  s.status = run.status;
  s.stage = run.resolve_stage(options.stage);
  if (const auto it = run.stage_methods.find(s.stage); it != run.stage_methods.end()) {
    s.method = it->second;
  }
  s.peak_chosen = s.peak_chosen_step = kNaN;
  s.final_chosen = s.final_rejected = s.final_unseen = s.final_never_seen = s.final_loss = kNaN;
  s.final_chosen_per_token = s.final_rejected_per_token = s.final_eval_score = s.final_eval_accuracy = kNaN;

  // The last finite value of a metric in the stage.
  auto last = [&](const MetricRow& row, const char* metric, double* out) {
    const auto it = row.values.find(metric);
    if (it != row.values.end() && std::isfinite(it->second)) *out = it->second;
  };
  for (const auto& row : run.rows) {
    if (row.stage != s.stage) continue;
    s.last_step = std::max(s.last_step, row.step);
    if (const auto it = row.values.find("probs/chosen");
        it != row.values.end() && std::isfinite(it->second) &&
        (std::isnan(s.peak_chosen) || it->second > s.peak_chosen)) {
      s.peak_chosen = it->second;
      s.peak_chosen_step = static_cast<double>(row.step);
    }
    if (const auto it = row.values.find("probs/rejected");
        it != row.values.end() && !s.steps_to_rejected_below && std::isfinite(it->second) &&
        it->second < options.rejected_threshold) {
      s.steps_to_rejected_below = row.step;
    }
    last(row, "probs/chosen", &s.final_chosen);
    last(row, "probs/rejected", &s.final_rejected);
    last(row, "probs/unseen", &s.final_unseen);
    last(row, "probs/never_seen", &s.final_never_seen);
    last(row, "loss", &s.final_loss);
    last(row, "logps/chosen_per_token", &s.final_chosen_per_token);
    last(row, "logps/rejected_per_token", &s.final_rejected_per_token);
    last(row, "eval/score_mean", &s.final_eval_score);
    last(row, "eval/accuracy", &s.final_eval_accuracy);
  }
  return s;
}

Stat mean_std(const std::vector<double>& values) {
  Stat stat;
  double sum = 0;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    sum += v;
    ++stat.n;
  }
  if (stat.n == 0) {
    stat.mean = stat.std = kNaN;
    return stat;
  }
  stat.mean = sum / stat.n;
  if (stat.n < 2) {
    stat.std = kNaN;
    return stat;
  }
  double squares = 0;
  for (double v : values) {
    if (std::isfinite(v)) squares += (v - stat.mean) * (v - stat.mean);
  }
  stat.std = std::sqrt(squares / (stat.n - 1));
  return stat;
}

std::vector<SummaryGroup> group_over_seeds(const std::vector<RunSummary>& runs,
                                           double rejected_threshold) {
  std::vector<SummaryGroup> groups;
  std::vector<std::vector<const RunSummary*>> members;
  for (const auto& run : runs) {
    auto same = [&](const SummaryGroup& g) {
      return g.name == run.name && g.sweep_point == run.sweep_point && g.stage == run.stage;
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) {
      SummaryGroup g;
      g.name = run.name;
      g.sweep_point = run.sweep_point;
      g.stage = run.stage;
      g.method = run.method;
      g.rejected_threshold = rejected_threshold;
      groups.push_back(std::move(g));
      members.emplace_back();
      it = groups.end() - 1;
    }
    members[static_cast<std::size_t>(it - groups.begin())].push_back(&run);
  }
  for (std::size_t i = 0; i < groups.size(); ++i) {
    SummaryGroup& g = groups[i];
    auto stat = [&](double RunSummary::*field) {
      std::vector<double> values;
      for (const RunSummary* m : members[i]) values.push_back(m->*field);
      return mean_std(values);
    };
    std::vector<double> steps;
    for (const RunSummary* m : members[i]) {
      g.dirs.push_back(m->dir);
      if (m->seed) g.seeds.push_back(*m->seed);
      if (m->status == "failed") ++g.failed;
      if (m->steps_to_rejected_below)
        steps.push_back(static_cast<double>(*m->steps_to_rejected_below));
    }
    g.peak_chosen = stat(&RunSummary::peak_chosen);
    g.peak_chosen_step = stat(&RunSummary::peak_chosen_step);
    g.final_chosen = stat(&RunSummary::final_chosen);
    g.final_rejected = stat(&RunSummary::final_rejected);
    g.final_unseen = stat(&RunSummary::final_unseen);
    g.final_never_seen = stat(&RunSummary::final_never_seen);
    g.final_loss = stat(&RunSummary::final_loss);
    g.final_chosen_per_token = stat(&RunSummary::final_chosen_per_token);
    g.final_rejected_per_token = stat(&RunSummary::final_rejected_per_token);
    g.final_eval_score = stat(&RunSummary::final_eval_score);
    g.final_eval_accuracy = stat(&RunSummary::final_eval_accuracy);
    g.steps_to_rejected_below = mean_std(steps);
    g.reached = static_cast<int>(steps.size());
  }
  return groups;
}

}  // namespace prefengine
