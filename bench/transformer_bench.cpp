// Training throughput of the transformer: tokens/s of forward + backward + an SGD update, and
// MFU = 6 * parameters * tokens / time against the matmul GFLOP/s measured in the same run.
// The input embedding is a lookup, not a matmul, so its parameters are left out of the 6N count
// (the untied lm_head is counted); attention's T^2 FLOPs are left out too, as in the 6N rule.
//
// usage: transformer_bench [hidden=256] [layers=4] [seq=128] [batch=8] [steps=5] [threads=0]
//                          [checkpointing=0] [vocab=32000] [intermediate=0]
//        (threads 0 = all cores; intermediate 0 = about 8/3 hidden, rounded to 64)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "engine/cli/runtime_defaults.h"
#include "engine/train/sequence_batch.h"
#include "transformer.h"

using prefengine::ModelInput;
using prefengine::sequence_logps;
using namespace prefengine::plugins::model;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double matmul_gflops(int64_t n) {
  const at::Tensor a = at::randn({n, n});
  const at::Tensor b = at::randn({n, n});
  at::Tensor c = at::matmul(a, b);  // warm-up
  const int reps = 5;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) c = at::matmul(a, b);
  return 2.0 * double(n) * double(n) * double(n) * reps / seconds_since(start) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
  // the runtime settings `prefengine` gives itself (OpenMP waiting, OpenBLAS core and build)
  prefengine::runtime::reexec_with_runtime_defaults(argv);
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::atoll(argv[i]) : fallback; };
  const int64_t hidden = arg(1, 256);
  const int64_t layers = arg(2, 4);
  const int64_t seq = arg(3, 128);
  const int64_t batch = arg(4, 8);
  const int64_t steps = arg(5, 5);
  int64_t threads = arg(6, 0);
  const bool checkpointing = arg(7, 0) != 0;
  const int64_t vocab = arg(8, 32000);
  const int64_t intermediate = arg(9, 0);
  if (threads <= 0) threads = std::max<int64_t>(1, std::thread::hardware_concurrency());
  at::set_num_threads(static_cast<int>(threads));
  at::manual_seed(0);

  TransformerConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate > 0 ? intermediate : hidden * 8 / 3 / 64 * 64 + 64;
  c.num_hidden_layers = layers;
  c.num_attention_heads = std::max<int64_t>(1, hidden / 64);
  c.num_key_value_heads = c.num_attention_heads;
  c.gradient_checkpointing = checkpointing;
  TransformerModel model(c);
  model.train();
  const double params = double(c.num_parameters());
  const double matmul_params = params - double(c.vocab_size * c.hidden_size);

  const double peak = matmul_gflops(1024);
  const at::Tensor ids = at::randint(0, c.vocab_size, {batch, seq + 1}, at::kLong);
  const at::Tensor inputs = ids.narrow(1, 0, seq);
  const at::Tensor response = at::ones({batch, seq + 1});  // every next token is scored
  auto step = [&] {
    model.zero_grad();
    const auto out = model.forward(ModelInput{inputs, at::Tensor(), true, false, nullptr});
    // The engine's token log-probs (engine/train/sequence_batch.h), as training computes them.
    const at::Tensor loss = -sequence_logps(out.logits, ids, response).sum() / double(batch * seq);
    loss.backward();
    at::NoGradGuard no_grad;
    for (auto& p : model.parameters()) p.add_(p.grad(), -1e-3);
  };
  step();  // warm-up
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  const double elapsed = seconds_since(start);
  const double tokens = double(batch * seq * steps);
  const double achieved = 6.0 * matmul_params * tokens / elapsed / 1e9;
  std::printf("transformer_bench: vocab %lld hidden %lld intermediate %lld layers %lld heads %lld seq %lld "
              "batch %lld threads %lld checkpointing %d\n",
              static_cast<long long>(vocab), static_cast<long long>(hidden),
              static_cast<long long>(c.intermediate_size), static_cast<long long>(layers),
              static_cast<long long>(c.num_attention_heads), static_cast<long long>(seq),
              static_cast<long long>(batch), static_cast<long long>(threads), checkpointing ? 1 : 0);
  std::printf("parameters %.2fM (%.2fM in matmuls)  train tokens/s %.1f  model GFLOP/s %.2f  matmul GFLOP/s %.2f  MFU %.1f%%\n",
              params / 1e6, matmul_params / 1e6, tokens / elapsed, achieved, peak, 100.0 * achieved / peak);
  return 0;
}
