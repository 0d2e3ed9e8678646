// lora_bench: memory of DPO with LoRA against full-parameter DPO on the same transformer.
//
//   build/bench/lora_bench [steps=3] [hidden=512] [layers=4] [vocab=8000] [rank=8] [pairs=16]
//
// Runs the same pairwise DPO stage twice through the engine (ExperimentRunner), each in a child
// process: the full model (every weight trained, the reference a frozen copy) and LoRA on every
// linear projection (base frozen, the reference the policy with its adapters disabled). Prints
// each child's peak RSS (wait4's ru_maxrss) and the bytes the training state needs by count:
// parameters, gradients and Adam's two moments of the trainable ones, and the reference's copy.
// A third child only touches LibTorch: the baseline every process pays (mapped libraries), which
// the "above baseline" column subtracts.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <ATen/ATen.h>

#include "engine/config/experiment_config.h"
#include "engine/train/experiment_runner.h"
#include "lora.h"
#include "transformer.h"

namespace {

std::string make_temp_dir(const std::string& tag) {
  std::string pattern = (std::filesystem::temp_directory_path() / ("prefengine-" + tag + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::exit(1);
  }
  return pattern;
}

using prefengine::plugins::model::LoraOptions;
using prefengine::plugins::model::TransformerConfig;
using prefengine::plugins::model::TransformerModel;

struct Sizes {
  int64_t steps, hidden, layers, vocab, rank, pairs;
};

std::string yaml(const Sizes& s, const std::string& pairs, bool lora) {
  std::string model = "model: {plugin: transformer, vocab_size: " + std::to_string(s.vocab) +
                      ", hidden_size: " + std::to_string(s.hidden) + ", intermediate_size: " +
                      std::to_string(s.hidden * 11 / 4) + ", num_hidden_layers: " + std::to_string(s.layers) +
                      ", num_attention_heads: 4, max_position_embeddings: 128";
  if (lora) model += ", lora: {rank: " + std::to_string(s.rank) + ", alpha: 16, target_modules: all-linear}";
  return "name: lora-bench\nseed: 1\nthreads: 2\n" + model + "}\nstages:\n  - {name: dpo, kind: pairwise, loss: {plugin: dpo, beta: 0.1}, data: {path: " +
         pairs + "}, optimizer: {lr: 1.0e-4}, batch_size: 8, steps: " + std::to_string(s.steps) + ", log_every: 1}\n";
}

// Peak RSS in MiB of a child that runs the experiment (text empty: only a tiny LibTorch op).
double run_child(const std::string& text, const std::string& tag) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (text.empty()) {
      const double x = at::ones({4}).sum().item<double>();
      _exit(x == 4.0 ? 0 : 1);
    }
    try {
      const std::string dir = make_temp_dir(tag);
      prefengine::ExperimentRunner runner(prefengine::parse_experiment(text, tag + ".yaml"), dir);
      runner.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", tag.c_str(), e.what());
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  rusage usage{};
  wait4(pid, &status, 0, &usage);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "%s failed\n", tag.c_str());
    std::exit(1);
  }
  return double(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

}  // namespace

int main(int argc, char** argv) {
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::atoll(argv[i]) : fallback; };
  const Sizes s{arg(1, 3), arg(2, 512), arg(3, 4), arg(4, 8000), arg(5, 8), arg(6, 16)};

  // Pairs of prompt 32 + responses 32 random token ids.
  const std::string dir = make_temp_dir("lora-bench");
  std::mt19937_64 rng(5);
  std::uniform_int_distribution<int64_t> token(0, s.vocab - 1);
  std::string pairs;
  auto ids = [&](int n) {
    std::string out = "[";
    for (int i = 0; i < n; ++i) out += (i ? "," : "") + std::to_string(token(rng));
    return out + "]";
  };
  for (int64_t i = 0; i < s.pairs; ++i) {
    pairs += "{\"prompt_ids\": " + ids(32) + ", \"chosen_ids\": " + ids(32) + ", \"rejected_ids\": " + ids(32) + "}\n";
  }
  const std::string path = dir + "/pairs.jsonl";
  std::ofstream(path) << pairs;

  // Children first: the parent's own allocations below must not be inherited.
  const double rss_base = run_child("", "lora-bench-baseline");
  const double rss_full = run_child(yaml(s, path, false), "lora-bench-full");
  const double rss_lora = run_child(yaml(s, path, true), "lora-bench-lora");

  TransformerConfig c;
  c.vocab_size = s.vocab;
  c.hidden_size = s.hidden;
  c.intermediate_size = s.hidden * 11 / 4;
  c.num_hidden_layers = s.layers;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  TransformerModel model(c);
  const int64_t base = model.config().num_parameters();
  LoraOptions lora;
  lora.rank = s.rank;
  lora.alpha = 16;
  lora.target_modules = prefengine::plugins::model::lora_target_names();
  model.enable_lora(lora);
  int64_t adapters = 0;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) adapters += p.numel();
  }
  // fp32: weights; gradient + Adam m + v of the trainable ones; the reference's copy.
  const double mib = 1024.0 * 1024.0;
  const double full_bytes = 4.0 * (base + 3.0 * base + base);
  const double lora_bytes = 4.0 * (base + adapters + 3.0 * adapters);
  std::printf("model: vocab %ld, hidden %ld, intermediate %ld, layers %ld; %ld parameters; LoRA rank %ld on all "
              "7 projections: %ld adapter parameters (%.2f%%)\n",
              long(s.vocab), long(s.hidden), long(c.intermediate_size), long(s.layers), long(base), long(s.rank),
              long(adapters), 100.0 * double(adapters) / double(base));
  std::printf("DPO, %ld pairs of 32 + 32 tokens, batch 8, %ld steps, Adam, 2 threads; baseline RSS %.1f MiB\n",
              long(s.pairs), long(s.steps), rss_base);
  std::printf("%-6s %22s %16s %20s\n", "", "params+grads+Adam+ref", "peak RSS", "above baseline");
  std::printf("%-6s %18.1f MiB %12.1f MiB %16.1f MiB\n", "full", full_bytes / mib, rss_full, rss_full - rss_base);
  std::printf("%-6s %18.1f MiB %12.1f MiB %16.1f MiB\n", "lora", lora_bytes / mib, rss_lora, rss_lora - rss_base);
  std::printf("%-6s %22.3f %16.3f %20.3f\n", "ratio", lora_bytes / full_bytes, rss_lora / rss_full,
              (rss_lora - rss_base) / (rss_full - rss_base));
  return 0;
}
