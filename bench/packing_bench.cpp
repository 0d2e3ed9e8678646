// An sft stage's step with and without `data.packing`: the same batches of rows (their lengths
// those of a JSONL file's prompt + completion under the byte tokenizer, BOS and EOS included),
// forward + backward of the transformer plugin and the engine's per-row log-probs, padded
// (pack_sequences, each batch trimmed to its longest row: the stage's default) against packed
// (pack_rows into rows of at most `capacity` tokens, as the stage does). Alternating repeats in one
// process; prints rows/s of each, their ratio, the share of computed positions that hold tokens,
// and the largest difference between the two paths' per-row log-probs.
//
// usage: packing_bench SFT.jsonl [batch=16] [steps=20] [threads=2] [capacity=416]
//                      [hidden=256] [layers=4] [intermediate=688]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

#include "engine/cli/runtime_defaults.h"
#include "engine/train/sequence_batch.h"
#include "transformer.h"

using namespace prefengine;
using namespace prefengine::plugins::model;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  runtime::reexec_with_runtime_defaults(argv);
  if (argc < 2) {
    std::fprintf(stderr, "usage: packing_bench SFT.jsonl [batch=16] [steps=20] [threads=2] [capacity=416] "
                         "[hidden=256] [layers=4] [intermediate=688]\n");
    return 2;
  }
  auto arg = [&](int i, int64_t fallback) { return argc > i ? std::atoll(argv[i]) : fallback; };
  const int64_t batch = arg(2, 16), steps = arg(3, 20), threads = arg(4, 2), capacity = arg(5, 416);
  at::set_num_threads(static_cast<int>(threads));
  at::manual_seed(0);

  // Row lengths: UTF-8 bytes of prompt + completion, + BOS and EOS (the byte tokenizer's rows).
  std::vector<int64_t> lengths;
  std::ifstream in(argv[1]);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto row = nlohmann::json::parse(line);
    const auto length = static_cast<int64_t>(row.value("prompt", "").size() + row.value("completion", "").size() + 2);
    lengths.push_back(std::min(length, capacity));
  }
  if (lengths.empty()) {
    std::fprintf(stderr, "packing_bench: %s: expected JSONL rows with prompt and completion, got none\n", argv[1]);
    return 2;
  }

  TransformerConfig c;
  c.vocab_size = 259;
  c.hidden_size = arg(6, 256);
  c.num_hidden_layers = arg(7, 4);
  c.intermediate_size = arg(8, 688);
  c.num_attention_heads = std::max<int64_t>(1, c.hidden_size / 64);
  c.num_key_value_heads = c.num_attention_heads;
  c.max_position_embeddings = capacity;
  c.tie_word_embeddings = true;
  TransformerModel model(c);
  model.train();

  // The batches: rows of random tokens with the file's lengths, drawn as a shuffled stage does.
  std::mt19937_64 rng(0);
  std::uniform_int_distribution<size_t> pick(0, lengths.size() - 1);
  std::vector<std::vector<int64_t>> prompts, responses;
  std::vector<SequenceTensors> batches;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<TokenSequence> rows;
    const size_t first = prompts.size();
    for (int64_t r = 0; r < batch; ++r) {
      const int64_t length = lengths[pick(rng)];
      const int64_t prompt = std::max<int64_t>(1, length / 4);
      prompts.emplace_back(static_cast<size_t>(prompt), 0);
      responses.emplace_back(static_cast<size_t>(length - prompt), 0);
      for (auto& id : prompts.back()) id = static_cast<int64_t>(rng() % 256);
      for (auto& id : responses.back()) id = static_cast<int64_t>(rng() % 256);
    }
    for (int64_t r = 0; r < batch; ++r) {
      rows.push_back({&prompts[first + static_cast<size_t>(r)], &responses[first + static_cast<size_t>(r)]});
    }
    batches.push_back(pack_sequences(rows));
  }

  double max_diff = 0;
  auto padded_step = [&](const SequenceTensors& rows, at::Tensor* logps) {
    model.zero_grad();
    const at::Tensor logits = model.forward(scoring_input(rows, false)).logits;
    const at::Tensor out = sequence_logps(logits, rows.input_ids, rows.response_mask);
    (-out.sum() / rows.lengths.sum()).backward();
    if (logps != nullptr) *logps = out.detach();
    return rows.input_ids.numel();
  };
  auto packed_step = [&](const SequenceTensors& rows, at::Tensor* logps) {
    model.zero_grad();
    const PackedRows packed = pack_rows(rows, capacity);
    const at::Tensor logits = model.forward(scoring_input(packed.packed, false)).logits;
    const at::Tensor tokens = gather_token_logps(logits, packed.packed.input_ids, packed.packed.response_mask);
    const at::Tensor out =
        tokens.flatten().index_select(0, packed.gather_index.flatten()).view(packed.gather_index.sizes()).sum(1);
    (-out.sum() / rows.lengths.sum()).backward();
    if (logps != nullptr) *logps = out.detach();
    return packed.packed.input_ids.numel();
  };
  // Warm-up, and the two paths' log-probs of the first batch compared.
  at::Tensor a, b;
  padded_step(batches[0], &a);
  packed_step(batches[0], &b);
  max_diff = (a - b).abs().max().item<double>();

  double real = 0, padded_positions = 0, packed_positions = 0, padded_time = 1e300, packed_time = 1e300;
  for (const auto& rows : batches) {
    for (int64_t length : rows.row_lengths) real += double(length);
  }
  const int repeats = 3;
  for (int rep = 0; rep < repeats; ++rep) {  // alternating; the best of each
    double positions = 0;
    auto start = std::chrono::steady_clock::now();
    for (const auto& rows : batches) positions += double(padded_step(rows, nullptr));
    padded_time = std::min(padded_time, seconds_since(start));
    padded_positions = positions;
    positions = 0;
    start = std::chrono::steady_clock::now();
    for (const auto& rows : batches) positions += double(packed_step(rows, nullptr));
    packed_time = std::min(packed_time, seconds_since(start));
    packed_positions = positions;
  }
  const double rows_total = double(batch * steps);
  std::printf("packing_bench: %s (%zu rows), batch %lld, %lld steps, threads %lld, capacity %lld, hidden %lld x %lld "
              "layers, intermediate %lld\n",
              argv[1], lengths.size(), static_cast<long long>(batch), static_cast<long long>(steps),
              static_cast<long long>(threads), static_cast<long long>(capacity),
              static_cast<long long>(c.hidden_size), static_cast<long long>(c.num_hidden_layers),
              static_cast<long long>(c.intermediate_size));
  std::printf("padded: %.2f rows/s, %.1f%% of positions hold tokens\n", rows_total / padded_time,
              100.0 * real / padded_positions);
  std::printf("packed: %.2f rows/s, %.1f%% of positions hold tokens\n", rows_total / packed_time,
              100.0 * real / packed_positions);
  std::printf("packed / padded: %.2fx rows/s (best of %d alternating repeats); largest |logp difference| of a "
              "row: %.2e nats\n",
              padded_time / packed_time, repeats, max_diff);
  return 0;
}
