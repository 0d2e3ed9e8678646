#include "engine/sweep/sweep_plan.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "engine/config/experiment_config.h"
#include "engine/config/yaml_options.h"

namespace prefengine {
namespace {

YAML::Node load_root(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open the experiment file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(buffer.str());
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(path + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  check_yaml_document(root, path);
  return root;
}

std::string flow(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

// A short label for a value: a scalar as is (a path by its file stem), a map by its scalars.
std::string value_label(const YAML::Node& value) {
  if (value.IsScalar()) {
    std::string s = value.Scalar();
    const auto slash = s.find_last_of('/');
    if (slash != std::string::npos) {
      s = s.substr(slash + 1);
      const auto dot = s.find_last_of('.');
      if (dot != std::string::npos && dot > 0) s = s.substr(0, dot);
    }
    return s;
  }
  if (value.IsMap()) {
    std::string out;
    if (value["plugin"]) out = value["plugin"].Scalar();
    for (const auto& kv : value) {
      const std::string key = kv.first.Scalar();
      if (key == "plugin" || !kv.second.IsScalar()) continue;
      out += (out.empty() ? "" : ",") + key + "=" + kv.second.Scalar();
    }
    return out;
  }
  return flow(value);
}

std::string sanitise(const std::string& text) {
  std::string out;
  for (char c : text) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '=';
    out += ok ? c : '_';
  }
  return out;
}

// A folder name no earlier run of the plan has: different points can sanitise to one name
// ("a b" and "a_b"; two files named data.jsonl in different folders), and a seed may be listed
// twice. Long names are shortened (file systems take 255 bytes) and keep a numeric suffix.
std::string unique_run_name(std::string name, const std::vector<SweepRun>& earlier) {
  constexpr size_t kMaxName = 160;
  if (name.size() > kMaxName) name = name.substr(0, kMaxName);
  auto taken = [&](const std::string& candidate) {
    return std::any_of(earlier.begin(), earlier.end(), [&](const SweepRun& r) { return r.name == candidate; });
  };
  if (!taken(name)) return name;
  for (int i = 2;; ++i) {
    const std::string candidate = name + "-" + std::to_string(i);
    if (!taken(candidate)) return candidate;
  }
}

}  // namespace

bool is_sweep_file(const std::string& path) {
  const YAML::Node root = load_root(path);
  return root.IsMap() && (root["sweep"] || root["seeds"]);
}

SweepPlan plan_sweep(const std::string& path, const std::vector<std::string>& overrides) {
  YAML::Node base = load_root(path);
  if (!base.IsMap()) throw std::invalid_argument(path + ": expected a YAML map");
  for (const auto& assignment : overrides) apply_override(base, assignment);
  SweepPlan plan;
  plan.source = path;
  plan.name = base["name"] && base["name"].IsScalar() ? base["name"].Scalar() : "experiment";
  // axes
  std::vector<std::vector<YAML::Node>> values;
  if (const YAML::Node sweep = base["sweep"]) {
    if (!sweep.IsMap() || sweep.size() == 0) {
      throw std::invalid_argument(node_location(sweep, path) + ": sweep: expected a map of path: [values]");
    }
    for (const auto& kv : sweep) {
      const std::string axis = kv.first.Scalar();
      if (!kv.second.IsSequence() || kv.second.size() == 0) {
        throw std::invalid_argument(node_location(kv.second, path) + ": sweep." + axis +
                                    ": expected a non-empty list of values");
      }
      plan.axes.push_back(axis);
      values.emplace_back();
      for (const auto& v : kv.second) values.back().push_back(v);
    }
  }
  if (const YAML::Node seeds = base["seeds"]) {
    if (!seeds.IsSequence() || seeds.size() == 0) {
      throw std::invalid_argument(node_location(seeds, path) + ": seeds: expected a non-empty list of integers");
    }
    for (const auto& s : seeds) {
      try {
        plan.seeds.push_back(s.as<int64_t>());
      } catch (const YAML::Exception&) {
        throw std::invalid_argument(node_location(s, path) + ": seeds: expected integers, got '" + flow(s) + "'");
      }
    }
  } else {
    plan.seeds.push_back(base["seed"] ? base["seed"].as<int64_t>() : 0);
  }
  // the grid, first axis slowest
  std::vector<size_t> cursor(plan.axes.size(), 0);
  while (true) {
    std::string point;
    std::vector<std::string> assignments;
    YAML::Node point_map(YAML::NodeType::Map);
    for (size_t a = 0; a < plan.axes.size(); ++a) {
      const std::string& axis = plan.axes[a];
      const YAML::Node& v = values[a][cursor[a]];
      const std::string leaf = axis.substr(axis.find_last_of('.') == std::string::npos ? 0 : axis.find_last_of('.') + 1);
      point += (point.empty() ? "" : ",") + leaf + "=" + value_label(v);
      assignments.push_back(axis + "=" + flow(v));
      point_map[axis] = YAML::Clone(v);
    }
    if (point.empty()) point = "base";
    plan.points.push_back(point);
    for (int64_t seed : plan.seeds) {
      YAML::Node child = YAML::Clone(base);
      child.remove("sweep");
      child.remove("seeds");
      for (const auto& assignment : assignments) apply_override(child, assignment);
      child["seed"] = seed;
      child["sweep_point"] = YAML::Clone(point_map);
      SweepRun run;
      run.point = point;
      run.seed = seed;
      run.name = unique_run_name(sanitise(point) + "-seed" + std::to_string(seed), plan.runs);
      YAML::Emitter emitter;
      emitter << child;
      run.config_yaml = std::string(emitter.c_str()) + "\n";
      (void)parse_experiment(run.config_yaml, path + " [" + point + ", seed " + std::to_string(seed) + "]");
      plan.runs.push_back(std::move(run));
    }
    // next grid point
    size_t a = plan.axes.size();
    while (a > 0) {
      --a;
      if (++cursor[a] < values[a].size()) break;
      cursor[a] = 0;
      if (a == 0) return plan;
    }
    if (plan.axes.empty()) return plan;
  }
}

}  // namespace prefengine
