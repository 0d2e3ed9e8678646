#include "engine/cli/export_command.h"

#include <cctype>
#include <cmath>
#include <iostream>
#include <memory>
#include <regex>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/data/chat_template.h"
#include "engine/data/tokenizer.h"
#include "engine/metrics/logging.h"
#include "engine/plugins/plugin_factory.h"
#include "engine/train/checkpoint.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"

namespace prefengine::cli {
namespace {

namespace po = boost::program_options;
namespace fs = boost::filesystem;

const char* kSynopsis =
    "RUN_DIR/checkpoints/NAME --output DIR [--dtype float32|bfloat16|float16] [--max-shard-size 2GB]";

// A Jinja string literal for `text` ('...', with backslash escapes), so that the template's
// literal text is untouched by transformers' trim_blocks/lstrip_blocks.
std::string jinja_literal(const std::string& text) {
  std::string out = "'";
  for (const char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\'': out += "\\'"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += c;
    }
  }
  return out + "'";
}

}  // namespace

// The experiment's chat template (a preset: each role's text is prefix + content + suffix) as
// the Jinja template transformers' apply_chat_template renders to the same text; with
// `bos`, the BOS token first (the engine's prompts start with it).
std::string chat_template_as_jinja(const ChatTemplate& chat, bool bos) {
  const std::string mark = "\x01\x02prefengine-content\x02\x01";
  std::string branches;
  for (const char* role : {"system", "user", "assistant"}) {
    std::string text;
    try {
      text = chat.apply({ChatMessage{role, mark}}, false);
    } catch (const std::invalid_argument&) {
      continue;  // the template does not know this role
    }
    const size_t at = text.find(mark);
    if (at == std::string::npos) continue;
    branches += std::string(branches.empty() ? "{%- if" : "{%- elif") + " message['role'] == '" + role +
                "' -%}{{ " + jinja_literal(text.substr(0, at)) + " + message['content'] + " +
                jinja_literal(text.substr(at + mark.size())) + " }}";
  }
  std::string out = bos ? "{{- bos_token -}}" : "";
  out += "{%- for message in messages -%}" + branches +
         "{%- else -%}{{ raise_exception('Unknown role: ' + message['role']) }}{%- endif -%}"
         "{%- endfor -%}{%- if add_generation_prompt -%}{{ " +
         jinja_literal(chat.generation_prompt()) + " }}{%- endif -%}";
  return out;
}

void export_model_to_hf(const ExperimentConfig& config, const Model& model, const std::string& output,
                        const HfExportSettings& settings, const std::string& what) {
  const auto* exportable = dynamic_cast<const HfExportable*>(&model);
  if (!exportable) {
    throw std::invalid_argument("export: " + what + ": the model ('" + config.model_plugin +
                                "' plugin) cannot be written in Hugging Face format; only the transformer "
                                "plugin's models (Llama/Qwen2/Mistral layout) can");
  }
  nlohmann::json options = {{"dtype", settings.dtype}, {"max_shard_size", settings.max_shard_size}};
  if (config.has_tokenizer) {
    const auto tokenizer = make_tokenizer(config.tokenizer);
    const bool add_bos = true;  // data.add_bos's default: the engine's prompts start with BOS
    options["tokenizer"] = {
        {"kind", config.tokenizer.kind},
        {"path", config.tokenizer.path},
        {"special_tokens", config.tokenizer.special_tokens},
        {"add_bos", add_bos},
        {"bos_id", tokenizer->bos_id()},
        {"eos_id", tokenizer->eos_id()},
        {"pad_id", tokenizer->pad_id()},
        // Used only where the tokenizer's files bring no template of their own; `auto` (the file's
        // template, else the default preset) then means the default preset.
        {"chat_template",
         chat_template_as_jinja(ChatTemplate::preset(config.chat_template == "auto" ? "default" : config.chat_template),
                                add_bos && tokenizer->bos_id() >= 0)}};
  }
  const nlohmann::json result = nlohmann::json::parse(exportable->export_hugging_face(output, options.dump()));
  for (const auto& name : result.value("dropped", nlohmann::json::array())) {
    spdlog::warn("export: {} not written (the scalar head has no place in a *ForCausalLM folder)",
                 name.get<std::string>());
  }
  spdlog::info("export: {} -> {}: {} files, {:.1f} MB of {} weights", what, output, result["files"].size(),
               result["total_size"].get<double>() / 1e6, settings.dtype);
}

void export_checkpoint_to_hf(const ExperimentConfig& config, const std::string& checkpoint,
                             const std::string& output, const HfExportSettings& settings) {
  if (!fs::exists(fs::path(checkpoint) / "model.pt")) {
    throw std::invalid_argument("export: " + checkpoint + " is not a checkpoint (no model.pt)");
  }
  (void)verify_checkpoint(checkpoint);
  const PluginLoader loader(config.plugin_paths);
  std::shared_ptr<Model> model = create_model(loader, config);
  if (!dynamic_cast<const HfExportable*>(model.get())) {  // before reading the weights
    export_model_to_hf(config, *model, output, settings, checkpoint);
  }
  load_model_weights(checkpoint, *model);
  export_model_to_hf(config, *model, output, settings, checkpoint);
}

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  static const std::regex pattern(R"(^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*$)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(text, m, pattern)) {
    throw std::invalid_argument(what + ": expected a size such as 2GB, 500MB, 64KiB or a byte count, got '" +
                                text + "'");
  }
  const double number = std::stod(m[1].str());
  std::string unit = m[2].str();
  for (auto& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  double scale = 1;
  if (!unit.empty() && unit != "B") {
    const bool binary = unit.size() == 3;  // KIB, MIB, ...
    const double power = static_cast<double>(std::string("KMGT").find(unit[0]) + 1);
    scale = std::pow(binary ? 1024.0 : 1000.0, power);
  }
  const double bytes = number * scale;
  if (!(bytes >= 1) || bytes > 9e18) {
    throw std::invalid_argument(what + ": the size must be at least 1 byte, got '" + text + "'");
  }
  return static_cast<int64_t>(bytes);
}

void export_run_checkpoint_to_hf(const std::string& checkpoint, const std::string& output,
                                 const HfExportSettings& settings) {
  std::string dir = checkpoint;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const fs::path run = fs::path(dir).parent_path().parent_path();
  const fs::path config_path = (run.empty() ? fs::path(".") : run) / "config.yaml";
  if (fs::path(dir).parent_path().filename() != "checkpoints" || !fs::is_regular_file(config_path)) {
    throw std::invalid_argument("export: " + checkpoint +
                                " is not RUN_DIR/checkpoints/NAME of a run (no RUN_DIR/config.yaml next to it)");
  }
  const ExperimentConfig config = load_experiment(config_path.string());
  export_checkpoint_to_hf(config, dir, output, settings);
}

int export_command(const std::vector<std::string>& args) {
  po::options_description options("export");
  options.add_options()("checkpoint", po::value<std::string>(), "RUN_DIR/checkpoints/NAME")(
      "output,o", po::value<std::string>()->required(), "the Hugging Face folder to write")(
      "dtype", po::value<std::string>()->default_value("float32"), "weights: float32, bfloat16 or float16")(
      "max-shard-size", po::value<std::string>()->default_value("2GB"),
      "largest safetensors file (2GB = 2e9 bytes, GiB = 2^30; bytes when no unit) before sharding")(
      "help,h", "show this help")("log-level", po::value<std::string>()->default_value("info"),
                                  "trace, debug, info, warn, error or off");
  po::positional_options_description positional;
  positional.add("checkpoint", 1);
  po::variables_map vars;
  po::store(po::command_line_parser(args).options(options).positional(positional).run(), vars);
  if (vars.count("help")) {
    std::cout << "usage: prefengine export " << kSynopsis << "\n\n" << options << "\n";
    return 0;
  }
  po::notify(vars);
  setup_logging(vars["log-level"].as<std::string>());
  if (!vars.count("checkpoint")) throw std::invalid_argument("export: give the checkpoint folder RUN_DIR/checkpoints/NAME");
  HfExportSettings settings;
  settings.dtype = vars["dtype"].as<std::string>();
  if (settings.dtype != "float32" && settings.dtype != "bfloat16" && settings.dtype != "float16") {
    throw std::invalid_argument("export: --dtype must be float32, bfloat16 or float16, got '" + settings.dtype + "'");
  }
  settings.max_shard_size =
      parse_byte_size(vars["max-shard-size"].as<std::string>(), "export: --max-shard-size");
  const std::string output = vars["output"].as<std::string>();
  export_run_checkpoint_to_hf(vars["checkpoint"].as<std::string>(), output, settings);
  std::cout << "wrote " << output << "\n";
  return 0;
}

}  // namespace prefengine::cli
