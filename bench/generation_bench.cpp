// The engine's side of bench/generation_bench.py: KV-cache generation with the transformer plugin's
// core through prefengine::generate, timed around the generate() call only (prefill + decode, the
// span bench/python/generate.py times on its side).
//
//   generation_bench write DIR VOCAB HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS TIED SEED
//       writes a model with random weights (normal, sd 0.08; norm gains 1) as DIR/config.json +
//       DIR/model.safetensors (save_pretrained: the Hugging Face names), for both sides to load;
//   generation_bench run DIR PROMPTS BATCH NEW_TOKENS TEMPERATURE REPS THREADS [IDS_OUT [DECODE]]
//       loads DIR, left-pads the first BATCH prompts of PROMPTS (one prompt a line, token ids
//       separated by spaces; pad id 0), runs one warm-up generation and REPS timed ones (greedy
//       when TEMPERATURE is 0, else sampling from a generator seeded with 0 before every run) and
//       prints one JSON line {"seconds": [...], "cpu_seconds": [...], "new_tokens": N, "ops": K}
//       (wall and process CPU time of each timed run; K: the ATen operators one more, untimed
//       generation enters, counted with a RecordFunction callback); IDS_OUT gets the generated ids of
//       the last run, one row a line; DECODE `ops` turns the fused one-token step off
//       (the model option fused_decode: false), `fused` (the default) leaves it on.
//
// Like `prefengine`, it restarts itself once with the engine's runtime settings.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include "engine/cli/runtime_defaults.h"
#include "engine/generation/generator.h"
#include "transformer.h"

using namespace prefengine::plugins::model;

namespace {

int write_model(int argc, char** argv) {
  if (argc != 11) {
    std::fprintf(stderr, "usage: generation_bench write DIR VOCAB HIDDEN INTERMEDIATE LAYERS HEADS KV_HEADS TIED SEED\n");
    return 2;
  }
  TransformerConfig c;
  c.vocab_size = std::atoll(argv[3]);
  c.hidden_size = std::atoll(argv[4]);
  c.intermediate_size = std::atoll(argv[5]);
  c.num_hidden_layers = std::atoll(argv[6]);
  c.num_attention_heads = std::atoll(argv[7]);
  c.num_key_value_heads = std::atoll(argv[8]);
  c.tie_word_embeddings = std::atoi(argv[9]) != 0;
  c.max_position_embeddings = 512;
  TransformerModel model(c);
  at::manual_seed(std::atoll(argv[10]));
  {
    at::NoGradGuard no_grad;
    for (auto& p : model.named_parameters()) {
      if (p.key().find("norm") != std::string::npos) {
        p.value().fill_(1.0);
      } else {
        p.value().normal_(0.0, 0.08);
      }
    }
  }
  model.save_pretrained(argv[2]);
  return 0;
}

// CPU time of the whole process (every thread), in seconds.
double process_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return double(now.tv_sec) + 1e-9 * double(now.tv_nsec);
}

std::vector<std::vector<int64_t>> read_prompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::vector<std::vector<int64_t>> prompts;
  std::string line;
  int line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    std::istringstream fields(line);
    std::vector<int64_t> ids;
    int64_t id = 0;
    while (fields >> id) ids.push_back(id);
    if (!fields.eof()) {
      throw std::invalid_argument(path + ":" + std::to_string(line_number) + ": expected token ids separated by spaces");
    }
    if (!ids.empty()) prompts.push_back(ids);
  }
  return prompts;
}

int run(int argc, char** argv) {
  const std::string decode = argc == 11 ? argv[10] : "fused";
  if ((argc != 9 && argc != 10 && argc != 11) || (decode != "fused" && decode != "ops")) {
    std::fprintf(stderr,
                 "usage: generation_bench run DIR PROMPTS BATCH NEW_TOKENS TEMPERATURE REPS THREADS [IDS_OUT [fused|ops]]\n");
    return 2;
  }
  const std::string dir = argv[2];
  const int64_t batch = std::atoll(argv[4]);
  const int64_t new_tokens = std::atoll(argv[5]);
  const double temperature = std::atof(argv[6]);
  const int reps = std::atoi(argv[7]);
  at::set_num_threads(std::atoi(argv[8]));

  TransformerModel model(TransformerConfig::from_json_file(dir + "/config.json"));
  model.load_pretrained(dir);
  model.eval();
  model.set_fused_decode(decode == "fused");
  const auto prompts = read_prompts(argv[3]);
  if (static_cast<int64_t>(prompts.size()) < batch) {
    throw std::invalid_argument(std::string(argv[3]) + ": " + std::to_string(prompts.size()) +
                                " prompts, the batch needs " + std::to_string(batch));
  }
  std::vector<const std::vector<int64_t>*> rows;
  for (int64_t i = 0; i < batch; ++i) rows.push_back(&prompts[static_cast<size_t>(i)]);
  const prefengine::PromptBatch padded = prefengine::left_pad_prompts(rows, 0);

  prefengine::GenerationOptions options;
  options.max_new_tokens = new_tokens;
  options.temperature = temperature;
  prefengine::GenerationResult result;
  std::vector<double> seconds, cpu_seconds;
  for (int i = 0; i <= reps; ++i) {
    at::Generator generator = at::detail::createCPUGenerator(0);
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    result = prefengine::generate(model, padded.input_ids, padded.attention_mask, options, generator);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) {  // the first run is the warm-up
      seconds.push_back(elapsed);
      cpu_seconds.push_back(process_cpu_seconds() - cpu_start);
    }
  }
  // One more generation, untimed, counting the ATen operators it enters (nested ones included).
  static std::atomic<int64_t> ops{0};
  const auto handle = at::addGlobalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction&) -> std::unique_ptr<at::ObserverContext> {
        ops.fetch_add(1, std::memory_order_relaxed);
        return nullptr;
      }).scopes({at::RecordScope::FUNCTION}));
  {
    at::Generator generator = at::detail::createCPUGenerator(0);
    prefengine::generate(model, padded.input_ids, padded.attention_mask, options, generator);
  }
  at::removeCallback(handle);
  if (argc >= 10) {
    std::ofstream out(argv[9]);
    for (const auto& row : prefengine::completion_tokens(result)) {
      for (size_t j = 0; j < row.size(); ++j) out << (j ? " " : "") << row[j];
      out << "\n";
    }
  }
  auto list = [](const std::vector<double>& values) {
    std::string text;
    for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
    return text;
  };
  std::printf("{\"seconds\": [%s], \"cpu_seconds\": [%s], \"new_tokens\": %lld, \"ops\": %lld}\n",
              list(seconds).c_str(), list(cpu_seconds).c_str(), static_cast<long long>(result.completions.numel()),
              static_cast<long long>(ops.load()));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  prefengine::runtime::reexec_with_runtime_defaults(argv);
  try {
    if (argc >= 2 && std::string(argv[1]) == "write") return write_model(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "run") return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "generation_bench: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: generation_bench write ... | run ... (see bench/generation_bench.cpp)\n");
  return 2;
}
