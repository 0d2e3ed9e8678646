#include "engine/config/experiment_config.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "engine/cli/export_command.h"
#include "engine/config/yaml_options.h"
#include "engine/train/stage_unit.h"

namespace prefengine {
namespace {

// report_to: [tensorboard] | tensorboard | none | []. `fallback` when the key is absent.
bool read_report_to(PluginOptions& o, bool fallback) {
  if (!o.has("report_to")) return fallback;
  bool tensorboard = false, none = false;
  for (const auto& item : o.get_string_list("report_to", {})) {
    if (item == "tensorboard") tensorboard = true;
    else if (item == "none") none = true;
    else o.fail("report_to", "a list of tensorboard (e.g. report_to: [tensorboard]), or none / [] for no reports", "'" + item + "'");
  }
  if (tensorboard && none) o.fail("report_to", "tensorboard or none, not both", "both");
  return tensorboard;
}

OptimizerOptions read_optimizer(PluginOptions& o) {
  OptimizerOptions opt;
  opt.name = o.get_choice("optimizer.name", opt.name, {"adam", "adamw", "sgd"});
  // lr 0 is allowed: the stage then leaves the weights as they are, and its metrics and eval
  // measure the starting model (the "before" of a before/after comparison).
  opt.lr = o.get_double(trl_key(o, "optimizer.lr", "learning_rate"), opt.lr, 0, 10);
  opt.weight_decay = o.get_double("optimizer.weight_decay", opt.weight_decay, 0, 1);
  opt.beta1 = o.get_double("optimizer.beta1", opt.beta1, 0, 1);
  opt.beta2 = o.get_double("optimizer.beta2", opt.beta2, 0, 1);
  opt.eps = o.get_double("optimizer.eps", opt.eps, 0, 1, /*min_exclusive=*/true);
  opt.momentum = o.get_double("optimizer.momentum", opt.momentum, 0, 1);
  opt.grad_clip = o.get_double(trl_key(o, "optimizer.grad_clip", "max_grad_norm"), opt.grad_clip, 0);
  opt.warmup_steps = o.get_int("optimizer.warmup_steps", opt.warmup_steps, 0);
  const std::string ratio = trl_key(o, "optimizer.warmup_ratio", "warmup_ratio");
  opt.warmup_ratio = o.get_double(ratio, opt.warmup_ratio, 0, 1);
  if (opt.warmup_ratio > 0 && opt.warmup_steps > 0) {
    o.fail(ratio, "either " + ratio + " or optimizer.warmup_steps, not both", "both");
  }
  opt.schedule = o.get_choice("optimizer.schedule", opt.schedule, {"constant", "linear", "cosine"});
  return opt;
}

// Names that become folder names (the run, a stage's checkpoint): one path component that cannot
// be mistaken for the engine's own entries.
void check_folder_name(PluginOptions& o, const std::string& key, const std::string& name) {
  auto ends_with = [&](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  if (name.empty() || name.find('/') != std::string::npos || name.find('\\') != std::string::npos ||
      name[0] == '.' || name == "latest" || ends_with(".old") || ends_with(".tmp")) {
    o.fail(key, "a non-empty name without '/' or '\\', not starting with '.', not 'latest', not ending in "
                ".old or .tmp (it names a folder)", "'" + name + "'");
  }
}

bool has_prefix(const PluginOptions& o, const std::string& key) {
  const std::string head = key + ".";
  for (const auto& [name, entry] : o.entries()) {
    if (name == key || name.compare(0, head.size(), head) == 0) return true;
  }
  return false;
}

// The `eval:` block of any stage (engine/train/evaluation.h checks the files and the grader).
EvalOptions read_eval(PluginOptions& o, const std::string& path, const std::vector<std::string>& earlier_stages) {
  EvalOptions e;
  if (!has_prefix(o, "eval")) return e;
  const auto& entries = o.entries();
  e.location = entries.lower_bound("eval")->second.location + ": " + path + ".eval";
  e.path = o.get_string("eval.path", "");
  e.from_stage = o.get_string("eval.from_stage", "");
  e.prompts = o.get_string("eval.prompts", "");
  e.every = o.get_int("eval.every", 0, 0);
  if (!e.from_stage.empty()) {
    if (!e.path.empty()) o.fail("eval.from_stage", "either eval.path or eval.from_stage, not both", "both");
    if (std::find(earlier_stages.begin(), earlier_stages.end(), e.from_stage) == earlier_stages.end()) {
      o.fail("eval.from_stage", "the name of an earlier `pairs` stage", "'" + e.from_stage + "'");
    }
  }
  const bool pairs = !e.path.empty() || !e.from_stage.empty();
  if (!pairs && e.prompts.empty()) {
    o.fail("eval",
           "eval.path or eval.from_stage (held-out pairs) or eval.prompts (text prompts to generate from and grade)",
           "neither");
  }
  e.grader = read_grader_options(o, "eval.grader");
  e.sampling = SamplingOptions::read(o, "eval.sampling");
  e.max_prompts = o.get_int("eval.max_prompts", 0, 0);
  e.max_pairs = o.get_int("eval.max_pairs", 0, 0);
  if (!pairs && o.has("eval.max_pairs")) {
    o.fail("eval.max_pairs", "eval.path or eval.from_stage (held-out pairs)", "neither");
  }
  e.sample_kl = o.get_bool("eval.sample_kl", e.sample_kl);
  e.save_samples = o.get_bool("eval.save_samples", e.save_samples);
  if (o.has("eval.correct_at")) e.correct_at = o.get_double("eval.correct_at", 0);
  std::vector<double> ks = o.get_double_list("eval.pass_at", {});
  if (ks.empty()) {  // pass@1, and pass@n when there are several samples
    ks.push_back(1);
    if (e.sampling.n > 1) ks.push_back(static_cast<double>(e.sampling.n));
  }
  for (double k : ks) {
    if (k != static_cast<double>(static_cast<int64_t>(k)) || k < 1 || k > static_cast<double>(e.sampling.n)) {
      std::ostringstream got;
      got << k;
      o.fail("eval.pass_at", "whole numbers from 1 to eval.sampling.n (" + std::to_string(e.sampling.n) + ")", got.str());
    }
    e.pass_at.push_back(static_cast<int64_t>(k));
  }
  const bool generation = !e.prompts.empty();
  if (generation && e.grader.plugin.empty()) {
    o.fail("eval.grader", "a grader plugin for eval.prompts (eval.grader: math or {plugin: math, ...})", "nothing");
  }
  if (!generation) {  // options of the generation part without prompts to use them on
    for (const std::string key : {"eval.grader", "eval.sampling", "eval.pass_at", "eval.correct_at", "eval.max_prompts",
                                  "eval.sample_kl", "eval.save_samples"}) {
      if (has_prefix(o, key)) o.fail(key, "eval.prompts (it applies to generated answers)", "no eval.prompts");
    }
  }
  return e;
}

StageOptions read_stage(const YAML::Node& node, const std::string& file, size_t index,
                        const std::vector<std::string>& earlier_stages, bool experiment_tensorboard) {
  const std::string path = "stages[" + std::to_string(index) + "]";
  if (!node.IsMap()) {
    throw std::invalid_argument(node_location(node, file) + ": " + path +
                                ": expected a map with name, kind, data, optimizer, ...");
  }
  PluginOptions o = options_from_yaml(node, file, path);
  StageOptions stage;
  stage.location = node_location(node, file);
  stage.name = o.require_string("name");
  check_folder_name(o, "name", stage.name);
  std::vector<std::string> kinds;
  for (const auto& spec : stage_kinds()) kinds.push_back(spec.name);
  std::string expected_kinds;
  for (size_t k = 0; k < kinds.size(); ++k) {
    expected_kinds += (k == 0 ? "" : k + 1 == kinds.size() ? " or " : ", ") + kinds[k];
  }
  if (!o.has("kind")) o.fail("kind", expected_kinds, "nothing (the key is required)");
  stage.kind = o.get_choice("kind", "", kinds);
  const StageKindSpec& spec = *find_stage_kind(stage.kind);
  stage.data.from_stage = o.get_string("data.from_stage", "");
  if (stage.data.from_stage.empty()) {
    stage.data.path = o.require_string("data.path");
  } else {
    if (o.has("data.path")) o.fail("data.from_stage", "either data.path or data.from_stage, not both", "both");
    if (std::find(earlier_stages.begin(), earlier_stages.end(), stage.data.from_stage) == earlier_stages.end()) {
      o.fail("data.from_stage", "the name of an earlier `pairs` stage", "'" + stage.data.from_stage + "'");
    }
  }
  stage.data.shuffle = o.get_bool("data.shuffle", stage.data.shuffle);
  stage.data.max_records = o.get_int("data.max_records", 0, 0);
  stage.data.max_prompt_length = o.get_int("data.max_prompt_length", 0, 0);
  stage.data.max_length = o.get_int("data.max_length", 0, 0);
  // Offline responses (sft, pairwise) can be cut to TRL's max_completion_length; ppo reads the
  // alias as its max_new_tokens (ppo.cpp), and a pairs stage generates (sampling.max_new_tokens).
  if (stage.kind == "sft" || stage.kind == "pairwise") {
    stage.data.max_completion_length =
        o.get_int(trl_key(o, "data.max_completion_length", "max_completion_length"), 0, 0);
  }
  stage.data.skip_bad_rows = o.get_bool("data.skip_bad_rows", false);
  stage.data.all_assistant_turns = o.get_bool("data.all_assistant_turns", false);
  const std::string packing_key = trl_key(o, "data.packing", "packing");
  if (o.has(packing_key) && stage.kind != "sft") {
    o.fail(packing_key, "packing only in an sft stage (the other kinds pad their rows)",
           "a '" + stage.kind + "' stage");
  }
  stage.data.packing = o.get_bool(packing_key, false);
  stage.optimizer = read_optimizer(o);
  const std::string steps_key = trl_key(o, "steps", "max_steps");
  stage.steps = o.get_int(steps_key, 0, 0);
  stage.epochs = o.get_int("epochs", 0, 0);
  const std::string batch_key = trl_key(o, "batch_size", "per_device_train_batch_size");
  if (batch_key == "batch_size") {
    stage.batch_size = o.get_int("batch_size", stage.batch_size, 1, 1 << 20);
  } else {  // per rank: batch_size = this * WORLD_SIZE (ExperimentRunner)
    stage.per_device_batch_size = o.get_int(batch_key, 1, 1, 1 << 20);
    stage.batch_size = stage.per_device_batch_size;
  }
  stage.grad_accum = o.get_int(trl_key(o, "grad_accum", "gradient_accumulation_steps"), stage.grad_accum, 1, 1 << 20);
  stage.log_every = o.get_int(trl_key(o, "log_every", "logging_steps"), stage.log_every, 1);
  stage.checkpoint_every = o.get_int(trl_key(o, "checkpoint_every", "save_steps"), 0, 0);
  stage.tensorboard = read_report_to(o, experiment_tensorboard);
  // Weights from a checkpoint: an earlier stage's name or a folder (a path with '/').
  auto read_weights_source = [&](const std::string& key, std::string& value, std::string& where) {
    value = o.get_string(key, "");
    if (value.empty()) return;
    where = o.entries().at(key).location + ": " + path + "." + key;
    if (value.find('/') == std::string::npos &&
        std::find(earlier_stages.begin(), earlier_stages.end(), value) == earlier_stages.end()) {
      o.fail(key, "the name of an earlier stage or a checkpoint folder (a path with '/', e.g. "
                  "runs/sft-base/checkpoints/sft)", "'" + value + "'");
    }
  };
  read_weights_source("init_from", stage.init_from, stage.init_from_key);
  read_weights_source("reference_from", stage.reference_from, stage.reference_from_key);
  if (spec.needs_loss || o.has("loss.plugin")) {
    stage.loss_plugin = o.require_string("loss.plugin");
    stage.loss = sub_options(o, "loss");
    (void)stage.loss.get_string("plugin", "");  // consumed here, not by the plugin
    mark_read(o, "loss");
  } else {
    stage.loss_plugin = spec.default_loss;
    stage.loss = PluginOptions(path + ".loss", stage.location);
  }
  // export: true, or a block with its settings (the folder is RUN_DIR/hf/<stage>).
  if (o.has("export")) {
    stage.export_hf = o.get_bool("export", false);
    stage.export_key = o.entries().at("export").location + ": " + path + ".export";
  }
  if (o.has("export.dtype") || o.has("export.max_shard_size")) {
    stage.export_hf = true;
    stage.export_key = o.entries().at(o.has("export.dtype") ? "export.dtype" : "export.max_shard_size").location +
                       ": " + path + ".export";
    stage.export_dtype = o.get_choice("export.dtype", stage.export_dtype, {"float32", "bfloat16", "float16"});
    const std::string size = o.get_string("export.max_shard_size", "2GB");
    try {
      stage.export_max_shard_size = cli::parse_byte_size(size, "max_shard_size");
    } catch (const std::invalid_argument&) {
      o.fail("export.max_shard_size", "a size such as 2GB, 500MB or a byte count", "'" + size + "'");
    }
  }
  stage.grader = read_grader_options(o, "grader");
  stage.eval = read_eval(o, path, earlier_stages);
  if (o.has("max_completion_length") && stage.kind == "pairs") {
    o.fail("max_completion_length", "an sft, pairwise or ppo stage (a pairs stage generates: its length "
           "limit is sampling.max_new_tokens)", "kind " + stage.kind);
  }
  if (spec.read_options) spec.read_options(o, stage, earlier_stages);
  if (!stage.reference_from.empty() && (!o.known_keys().count("reference") || stage.reference == "none")) {
    o.fail("reference_from", "a stage with a frozen reference (kind pairwise or ppo, reference: frozen_copy)",
           "kind " + stage.kind + (stage.reference == "none" ? ", reference: none" : ""));
  }
  o.reject_unread();  // before the checks across fields: a misspelt key explains them
  if (stage.steps == 0 && stage.epochs == 0) {
    o.fail(steps_key, steps_key + " > 0 or epochs > 0", "neither");
  }
  if (stage.steps > 0 && stage.epochs > 0) {
    o.fail("epochs", "either " + steps_key + " or epochs, not both", "both");
  }
  return stage;
}

ExperimentConfig parse_node(YAML::Node root, const std::string& file,
                            const std::vector<std::string>& overrides) {
  if (!root || !root.IsMap()) {
    throw std::invalid_argument(file + ": expected a YAML map with name, model and stages");
  }
  for (const auto& assignment : overrides) apply_override(root, assignment);

  ExperimentConfig config;
  config.source = file;
  PluginOptions o = options_from_yaml(root, file, "");
  config.name = o.get_string("name", config.name);
  check_folder_name(o, "name", config.name);
  config.seed = o.get_int("seed", 0, 0);
  config.threads = o.get_int("threads", 0, 0, 1024);
  config.direct_backward = o.get_bool("direct_backward", config.direct_backward);
  config.plugin_paths = o.get_string_list("plugin_paths", {});
  config.distributed.backend = o.get_choice("distributed.backend", config.distributed.backend, {"auto", "gloo", "nccl"});
  config.distributed.timeout_s = o.get_double("distributed.timeout_s", config.distributed.timeout_s, 0, 1e7, /*min_exclusive=*/true);
  config.distributed.bucket_mb = o.get_double("distributed.bucket_mb", config.distributed.bucket_mb, 0, 1e6, /*min_exclusive=*/true);
  // sweep_point: {axis path: value, ...}, written by `prefengine run` into a sweep's child configs
  for (const auto& [key, entry] : o.entries()) {
    const std::string head = "sweep_point.";
    if (key.compare(0, head.size(), head) != 0) continue;
    std::string text = entry.is_list ? "[list]" : entry.scalar;
    if (entry.is_list) {
      text = "[";
      for (size_t i = 0; i < entry.list.size(); ++i) text += (i ? ", " : "") + entry.list[i];
      text += "]";
    }
    config.sweep_point += (config.sweep_point.empty() ? "" : ", ") + key.substr(head.size()) + "=" + text;
  }
  mark_read(o, "sweep_point");
  // `sweep` and `seeds` are expanded by `prefengine run` (engine/sweep); here the file is read
  // as its base point, so `validate` checks it.
  mark_read(o, "sweep");
  (void)o.get_string_list("seeds", {});
  config.model_plugin = o.require_string("model.plugin");
  config.model = sub_options(o, "model");
  (void)config.model.get_string("plugin", "");
  mark_read(o, "model");
  for (const char* key : {"tokenizer.kind", "tokenizer.path", "tokenizer.chat_template", "tokenizer.special_tokens",
                          "tokenizer.enable_thinking"}) {
    config.has_tokenizer = config.has_tokenizer || o.has(key);
  }
  config.tokenizer.kind = o.get_choice("tokenizer.kind", "byte", {"byte", "sentencepiece", "hf_bpe", "auto"});
  config.tokenizer.path = o.get_string("tokenizer.path", "");
  config.tokenizer.special_tokens = o.get_string_list("tokenizer.special_tokens", {});
  config.chat_template = o.get_choice("tokenizer.chat_template", "auto", {"auto", "default", "chatml", "llama3"});
  if (o.has("tokenizer.enable_thinking")) config.enable_thinking = o.get_bool("tokenizer.enable_thinking", true);
  config.reference_cache = o.get_string("reference_cache", "");
  config.tensorboard = read_report_to(o, false);

  if (!root["stages"]) {
    o.fail("stages", "a list of stages", "nothing (the key is required)");
  }
  const YAML::Node stages = root["stages"];
  (void)o.get_string_list("stages", {});
  if (!stages.IsSequence() || stages.size() == 0) {
    throw std::invalid_argument(node_location(stages, file) +
                                ": stages: expected a non-empty list of stages");
  }
  o.reject_unread();
  std::set<std::string> names;
  for (size_t i = 0; i < stages.size(); ++i) {
    std::vector<std::string> earlier;
    for (const auto& s : config.stages) earlier.push_back(s.name);
    StageOptions stage = read_stage(stages[i], file, i, earlier, config.tensorboard);
    if (!names.insert(stage.name).second) {
      throw std::invalid_argument(stage.location + ": stages[" + std::to_string(i) +
                                  "].name: expected a unique stage name, got '" + stage.name +
                                  "' twice");
    }
    for (const auto& [key, from] : {std::pair<const char*, const std::string*>{"data.from_stage", &stage.data.from_stage},
                                    {"eval.from_stage", &stage.eval.from_stage}}) {
      for (const auto& earlier_stage : config.stages) {
        if (!from->empty() && earlier_stage.name == *from && earlier_stage.kind != "pairs") {
          throw std::invalid_argument(stage.location + ": stages[" + std::to_string(i) + "]." + key +
                                      ": expected an earlier `pairs` stage, got '" + *from + "' (kind " +
                                      earlier_stage.kind + ")");
        }
      }
    }
    config.stages.push_back(std::move(stage));
  }
  YAML::Emitter emitter;
  emitter << root;
  config.resolved_yaml = std::string(emitter.c_str()) + "\n";
  config.validate();
  return config;
}

}  // namespace

std::string trl_key(PluginOptions& o, const std::string& native, const std::string& alias) {
  if (!o.has(alias)) return native;
  if (o.has(native)) {
    o.fail(alias, "either " + alias + " (TRL's name) or " + native + " (the same setting), not both",
           "both (" + native + " at " + o.entries().at(native).location + ")");
  }
  return alias;
}

void OptimizerOptions::validate() const {
  if (lr < 0) throw std::invalid_argument("optimizer.lr: expected >= 0, got " + std::to_string(lr));
  if (beta1 < 0 || beta1 >= 1) throw std::invalid_argument("optimizer.beta1: expected in [0, 1)");
  if (beta2 < 0 || beta2 >= 1) throw std::invalid_argument("optimizer.beta2: expected in [0, 1)");
}

void DataOptions::validate() const {
  if (path.empty() && from_stage.empty()) throw std::invalid_argument("data.path: expected a file path, got ''");
  if (max_length > 0 && max_prompt_length >= max_length) {
    throw std::invalid_argument("data.max_prompt_length: expected < max_length (" + std::to_string(max_length) +
                                "), got " + std::to_string(max_prompt_length));
  }
}

GraderOptions read_grader_options(PluginOptions& o, const std::string& key) {
  GraderOptions g;
  if (o.has(key)) {  // key: NAME
    g.plugin = o.get_string(key, "");
    if (g.plugin.empty()) o.fail(key, "a grader plugin's name (e.g. math) or {plugin: NAME, ...}", "''");
    g.options = PluginOptions(o.path().empty() ? key : o.path() + "." + key, o.location());
  } else if (has_prefix(o, key)) {  // key: {plugin: NAME, ...options}
    g.plugin = o.require_string(key + ".plugin");
    g.options = sub_options(o, key);
    (void)g.options.get_string("plugin", "");  // consumed here, not by the grader
    mark_read(o, key);
  }
  return g;
}

void StageOptions::validate() const {
  try {
    optimizer.validate();
    data.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(location + ": stage '" + name + "': " + e.what());
  }
}

void ExperimentConfig::validate() const {
  distributed.validate();
  for (const auto& stage : stages) stage.validate();
  if (has_tokenizer) tokenizer.validate();
}

ExperimentConfig parse_experiment(const std::string& yaml_text, const std::string& source,
                                  const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw std::invalid_argument(source + ":" + std::to_string(e.mark.line + 1) + ":" +
                                std::to_string(e.mark.column + 1) + ": invalid YAML: " + e.msg);
  }
  check_yaml_document(root, source);
  return parse_node(root, source, overrides);
}

ExperimentConfig load_experiment(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot open the experiment file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_experiment(buffer.str(), path, overrides);
}

}  // namespace prefengine
