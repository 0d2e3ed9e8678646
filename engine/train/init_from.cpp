#include "engine/train/init_from.h"

#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include "engine/config/yaml_options.h"
#include "engine/train/adapter_reference.h"
#include "engine/train/checkpoint.h"
#include "engine/train/stage_unit.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

namespace fs = boost::filesystem;

bool is_folder_path(const std::string& init_from) { return init_from.find('/') != std::string::npos; }

// The run a checkpoint folder belongs to: RUN/checkpoints/<stage> with RUN/config.yaml.
struct RunOfCheckpoint {
  std::string directory;
  std::string config;  // RUN/config.yaml
};

std::optional<RunOfCheckpoint> run_of(const std::string& checkpoint) {
  std::string dir = checkpoint;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const fs::path parent = fs::path(dir).parent_path();
  if (parent.filename() != "checkpoints") return std::nullopt;
  const fs::path run = parent.parent_path().empty() ? fs::path(".") : parent.parent_path();
  if (!fs::is_regular_file(run / "config.yaml")) return std::nullopt;
  return RunOfCheckpoint{run.string(), (run / "config.yaml").string()};
}

YAML::Node read_yaml(const std::string& path) {
  try {
    return YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(path + ": cannot read it as YAML: " + e.msg);
  }
}

// The run's name: its config.yaml `name`, else the folder's name.
std::string run_name(const RunOfCheckpoint& run) {
  const YAML::Node root = read_yaml(run.config);
  if (root.IsMap() && root["name"] && root["name"].IsScalar()) return root["name"].as<std::string>();
  return fs::path(run.directory).filename().string();
}

std::string entry_text(const OptionEntry& entry) {
  if (!entry.is_list) return entry.scalar;
  std::string text = "[";
  for (size_t i = 0; i < entry.list.size(); ++i) text += (i ? ", " : "") + entry.list[i];
  return text + "]";
}

// The first key where the other run's model block differs from this experiment's, as
// "model.KEY is A in FILE, B here"; "" when they are equal.
std::string model_difference(const ExperimentConfig& config, const std::string& other_config) {
  const YAML::Node root = read_yaml(other_config);
  if (!root.IsMap() || !root["model"] || !root["model"].IsMap()) {
    return "model is absent in " + other_config;
  }
  const PluginOptions other = options_from_yaml(root["model"], other_config, "model");
  std::map<std::string, std::string> theirs, ours;
  for (const auto& [key, entry] : other.entries()) theirs[key] = entry_text(entry);
  for (const auto& [key, entry] : config.model.entries()) ours[key] = entry_text(entry);
  ours["plugin"] = config.model_plugin;
  auto shown = [](const std::map<std::string, std::string>& m, const std::string& key) {
    const auto it = m.find(key);
    return it == m.end() ? std::string("absent (the plugin's default)") : "'" + it->second + "'";
  };
  std::vector<std::string> keys{"plugin"};  // the plugin first: other options mean little without it
  for (const auto& [key, value] : theirs) keys.push_back(key);
  for (const auto& [key, value] : ours) keys.push_back(key);
  for (const auto& key : keys) {
    const auto a = theirs.find(key), b = ours.find(key);
    const bool same = a != theirs.end() && b != ours.end() ? a->second == b->second : a == theirs.end() && b == ours.end();
    if (!same) return "model." + key + " is " + shown(theirs, key) + " in " + other_config + ", " + shown(ours, key) + " here";
  }
  return "";
}

}  // namespace

std::string weights_directory(const std::string& source, const std::string& run_directory) {
  if (is_folder_path(source)) return source;
  return run_directory + "/checkpoints/" + source;
}

namespace {

void check_folder(const ExperimentConfig& config, const std::string& dir, const std::string& key,
                  const std::function<std::shared_ptr<Model>()>& make_model) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument(key + ": expected a checkpoint folder with state.json and model.pt, got '" + dir +
                                "': " + why);
  };
  if (!fs::is_directory(dir)) fail("no such folder (relative paths start at the working directory)");
  CheckpointState state;
  try {
    state = read_checkpoint_state(dir);
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (!fs::is_regular_file(dir + "/model.pt")) fail(dir + "/model.pt: no such file");
  if (!state.failure.empty()) {
    spdlog::warn("{}: '{}' is a failure folder (its step failed: {})", key, dir, state.failure);
  } else if (!state.finished()) {
    spdlog::warn("{}: '{}' is from step {} of {} of stage '{}' (the stage had not finished)", key, dir, state.step,
                 state.steps, state.stage);
  }
  const auto run = run_of(dir);
  std::string difference;
  try {
    if (run) difference = model_difference(config, run->config);
  } catch (const std::exception& e) {
    throw std::invalid_argument(key + ": '" + dir + "': " + e.what());
  }
  if (run && difference.empty()) return;  // the same model: its tensors fit
  // Another model, or none known: the tensors must fit. Building the model draws random numbers;
  // the run's sequence is kept as it was.
  const nlohmann::json generator = generator_state();
  try {
    auto model = make_model();
    load_model_weights(dir, *model);
  } catch (const std::exception& e) {
    restore_generator_state(generator);
    throw std::invalid_argument(key + ": '" + dir + "' does not fit this experiment's model" +
                                (difference.empty() ? "" : " (" + difference + ")") + ": " + e.what());
  }
  restore_generator_state(generator);
  if (!difference.empty()) {
    spdlog::warn("{}: '{}' comes from another model configuration ({}), but its tensors fit this model", key, dir,
                 difference);
  }
}

// A fresh model with the weights of `source`, and where they came from.
std::shared_ptr<Model> load_source(StageContext& context, const std::string& source, const std::string& key,
                                   nlohmann::json& origin) {
  const std::string dir = weights_directory(source, context.run_directory);
  try {
    const CheckpointState state = read_checkpoint_state(dir);
    auto model = context.make_model();
    load_model_weights(dir, *model);
    origin = {{"checkpoint", dir}, {"stage", state.stage}, {"step", state.step}, {"global_step", state.global_step}};
    if (!is_folder_path(source)) {
      origin["run"] = context.config.name;
    } else if (const auto run = run_of(dir)) {
      origin["run"] = run_name(*run);
      origin["run_directory"] = run->directory;
    }
    return model;
  } catch (const std::exception& e) {
    throw std::invalid_argument(key + ": '" + source + "': " + e.what());
  }
}

}  // namespace

void check_weights_sources(const ExperimentConfig& config, const StageOptions& stage,
                           const std::function<std::shared_ptr<Model>()>& make_model) {
  if (is_folder_path(stage.init_from)) check_folder(config, stage.init_from, stage.init_from_key, make_model);
  if (is_folder_path(stage.reference_from)) {
    check_folder(config, stage.reference_from, stage.reference_from_key, make_model);
  }
}

void apply_init_from(StageContext& context) {
  nlohmann::json origin;
  context.model = load_source(context, context.stage.init_from, context.stage.init_from_key, origin);
  context.report["init_from"] = origin;
  spdlog::info("stage '{}': policy weights from {} (stage '{}', global step {})", context.stage.name,
               origin["checkpoint"].get<std::string>(), origin["stage"].get<std::string>(),
               origin["global_step"].get<int64_t>());
}

std::shared_ptr<Model> make_frozen_reference(StageContext& context) {
  if (auto view = adapters_off_reference(context)) return view;  // LoRA: no copy
  std::shared_ptr<Model> reference;
  if (context.stage.reference_from.empty()) {
    reference = context.make_model();
    if (context.model->has_scalar_head()) reference->add_scalar_head();
    copy_weights(*context.model, *reference);
  } else {
    nlohmann::json origin;
    reference = load_source(context, context.stage.reference_from, context.stage.reference_from_key, origin);
    context.report["reference_from"] = origin;
    spdlog::info("stage '{}': reference weights from {} (stage '{}', global step {})", context.stage.name,
                 origin["checkpoint"].get<std::string>(), origin["stage"].get<std::string>(),
                 origin["global_step"].get<int64_t>());
  }
  reference->eval();
  for (auto& p : reference->parameters()) p.set_requires_grad(false);
  return reference;
}

}  // namespace prefengine
