// The transformer model plugin's core: forward against an independent per-head loop reference,
// padding invariance, GQA/MQA, tied embeddings, safetensors and Hugging Face checkpoints (written
// here with the test's own byte-level writer), the KV cache and gradient checkpointing. Generation
// over this model is tested with the engine's generator (tests/generation_test.cpp).
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "safetensors.h"
#include "transformer.h"
#include "transformer_test_util.h"

namespace fs = std::filesystem;
using prefengine::ModelInput;
using prefengine::PluginOptions;
using namespace prefengine::plugins::model;
using prefengine::testing::randomize;
using prefengine::testing::weights_of;

namespace {

TransformerConfig small_config(int64_t heads, int64_t kv_heads, bool tied, bool bias) {
  TransformerConfig c;
  c.vocab_size = 29;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  c.tie_word_embeddings = tied;
  c.attention_bias = bias;
  return c;
}

// Plain per-row / per-head / per-position reference in double precision for ONE unpadded
// sequence; written from the Llama equations, sharing no code with the model.
struct Reference {
  at::Tensor logits;  // [T, V]
  at::Tensor hidden;  // [T, hidden] after the final norm
};

at::Tensor ref_rms_norm(const at::Tensor& x, const at::Tensor& gain, double eps) {
  at::Tensor out = at::empty_like(x);
  for (int64_t i = 0; i < x.size(0); ++i) {
    double sum = 0;
    for (int64_t j = 0; j < x.size(1); ++j) sum += x[i][j].item<double>() * x[i][j].item<double>();
    const double scale = 1.0 / std::sqrt(sum / double(x.size(1)) + eps);
    for (int64_t j = 0; j < x.size(1); ++j) {
      out[i][j] = x[i][j].item<double>() * scale * gain[j].item<double>();
    }
  }
  return out;
}

at::Tensor ref_linear(const std::map<std::string, at::Tensor>& w, const std::string& name,
                      const at::Tensor& x) {
  at::Tensor y = at::matmul(x, w.at(name + ".weight").t());
  auto it = w.find(name + ".bias");
  if (it != w.end()) y = y + it->second;
  return y;
}

Reference reference_forward(const std::map<std::string, at::Tensor>& w, const TransformerConfig& c,
                            const std::vector<int64_t>& ids,
                            const std::vector<double>& inv_freq = {}) {
  const int64_t t = static_cast<int64_t>(ids.size());
  const int64_t d = c.head_size();
  const int64_t group = c.num_attention_heads / c.num_key_value_heads;
  at::Tensor x = at::empty({t, c.hidden_size}, at::kDouble);
  for (int64_t i = 0; i < t; ++i) x[i] = w.at("model.embed_tokens.weight")[ids[i]];
  auto rotate = [&](at::Tensor v, int64_t pos) {  // v [D], HF half-split pairs (i, i + D/2)
    at::Tensor out = v.clone();
    for (int64_t i = 0; i < d / 2; ++i) {
      const double freq = inv_freq.empty() ? std::pow(c.rope_theta, -2.0 * double(i) / double(d))
                                           : inv_freq[size_t(i)];
      const double angle = double(pos) * freq;
      const double a = v[i].item<double>();
      const double b = v[i + d / 2].item<double>();
      out[i] = a * std::cos(angle) - b * std::sin(angle);
      out[i + d / 2] = b * std::cos(angle) + a * std::sin(angle);
    }
    return out;
  };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const at::Tensor h = ref_rms_norm(x, w.at(p + "input_layernorm.weight"), c.rms_norm_eps);
    const at::Tensor q = ref_linear(w, p + "self_attn.q_proj", h);
    const at::Tensor k = ref_linear(w, p + "self_attn.k_proj", h);
    const at::Tensor v = ref_linear(w, p + "self_attn.v_proj", h);
    at::Tensor attn = at::zeros({t, c.num_attention_heads * d}, at::kDouble);
    for (int64_t head = 0; head < c.num_attention_heads; ++head) {
      const int64_t kv = head / group;
      for (int64_t i = 0; i < t; ++i) {
        const at::Tensor qi = rotate(q[i].narrow(0, head * d, d), i);
        std::vector<double> scores;
        double max_score = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          const at::Tensor kj = rotate(k[j].narrow(0, kv * d, d), j);
          const double s = (qi * kj).sum().item<double>() / std::sqrt(double(d));
          scores.push_back(s);
          max_score = std::max(max_score, s);
        }
        double total = 0;
        for (auto& s : scores) total += (s = std::exp(s - max_score));
        for (int64_t j = 0; j <= i; ++j) {
          attn[i].narrow(0, head * d, d) += v[j].narrow(0, kv * d, d) * (scores[j] / total);
        }
      }
    }
    x = x + ref_linear(w, p + "self_attn.o_proj", attn);
    const at::Tensor h2 = ref_rms_norm(x, w.at(p + "post_attention_layernorm.weight"), c.rms_norm_eps);
    const at::Tensor gate = ref_linear(w, p + "mlp.gate_proj", h2);
    const at::Tensor silu = gate / (1.0 + at::exp(-gate));
    x = x + ref_linear(w, p + "mlp.down_proj", silu * ref_linear(w, p + "mlp.up_proj", h2));
  }
  Reference r;
  r.hidden = ref_rms_norm(x, w.at("model.norm.weight"), c.rms_norm_eps);
  const at::Tensor head =
      c.tie_word_embeddings ? w.at("model.embed_tokens.weight") : w.at("lm_head.weight");
  r.logits = at::matmul(r.hidden, head.t());
  return r;
}

at::Tensor ids_tensor(const std::vector<std::vector<int64_t>>& rows) {
  at::Tensor out = at::empty({int64_t(rows.size()), int64_t(rows[0].size())}, at::kLong);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t j = 0; j < rows[i].size(); ++j) out[i][j] = rows[i][j];
  }
  return out;
}

void expect_close(const at::Tensor& a, const at::Tensor& b, double tol) {
  ASSERT_EQ(a.sizes(), b.sizes());
  const double diff = (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
  EXPECT_LT(diff, tol);
}

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("prefengine_transformer_test_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The test's own safetensors writer: tensors are stored as F32 or as BF16 (the top 16 bits of
// the f32 pattern); `stored` receives the values as the file holds them.
void write_safetensors_by_hand(const fs::path& path, const std::map<std::string, at::Tensor>& tensors,
                               bool bf16, std::map<std::string, at::Tensor>* stored) {
  std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
  std::string data;
  for (const auto& [name, tensor] : tensors) {
    const at::Tensor f = tensor.to(at::kFloat).contiguous();
    const float* values = f.data_ptr<float>();
    at::Tensor kept = at::empty(f.sizes(), at::kFloat);
    const size_t begin = data.size();
    for (int64_t i = 0; i < f.numel(); ++i) {
      uint32_t bits;
      std::memcpy(&bits, &values[i], 4);
      if (bf16) bits &= 0xFFFF0000u;
      float as_stored;
      std::memcpy(&as_stored, &bits, 4);
      kept.data_ptr<float>()[i] = as_stored;
      const int bytes = bf16 ? 2 : 4;
      const int shift = bf16 ? 16 : 0;
      for (int b = 0; b < bytes; ++b) data.push_back(char((bits >> (shift + 8 * b)) & 0xFF));
    }
    std::string shape;
    for (int64_t s : f.sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(s);
    header += ",\"" + name + "\":{\"dtype\":\"" + (bf16 ? "BF16" : "F32") + "\",\"shape\":[" + shape +
              "],\"data_offsets\":[" + std::to_string(begin) + "," + std::to_string(data.size()) + "]}";
    (*stored)[name] = kept;
  }
  header += "}";
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  for (int b = 0; b < 8; ++b) out.put(char((n >> (8 * b)) & 0xFF));
  out << header << data;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
}

std::string hf_config_json(const TransformerConfig& c, const std::string& model_type) {
  return "{\"architectures\":[\"X\"],\"model_type\":\"" + model_type +
         "\",\"vocab_size\":" + std::to_string(c.vocab_size) +
         ",\"hidden_size\":" + std::to_string(c.hidden_size) +
         ",\"intermediate_size\":" + std::to_string(c.intermediate_size) +
         ",\"num_hidden_layers\":" + std::to_string(c.num_hidden_layers) +
         ",\"num_attention_heads\":" + std::to_string(c.num_attention_heads) +
         ",\"num_key_value_heads\":" + std::to_string(c.num_key_value_heads) +
         ",\"rms_norm_eps\":1e-05,\"rope_theta\":500.0,\"max_position_embeddings\":64" +
         ",\"tie_word_embeddings\":" + (c.tie_word_embeddings ? "true" : "false") +
         ",\"hidden_act\":\"silu\",\"rope_scaling\":null,\"bos_token_id\":1,\"eos_token_id\":[2,3]}";
}

const std::vector<std::vector<int64_t>> kRows = {{3, 7, 1, 28, 5, 9}, {11, 2, 2, 17, 0, 4}};

}  // namespace

TEST(TransformerTest, ForwardMatchesReferenceForMhaGqaMqa) {
  for (const auto& [heads, kv] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 2}, {4, 1}}) {
    SCOPED_TRACE("heads " + std::to_string(heads) + " kv " + std::to_string(kv));
    const TransformerConfig c = small_config(heads, kv, /*tied=*/false, /*bias=*/true);
    TransformerModel model(c);
    randomize(model, 1);
    const auto out = model.forward(ModelInput{ids_tensor(kRows), at::Tensor(), true, false, nullptr});
    ASSERT_EQ(out.logits.sizes(), (std::vector<int64_t>{2, 6, 29}));
    EXPECT_EQ(out.logits.scalar_type(), at::kFloat);
    for (size_t r = 0; r < kRows.size(); ++r) {
      expect_close(out.logits[r], reference_forward(weights_of(model), c, kRows[r]).logits, 1e-4);
    }
  }
}

TEST(TransformerTest, LowerPrecisionModelsGiveFloatLogits) {
  const TransformerConfig c = small_config(4, 2, false, true);
  TransformerModel model(c);
  randomize(model, 15);
  const ModelInput in{ids_tensor(kRows), ids_tensor({{1, 1, 1, 1, 1, 1}, {0, 0, 1, 1, 1, 1}}), true,
                      false, nullptr};
  const at::Tensor reference = model.forward(in).logits;
  model.to(at::kBFloat16);
  const at::Tensor low = model.forward(in).logits;
  EXPECT_EQ(low.scalar_type(), at::kFloat);
  // bf16 keeps 8 bits of mantissa: compare with a tolerance relative to the logits' scale.
  const double scale = reference.abs().max().item<double>();
  const double diff = (low - reference).narrow(1, 2, 4).abs().max().item<double>();
  EXPECT_LT(diff, 0.1 * scale);
  // A head added after the conversion follows the model's dtype.
  model.add_scalar_head();
  const auto scalar = model.forward(ModelInput{ids_tensor(kRows), at::Tensor(), false, true, nullptr}).scalar;
  EXPECT_EQ(scalar.scalar_type(), at::kFloat);
  EXPECT_EQ(scalar.sizes(), (std::vector<int64_t>{2, 6}));
}

TEST(TransformerTest, TiedEmbeddingsShareTheWeight) {
  const TransformerConfig c = small_config(4, 2, /*tied=*/true, /*bias=*/false);
  TransformerModel model(c);
  randomize(model, 2);
  const auto params = model.named_parameters();
  EXPECT_EQ(params.find("lm_head.weight"), nullptr);
  EXPECT_EQ(params.find("model.layers.0.self_attn.q_proj.bias"), nullptr);
  int64_t count = 0;
  for (const auto& p : params) count += p.value().numel();
  EXPECT_EQ(count, c.num_parameters());
  const auto out = model.forward(ModelInput{ids_tensor({kRows[0]}), at::Tensor(), true, false, nullptr});
  expect_close(out.logits[0], reference_forward(weights_of(model), c, kRows[0]).logits, 1e-4);
}

TEST(TransformerTest, LeftPaddingDoesNotChangeRealTokens) {
  const TransformerConfig c = small_config(4, 2, false, true);
  TransformerModel model(c);
  randomize(model, 3);
  const std::vector<int64_t> row = {5, 8, 13, 21, 3};
  const auto alone = model.forward(ModelInput{ids_tensor({row}), at::Tensor(), true, false, nullptr});
  // Batch: the row left-padded by 3 (pad id 0, an ordinary token id) next to a full row.
  const at::Tensor ids = ids_tensor({{0, 0, 0, 5, 8, 13, 21, 3}, {1, 2, 3, 4, 5, 6, 7, 8}});
  const at::Tensor mask = ids_tensor({{0, 0, 0, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1}});
  const auto padded = model.forward(ModelInput{ids, mask, true, false, nullptr});
  expect_close(padded.logits[0].narrow(0, 3, 5), alone.logits[0], 1e-5);
  EXPECT_TRUE(padded.logits.isfinite().all().item<bool>());
  const auto full = model.forward(ModelInput{ids.narrow(0, 1, 1), at::Tensor(), true, false, nullptr});
  expect_close(padded.logits[1], full.logits[0], 1e-5);
}

TEST(TransformerTest, PackedRowsEqualEachRowAlone) {
  // Three rows in two model rows (segment ids 1, 2 in the first; the second row padded): each
  // segment's logits are the independent reference's for that row alone, positions from 0.
  for (const auto& [heads, kv] : std::vector<std::pair<int64_t, int64_t>>{{4, 4}, {4, 1}}) {
    SCOPED_TRACE("heads " + std::to_string(heads) + " kv " + std::to_string(kv));
    const TransformerConfig c = small_config(heads, kv, /*tied=*/false, /*bias=*/true);
    TransformerModel model(c);
    randomize(model, 21);
    EXPECT_NE(dynamic_cast<const prefengine::PackedSequences*>(&model), nullptr);
    const std::vector<int64_t> a = {3, 7, 1, 28, 5}, b = {11, 2, 2, 17}, d = {9, 4, 6};
    const at::Tensor ids = ids_tensor({{3, 7, 1, 28, 5, 11, 2, 2, 17}, {9, 4, 6, 0, 0, 0, 0, 0, 0}});
    const at::Tensor mask = ids_tensor({{1, 1, 1, 1, 1, 2, 2, 2, 2}, {1, 1, 1, 0, 0, 0, 0, 0, 0}});
    const auto out = model.forward(ModelInput{ids, mask, true, false, nullptr});
    const auto w = weights_of(model);
    expect_close(out.logits[0].narrow(0, 0, 5), reference_forward(w, c, a).logits, 1e-4);
    expect_close(out.logits[0].narrow(0, 5, 4), reference_forward(w, c, b).logits, 1e-4);
    expect_close(out.logits[1].narrow(0, 0, 3), reference_forward(w, c, d).logits, 1e-4);
    EXPECT_TRUE(out.logits.isfinite().all().item<bool>());
    // Segment ids in another order name the same segments.
    const at::Tensor swapped = ids_tensor({{2, 2, 2, 2, 2, 1, 1, 1, 1}, {1, 1, 1, 0, 0, 0, 0, 0, 0}});
    expect_close(model.forward(ModelInput{ids, swapped, true, false, nullptr}).logits, out.logits, 1e-6);
  }
  // Packed rows and a KV cache do not go together.
  TransformerModel model(small_config(4, 2, false, false));
  auto cache = model.new_cache(1, 16);
  EXPECT_THROW(model.forward(ModelInput{ids_tensor({{1, 2, 3}}), ids_tensor({{1, 1, 2}}), true, false, cache.get()}),
               std::invalid_argument);
}

TEST(TransformerTest, ScalarHeadIsALinearMapOfTheFinalHiddenState) {
  const TransformerConfig c = small_config(4, 2, false, false);
  TransformerModel model(c);
  EXPECT_TRUE(model.supports_scalar_head());
  EXPECT_FALSE(model.has_scalar_head());
  EXPECT_THROW(model.forward(ModelInput{ids_tensor({kRows[0]}), at::Tensor(), false, true, nullptr}),
               std::invalid_argument);
  model.add_scalar_head();
  EXPECT_TRUE(model.has_scalar_head());
  randomize(model, 4);
  const auto out = model.forward(ModelInput{ids_tensor({kRows[0]}), at::Tensor(), false, true, nullptr});
  EXPECT_FALSE(out.logits.defined());
  const auto w = weights_of(model);
  const Reference ref = reference_forward(w, c, kRows[0]);
  expect_close(out.scalar[0], at::matmul(ref.hidden, w.at("score.weight").t()).squeeze(-1), 1e-4);
}

TEST(TransformerTest, KvCacheMatchesFullForwardWithLeftPadding) {
  const TransformerConfig c = small_config(4, 2, false, true);
  TransformerModel model(c);
  randomize(model, 5);
  const at::Tensor ids = ids_tensor({{0, 0, 4, 9, 2, 7, 1, 6}, {3, 1, 4, 1, 5, 9, 2, 6}});
  const at::Tensor mask = ids_tensor({{0, 0, 1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1, 1, 1}});
  const auto full = model.forward(ModelInput{ids, mask, true, false, nullptr});
  // Capacity 3 forces the cache to grow.
  auto cache = model.new_cache(2, 3);
  ASSERT_NE(cache, nullptr);
  const auto first = model.forward(ModelInput{ids.narrow(1, 0, 4), mask.narrow(1, 0, 4), true, false, cache.get()});
  EXPECT_EQ(cache->length(), 4);
  // Padding positions attend to nothing real; only real tokens' logits are defined.
  expect_close(first.logits[1], full.logits[1].narrow(0, 0, 4), 1e-5);
  expect_close(first.logits[0].narrow(0, 2, 2), full.logits[0].narrow(0, 2, 2), 1e-5);
  for (int64_t i = 4; i < 8; ++i) {
    const auto step = model.forward(ModelInput{ids.narrow(1, i, 1), mask.narrow(1, i, 1), true, false, cache.get()});
    expect_close(step.logits, full.logits.narrow(1, i, 1), 1e-5);
  }
  EXPECT_EQ(cache->length(), 8);
}

TEST(TransformerTest, GradientCheckpointingGivesTheSameGradients) {
  const TransformerConfig c = small_config(4, 2, false, true);
  TransformerModel model(c);
  randomize(model, 8);
  model.train();
  const at::Tensor ids = ids_tensor(kRows);
  auto run = [&](bool checkpoint) {
    model.set_gradient_checkpointing(checkpoint);
    model.zero_grad();
    const auto out = model.forward(ModelInput{ids, at::Tensor(), true, false, nullptr});
    (out.logits * out.logits.detach().sin()).sum().backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& p : model.named_parameters()) {
      if (!p.value().requires_grad()) continue;
      EXPECT_TRUE(p.value().grad().defined()) << p.key();
      grads[p.key()] = p.value().grad().clone();
    }
    return grads;
  };
  for (const bool frozen_embeddings : {false, true}) {
    SCOPED_TRACE(frozen_embeddings ? "frozen embeddings" : "all trainable");
    model.named_parameters()["model.embed_tokens.weight"].requires_grad_(!frozen_embeddings);
    const auto plain = run(false);
    const auto checkpointed = run(true);
    EXPECT_EQ(plain.size(), checkpointed.size());
    for (const auto& [name, g] : plain) {
      SCOPED_TRACE(name);
      expect_close(checkpointed.at(name), g, 1e-5);
    }
  }
}

TEST(TransformerTest, SafetensorsRoundTripKeepsDtypesAndValues) {
  const fs::path dir = temp_dir("roundtrip");
  at::manual_seed(9);
  std::map<std::string, at::Tensor> tensors = {
      {"a.f32", at::randn({3, 4})},
      {"b.bf16", at::randn({5}).to(at::kBFloat16)},
      {"c.f16", at::randn({2, 2, 2}).to(at::kHalf)},
      {"d.i64", at::arange(7, at::kLong)},
      {"e.empty", at::empty({0, 3})},
  };
  save_safetensors((dir / "x.safetensors").string(), tensors);
  const auto loaded = load_safetensors((dir / "x.safetensors").string());
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    EXPECT_EQ(loaded.at(name).scalar_type(), t.scalar_type());
    EXPECT_TRUE(loaded.at(name).equal(t));
  }
  const auto header = read_safetensors_header((dir / "x.safetensors").string());
  EXPECT_EQ(header.at("b.bf16").dtype, "BF16");
  EXPECT_EQ(header.at("c.f16").shape, (std::vector<int64_t>{2, 2, 2}));
  // Corrupt files are errors naming the file.
  write_text(dir / "short.safetensors", "abc");
  EXPECT_THROW(load_safetensors((dir / "short.safetensors").string()), std::invalid_argument);
  EXPECT_THROW(load_safetensors((dir / "missing.safetensors").string()), std::runtime_error);
  std::map<std::string, at::Tensor> stored;
  write_safetensors_by_hand(dir / "ok.safetensors", {{"w", at::ones({2})}}, false, &stored);
  std::string bytes;
  {
    std::ifstream in(dir / "ok.safetensors", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  write_text(dir / "truncated.safetensors", bytes.substr(0, bytes.size() - 2));
  EXPECT_THROW(load_safetensors((dir / "truncated.safetensors").string()), std::invalid_argument);
}

TEST(TransformerTest, LoadsAHandMadeHuggingFaceCheckpoint) {
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "f32");
    const fs::path dir = temp_dir(bf16 ? "hf_bf16" : "hf_f32");
    TransformerConfig c = small_config(4, 2, false, true);
    c.model_type = "qwen2";  // q/k/v biases, none on o_proj (Llama's attention_bias has one there)
    c.max_position_embeddings = 64;
    at::manual_seed(10);
    std::map<std::string, at::Tensor> source;
    {
      TransformerModel donor(c);  // only for the list of HF names and shapes
      for (const auto& p : donor.named_parameters()) source[p.key()] = at::randn(p.value().sizes()) * 0.3;
    }
    source["model.layers.0.self_attn.rotary_emb.inv_freq"] = at::ones({4});  // old checkpoints
    std::map<std::string, at::Tensor> stored;
    write_safetensors_by_hand(dir / "model.safetensors", source, bf16, &stored);
    // Qwen2's config has no attention_bias key: the biases come from model_type.
    write_text(dir / "config.json", hf_config_json(c, "qwen2"));
    PluginOptions options("model");
    options.set_scalar("pretrained", dir.string());
    TransformerModel model(options);
    EXPECT_TRUE(model.config().attention_bias);
    EXPECT_EQ(model.config().eos_token_id, 2);
    EXPECT_EQ(model.config().bos_token_id, 1);
    EXPECT_TRUE(options.unread_keys().empty());
    std::map<std::string, at::Tensor> w;
    for (const auto& [name, t] : stored) w[name] = t.to(at::kDouble);
    const auto out = model.forward(ModelInput{ids_tensor(kRows), at::Tensor(), true, false, nullptr});
    for (size_t r = 0; r < kRows.size(); ++r) {
      expect_close(out.logits[r], reference_forward(w, c, kRows[r]).logits, 1e-4);
    }
  }
}

TEST(TransformerTest, LoadsAShardedCheckpoint) {
  const fs::path dir = temp_dir("sharded");
  const TransformerConfig c = small_config(4, 1, false, false);
  at::manual_seed(11);
  std::map<std::string, at::Tensor> first, second;
  std::string weight_map;
  {
    TransformerModel donor(c);
    int i = 0;
    for (const auto& p : donor.named_parameters()) {
      const bool in_first = (i++ % 2) == 0;
      (in_first ? first : second)[p.key()] = at::randn(p.value().sizes()) * 0.3;
      weight_map += std::string(weight_map.empty() ? "" : ",") + "\"" + p.key() + "\":\"" +
                    (in_first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
    }
  }
  std::map<std::string, at::Tensor> stored;
  write_safetensors_by_hand(dir / "model-00001-of-00002.safetensors", first, false, &stored);
  write_safetensors_by_hand(dir / "model-00002-of-00002.safetensors", second, false, &stored);
  write_text(dir / "model.safetensors.index.json",
             "{\"metadata\":{\"total_size\":0},\"weight_map\":{" + weight_map + "}}");
  write_text(dir / "config.json", hf_config_json(c, "llama"));
  TransformerModel model(TransformerConfig::from_json_file((dir / "config.json").string()));
  model.load_pretrained(dir.string());
  std::map<std::string, at::Tensor> w;
  for (const auto& [name, t] : stored) w[name] = t.to(at::kDouble);
  const auto out = model.forward(ModelInput{ids_tensor({kRows[1]}), at::Tensor(), true, false, nullptr});
  expect_close(out.logits[0], reference_forward(w, c, kRows[1]).logits, 1e-4);
  // A missing tensor is an error naming it.
  std::map<std::string, at::Tensor> partial = first;
  std::map<std::string, at::Tensor> ignored;
  fs::remove(dir / "model.safetensors.index.json");
  write_safetensors_by_hand(dir / "model.safetensors", partial, false, &ignored);
  try {
    model.load_pretrained(dir.string());
    ADD_FAILURE() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is missing"), std::string::npos) << e.what();
  }
}

TEST(TransformerTest, SavePretrainedRoundTripsTiedAndScalarHead) {
  const fs::path dir = temp_dir("save");
  TransformerConfig c = small_config(4, 2, /*tied=*/true, false);
  TransformerModel model(c);
  model.add_scalar_head();
  randomize(model, 12);
  model.save_pretrained(dir.string());
  const auto header = read_safetensors_header((dir / "model.safetensors").string());
  EXPECT_EQ(header.count("lm_head.weight"), 0u);
  EXPECT_EQ(header.count("score.weight"), 1u);
  EXPECT_EQ(header.at("model.embed_tokens.weight").shape, (std::vector<int64_t>{29, 16}));
  PluginOptions options("model");
  options.set_scalar("pretrained", dir.string());
  options.set_scalar("gradient_checkpointing", "true");
  TransformerModel loaded(options);
  EXPECT_TRUE(loaded.has_scalar_head());
  EXPECT_TRUE(loaded.config().tie_word_embeddings);
  EXPECT_TRUE(loaded.config().gradient_checkpointing);
  const ModelInput in{ids_tensor(kRows), at::Tensor(), true, true, nullptr};
  const auto a = model.forward(in);
  const auto b = loaded.forward(in);
  EXPECT_TRUE(a.logits.equal(b.logits));
  EXPECT_TRUE(a.scalar.equal(b.scalar));
}

TEST(TransformerTest, OptionsAreValidated) {
  {
    PluginOptions o("model");
    o.set_scalar("vocab_size", "40");
    o.set_scalar("hidden_size", "32");
    o.set_scalar("num_attention_heads", "8");
    o.set_scalar("num_key_value_heads", "2");
    o.set_scalar("intermediate_size", "48");
    o.set_scalar("num_hidden_layers", "3");
    o.set_scalar("tie_word_embeddings", "true");
    o.set_scalar("attention_bias", "true");
    o.set_scalar("rope_theta", "1e6");
    o.set_scalar("rms_norm_eps", "1e-5");
    o.set_scalar("max_position_embeddings", "128");
    o.set_scalar("fused_decode", "false");
    TransformerModel m(o);
    EXPECT_EQ(m.vocab_size(), 40);
    EXPECT_EQ(m.config().head_size(), 4);
    EXPECT_EQ(m.config().num_key_value_heads, 2);
    EXPECT_FALSE(m.fused_decode());
    EXPECT_TRUE(o.unread_keys().empty());
  }
  {
    PluginOptions o("model");
    EXPECT_TRUE(TransformerModel(o).fused_decode());  // the default
  }
  auto expect_error = [](const std::map<std::string, std::string>& keys, const std::string& needle) {
    PluginOptions o("model");
    for (const auto& [k, v] : keys) o.set_scalar(k, v);
    try {
      TransformerModel m(o);
      ADD_FAILURE() << "expected an error mentioning " << needle;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error({{"num_attention_heads", "4"}, {"num_key_value_heads", "3"}}, "num_key_value_heads");
  expect_error({{"hidden_size", "30"}, {"num_attention_heads", "4"}}, "hidden_size");
  expect_error({{"hidden_size", "12"}, {"num_attention_heads", "4"}}, "even");
  expect_error({{"vocab_size", "0"}}, "vocab_size");
  expect_error({{"intermediate_size", "0"}}, "intermediate_size");
  expect_error({{"num_hidden_layers", "0"}}, "num_hidden_layers");
  expect_error({{"num_attention_heads", "0"}}, "num_attention_heads");
  expect_error({{"head_dim", "-2"}}, "head_dim");
  expect_error({{"head_dim", "3"}}, "head_dim");
  expect_error({{"rms_norm_eps", "0"}}, "rms_norm_eps");
  expect_error({{"max_position_embeddings", "0"}}, "max_position_embeddings");
  expect_error({{"attention_bias", "2"}}, "attention_bias");
  expect_error({{"gradient_checkpointing", "often"}}, "gradient_checkpointing");
  expect_error({{"fused_decode", "sometimes"}}, "fused_decode");
  expect_error({{"rope_theta", "-1"}}, "rope_theta");
  expect_error({{"tie_word_embeddings", "maybe"}}, "tie_word_embeddings");
  expect_error({{"pretrained", "/a"}, {"config_json", "/b"}}, "config_json");
  expect_error({{"pretrained", "/nonexistent/prefengine"}}, "pretrained");
  const fs::path dir = temp_dir("options");
  write_text(dir / "scaled.json",
             "{\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":2,\"rope_scaling\":{\"type\":\"yarn\"}}");
  expect_error({{"config_json", (dir / "scaled.json").string()}}, "rope_scaling");
  write_text(dir / "small.json",
             "{\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":2}");
  PluginOptions o("model");
  o.set_scalar("config_json", (dir / "small.json").string());
  o.set_scalar("num_hidden_layers", "2");  // overrides the file
  TransformerModel m(o);
  EXPECT_EQ(m.config().num_hidden_layers, 2);
  EXPECT_EQ(m.config().num_key_value_heads, 2);
}

TEST(TransformerTest, Llama3RopeScalingFollowsTransformers) {
  const TransformerConfig c = TransformerConfig::from_json(
      "{\"model_type\":\"llama\",\"vocab_size\":29,\"hidden_size\":32,\"intermediate_size\":24,"
      "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,"
      "\"rope_theta\":500000.0,\"rms_norm_eps\":1e-5,\"tie_word_embeddings\":true,"
      "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,"
      "\"high_freq_factor\":4.0,\"original_max_position_embeddings\":8192}}",
      "inline");
  // transformers' _compute_llama3_parameters, one frequency at a time. With theta 5e5 and head
  // size 16 the wavelengths 2*pi*5e5^(i/8) fall in all three bands (< 2048, between, > 8192).
  std::vector<double> expected;
  for (int i = 0; i < 8; ++i) {
    const double f = std::pow(500000.0, -2.0 * i / 16.0);
    const double wavelen = 2 * M_PI / f;
    if (wavelen < 8192.0 / 4.0) {
      expected.push_back(f);
    } else if (wavelen > 8192.0 / 1.0) {
      expected.push_back(f / 8.0);
    } else {
      const double smooth = (8192.0 / wavelen - 1.0) / (4.0 - 1.0);
      expected.push_back((1 - smooth) * f / 8.0 + smooth * f);
    }
  }
  const at::Tensor got = c.rotary_inv_freq();
  ASSERT_EQ(got.numel(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(got[i].item<double>() / expected[size_t(i)], 1.0, 1e-6) << i;
  TransformerModel model(c);
  randomize(model, 14);
  // Long positions make the scaled frequencies matter: a row of 40 tokens.
  std::vector<int64_t> row;
  for (int i = 0; i < 40; ++i) row.push_back((i * 7 + 3) % 29);
  const auto out = model.forward(ModelInput{ids_tensor({row}), at::Tensor(), true, false, nullptr});
  expect_close(out.logits[0], reference_forward(weights_of(model), c, row, expected).logits, 1e-4);
  // The config survives save_pretrained.
  const fs::path dir = temp_dir("llama3");
  model.save_pretrained(dir.string());
  const TransformerConfig back = TransformerConfig::from_json_file((dir / "config.json").string());
  EXPECT_EQ(back.rope_scaling_type, "llama3");
  EXPECT_TRUE(back.rotary_inv_freq().equal(got));
}

TEST(TransformerTest, SlidingWindowAndMlpBiasAreHandled) {
  const std::string base =
      "{\"vocab_size\":8,\"hidden_size\":8,\"intermediate_size\":8,\"num_hidden_layers\":1,"
      "\"num_attention_heads\":2,";
  const TransformerConfig mistral =
      TransformerConfig::from_json(base + "\"model_type\":\"mistral\",\"sliding_window\":4}", "m");
  EXPECT_EQ(mistral.sliding_window, 4);
  TransformerModel model(mistral);
  EXPECT_NO_THROW(model.forward(ModelInput{ids_tensor({{1, 2, 3, 4}}), at::Tensor(), true, false, nullptr}));
  // Longer inputs are windowed (tests/transformer_config_test.cpp checks the logits).
  EXPECT_NO_THROW(model.forward(ModelInput{ids_tensor({{1, 2, 3, 4, 5}}), at::Tensor(), true, false, nullptr}));
  // Qwen2 carries a sliding_window value that is off unless use_sliding_window is true.
  EXPECT_EQ(TransformerConfig::from_json(base + "\"model_type\":\"qwen2\",\"sliding_window\":4,"
                                               "\"use_sliding_window\":false}", "q")
                .sliding_window,
            0);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"mlp_bias\":true}", "b"), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"hidden_act\":\"gelu\"}", "g"), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"num_key_value_heads\":3}", "k"), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json("[1]", "a"), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json("{", "a"), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"rope_scaling\":{\"rope_type\":\"llama3\","
                                                   "\"factor\":8,\"low_freq_factor\":4,\"high_freq_factor\":1}}",
                                            "r"),
               std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"rope_scaling\":{\"rope_type\":\"linear\","
                                                   "\"factor\":0}}",
                                            "r"),
               std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json(base + "\"rms_norm_eps\":\"x\"}", "s"), std::invalid_argument);
  TransformerConfig negative_window;
  negative_window.sliding_window = -1;
  EXPECT_THROW(negative_window.validate(), std::invalid_argument);
  EXPECT_THROW(TransformerConfig::from_json("{\"vocab_size\":8}", "v"), std::invalid_argument);
}

TEST(TransformerTest, PluginModuleCreatesTheModel) {
  const std::string path = std::string(PREFENGINE_PLUGIN_DIR) + "/libprefengine_model_transformer.so";
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(handle, nullptr) << dlerror();
  auto abi = reinterpret_cast<int (*)()>(dlsym(handle, PREFENGINE_PLUGIN_SYMBOL_ABI));
  auto info = reinterpret_cast<const prefengine::PluginInfo* (*)()>(dlsym(handle, PREFENGINE_PLUGIN_SYMBOL_INFO));
  auto create = reinterpret_cast<prefengine::Plugin* (*)(PluginOptions&)>(
      dlsym(handle, PREFENGINE_PLUGIN_SYMBOL_CREATE));
  ASSERT_TRUE(abi && info && create);
  EXPECT_EQ(abi(), prefengine::kPluginAbiVersion);
  EXPECT_STREQ(info()->name, "transformer");
  EXPECT_EQ(info()->kind, prefengine::PluginKind::kModel);
  PluginOptions o("model");
  o.set_scalar("vocab_size", "11");
  std::unique_ptr<prefengine::Plugin> plugin(create(o));
  auto* model = dynamic_cast<prefengine::Model*>(plugin.get());
  ASSERT_NE(model, nullptr);
  EXPECT_EQ(model->vocab_size(), 11);
  const auto out = model->forward(ModelInput{ids_tensor({{1, 2, 3}}), at::Tensor(), true, false, nullptr});
  EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{1, 3, 11}));
  plugin.reset();
  dlclose(handle);
}
