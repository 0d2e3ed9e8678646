#include "engine/cli/generate_command.h"
#include "engine/cli/commands.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <thread>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <boost/filesystem.hpp>
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/config/experiment_config.h"
#include "engine/data/stage_data.h"
#include "engine/data/text_dataset.h"
#include "engine/data/tokenizer.h"
#include "engine/generation/generator.h"
#include "engine/loop/sampling.h"
#include "engine/metrics/logging.h"
#include "engine/plugins/plugin_factory.h"
#include "prefengine/plugin_loader.h"
#include "engine/train/checkpoint.h"
#include "prefengine/model.h"

namespace prefengine::cli {
namespace {

namespace po = boost::program_options;
namespace fs = boost::filesystem;

const char* kSynopsis =
    "(--model-config EXP.yaml | --checkpoint RUN_DIR/checkpoints/STAGE) --input PROMPTS.jsonl "
    "--output OUT.jsonl [--n 4] [--max-new-tokens 64] [--temperature 1] [--top-k 0] [--top-p 1] [--seed 0]";

// Refuses, before anything is allocated, a generation whose KV cache and logits would not fit in
// half of MemAvailable (generation_memory_bytes: the largest batch, the longest prompt).
void check_generation_fits(const Model& model, const std::vector<PromptRecord>& prompts, int64_t n,
                           int64_t batch_prompts, int64_t max_new_tokens) {
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.prompt.size()));
  const int64_t batch = std::min<int64_t>(batch_prompts, static_cast<int64_t>(prompts.size()));
  const double rows = static_cast<double>(batch) * static_cast<double>(n);
  const double needed = generation_memory_bytes(model, 1, longest, max_new_tokens) * rows;
  const double available = available_memory_bytes();
  if (available < 0 || needed <= 0.5 * available) return;
  const auto gib = [](double bytes) {
    char text[64];
    std::snprintf(text, sizeof text, "%.1f", bytes / (1024.0 * 1024.0 * 1024.0));
    return std::string(text);
  };
  throw std::invalid_argument("generate: --n " + std::to_string(n) + " \u00d7 --max-new-tokens " +
                              std::to_string(max_new_tokens) + " needs about " + gib(needed) +
                              " GiB for the KV cache and logits (" + std::to_string(batch) + " prompts a batch, up to " +
                              std::to_string(longest) + " prompt tokens); this machine has " + gib(available) +
                              " GiB available (MemAvailable in /proc/meminfo) and generate uses at most half; "
                              "lower --n/--max-new-tokens/--batch-size");
}

}  // namespace

int generate_command(const std::vector<std::string>& args) {
  po::options_description options("generate");
  options.add_options()("model-config", po::value<std::string>(), "an experiment file: its model and tokenizer")(
      "checkpoint", po::value<std::string>(), "a run's checkpoint directory (RUN_DIR/checkpoints/<stage>)")(
      "input,i", po::value<std::string>()->required(), "JSONL prompts ({\"prompt\": str or messages})")(
      "output,o", po::value<std::string>()->required(), "JSONL out: one line per prompt with its completions")(
      "n", po::value<int64_t>()->default_value(1), "samples per prompt")(
      "max-new-tokens", po::value<int64_t>()->default_value(64), "most tokens generated per sample")(
      "temperature", po::value<double>()->default_value(1.0), "softmax temperature; 0 = greedy")(
      "top-k", po::value<int64_t>()->default_value(0), "sample among the k most likely tokens; 0 = all")(
      "top-p", po::value<double>()->default_value(1.0), "nucleus sampling mass; 1 = all")(
      "seed", po::value<uint64_t>()->default_value(0), "seeds sampling")(
      "batch-size", po::value<int64_t>()->default_value(8), "prompts per generation batch")(
      "threads", po::value<int64_t>()->default_value(0), "intra-op threads; 0 = the experiment's setting")(
      "help,h", "show this help")("log-level", po::value<std::string>()->default_value("info"),
                                  "trace, debug, info, warn, error or off");
  po::variables_map vars;
  po::store(po::command_line_parser(args).options(options).run(), vars);
  if (vars.count("help")) {
    std::cout << "usage: prefengine generate " << kSynopsis << "\n\n" << options << "\n";
    return 0;
  }
  po::notify(vars);
  setup_logging(vars["log-level"].as<std::string>());
  if (vars.count("model-config") == vars.count("checkpoint")) {
    throw std::invalid_argument("generate: give exactly one of --model-config EXP.yaml and --checkpoint DIR");
  }
  const int64_t n = vars["n"].as<int64_t>();
  const int64_t batch_prompts = vars["batch-size"].as<int64_t>();
  if (n < 1) throw std::invalid_argument("generate: --n must be >= 1, got " + std::to_string(n));
  if (batch_prompts < 1) throw std::invalid_argument("generate: --batch-size must be >= 1");

  std::string checkpoint;
  ExperimentConfig config;
  if (vars.count("checkpoint")) {
    checkpoint = vars["checkpoint"].as<std::string>();
    const fs::path run_dir = fs::path(checkpoint).parent_path().parent_path();
    if (!fs::exists(fs::path(checkpoint) / "model.pt")) {
      throw std::invalid_argument("generate: " + checkpoint + " is not a checkpoint (no model.pt)");
    }
    config = load_experiment((run_dir / "config.yaml").string());
  } else {
    config = load_experiment(vars["model-config"].as<std::string>());
  }
  const int64_t threads = vars["threads"].as<int64_t>() > 0 ? vars["threads"].as<int64_t>() : config.threads;
  at::set_num_threads(static_cast<int>(threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency())));
  at::manual_seed(static_cast<uint64_t>(config.seed));
  const auto tokenizer = make_experiment_tokenizer(config, "generate");
  const ChatTemplate chat_template = make_experiment_chat_template(config);
  const PluginLoader loader(config.plugin_paths);
  std::shared_ptr<Model> model = create_model(loader, config);
  if (!checkpoint.empty()) load_model_weights(checkpoint, *model);
  model->eval();

  SamplingOptions sampling;
  sampling.n = n;
  sampling.max_new_tokens = vars["max-new-tokens"].as<int64_t>();
  sampling.temperature = vars["temperature"].as<double>();
  sampling.top_k = vars["top-k"].as<int64_t>();
  sampling.top_p = vars["top-p"].as<double>();
  sampling.batch_size = batch_prompts;
  const int64_t pad_id = tokenizer->pad_id() >= 0 ? tokenizer->pad_id() : 0;
  (void)generation_options(sampling, tokenizer->eos_id(), pad_id);  // bad options are refused before the prompts are read
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(vars["seed"].as<uint64_t>());

  TextDatasetOptions input;
  input.path = vars["input"].as<std::string>();
  const auto prompts = read_prompt_jsonl(input, *tokenizer, chat_template).records;
  const std::string output_path = vars["output"].as<std::string>();
  refuse_output_over_input(input.path, output_path, "--output");
  check_generation_fits(*model, prompts, n, batch_prompts, sampling.max_new_tokens);
  std::ofstream out(output_path, std::ios::trunc);
  if (!out) throw std::runtime_error(output_path + ": cannot write");
  spdlog::info("generate: {} prompts x {} samples, up to {} new tokens", prompts.size(), n, sampling.max_new_tokens);
  std::vector<const PromptRecord*> batch;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(batch_prompts)) {
    // One generation batch at a time, written as soon as it is sampled.
    const size_t last = std::min(prompts.size(), first + static_cast<size_t>(batch_prompts));
    batch.clear();
    for (size_t p = first; p < last; ++p) batch.push_back(&prompts[p]);
    const std::vector<std::vector<int64_t>> completions =
        sample_completions(*model, batch, sampling, tokenizer->eos_id(), pad_id, generator);
    for (size_t p = first; p < last; ++p) {
      nlohmann::json line = {{"prompt", prompts[p].prompt_text}, {"source", prompts[p].source}};
      if (prompts[p].reference) line["reference"] = *prompts[p].reference;
      line["completions"] = nlohmann::json::array();
      for (int64_t s = 0; s < n; ++s) {
        const size_t row = (p - first) * static_cast<size_t>(n) + static_cast<size_t>(s);
        line["completions"].push_back(tokenizer->decode(completions[row]));
      }
      // A byte-level model can sample invalid UTF-8: such bytes are written as U+FFFD.
      out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
  }
  if (!out) throw std::runtime_error(output_path + ": cannot write");
  std::cout << "wrote " << prompts.size() << " prompts x " << n << " samples to " << output_path << "\n";
  return 0;
}

}  // namespace prefengine::cli
