// config.json as transformers writes it, never read silently wrong: the newer rope_parameters
// layout, keys that change the math (understood or an error naming the key and file), Llama's
// attention_bias (q/k/v and o_proj biases), and sliding-window attention in the full forward and
// in the KV-cache path. Golden logits come from a plain double-precision reference forward
// written here from the Llama/Mistral/Qwen2 equations (it shares no code with the model).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "transformer.h"
#include "transformer_test_util.h"

using prefengine::ModelInput;
using namespace prefengine::plugins::model;
using prefengine::testing::randomize;
using prefengine::testing::weights_of;

namespace {

// A config.json text for a tiny model; `extra` holds more "key": value pairs.
std::string config_json(const std::string& model_type, const std::string& extra, int layers = 2) {
  std::string s = "{\"model_type\":\"" + model_type +
                  "\",\"vocab_size\":23,\"hidden_size\":16,\"intermediate_size\":24,"
                  "\"num_hidden_layers\":" + std::to_string(layers) +
                  ",\"num_attention_heads\":4,\"num_key_value_heads\":2,\"rms_norm_eps\":1e-5,"
                  "\"tie_word_embeddings\":false";
  if (!extra.empty()) s += "," + extra;
  return s + "}";
}

void copy_weights(const TransformerModel& from, TransformerModel& to) {
  at::NoGradGuard no_grad;
  auto source = weights_of(from);
  for (auto& p : to.named_parameters()) p.value().copy_(source.at(p.key()).to(at::kFloat));
}

// The reference: one unpadded sequence, double precision. theta: the rotary base (the rope is
// unscaled); windows[l]: layer l attends to keys j with i - W < j <= i (0 = all j <= i).
at::Tensor reference_logits(const std::map<std::string, at::Tensor>& w, int64_t layers, int64_t heads,
                            int64_t kv_heads, double eps, double theta, const std::vector<int64_t>& windows,
                            const std::vector<int64_t>& ids) {
  const int64_t t = static_cast<int64_t>(ids.size());
  const int64_t hidden = w.at("model.embed_tokens.weight").size(1);
  const int64_t d = w.at("model.layers.0.self_attn.q_proj.weight").size(0) / heads;
  auto norm = [&](const at::Tensor& x, const at::Tensor& g) {
    return x / at::sqrt(x.pow(2).mean(-1, true) + eps) * g;
  };
  auto linear = [&](const std::string& name, const at::Tensor& x) {
    at::Tensor y = at::matmul(x, w.at(name + ".weight").t());
    if (w.count(name + ".bias")) y = y + w.at(name + ".bias");
    return y;
  };
  // Rotation of the pair (i, i + d/2) of a head vector at position p by p * theta^(-2i/d).
  auto rotate = [&](const at::Tensor& v, int64_t p) {
    at::Tensor out = v.clone();
    for (int64_t i = 0; i < d / 2; ++i) {
      const double angle = double(p) * std::pow(theta, -2.0 * double(i) / double(d));
      const double a = v[i].item<double>(), b = v[i + d / 2].item<double>();
      out[i] = a * std::cos(angle) - b * std::sin(angle);
      out[i + d / 2] = b * std::cos(angle) + a * std::sin(angle);
    }
    return out;
  };
  at::Tensor x = at::empty({t, hidden}, at::kDouble);
  for (int64_t i = 0; i < t; ++i) x[i] = w.at("model.embed_tokens.weight")[ids[size_t(i)]];
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const at::Tensor h = norm(x, w.at(p + "input_layernorm.weight"));
    const at::Tensor q = linear(p + "self_attn.q_proj", h);
    const at::Tensor k = linear(p + "self_attn.k_proj", h);
    const at::Tensor v = linear(p + "self_attn.v_proj", h);
    at::Tensor attn = at::zeros({t, heads * d}, at::kDouble);
    for (int64_t head = 0; head < heads; ++head) {
      const int64_t g = head / (heads / kv_heads);
      for (int64_t i = 0; i < t; ++i) {
        const at::Tensor qi = rotate(q[i].narrow(0, head * d, d), i);
        const int64_t first = windows[size_t(l)] > 0 ? std::max<int64_t>(0, i - windows[size_t(l)] + 1) : 0;
        std::vector<double> s;
        for (int64_t j = first; j <= i; ++j) {
          s.push_back((qi * rotate(k[j].narrow(0, g * d, d), j)).sum().item<double>() / std::sqrt(double(d)));
        }
        const double top = *std::max_element(s.begin(), s.end());
        double total = 0;
        for (double& e : s) total += (e = std::exp(e - top));
        for (int64_t j = first; j <= i; ++j) {
          attn[i].narrow(0, head * d, d) += v[j].narrow(0, g * d, d) * (s[size_t(j - first)] / total);
        }
      }
    }
    x = x + linear(p + "self_attn.o_proj", attn);
    const at::Tensor h2 = norm(x, w.at(p + "post_attention_layernorm.weight"));
    const at::Tensor gate = linear(p + "mlp.gate_proj", h2);
    x = x + linear(p + "mlp.down_proj", gate / (1.0 + at::exp(-gate)) * linear(p + "mlp.up_proj", h2));
  }
  return at::matmul(norm(x, w.at("model.norm.weight")), w.at("lm_head.weight").t());
}

at::Tensor logits_of(TransformerModel& model, const std::vector<int64_t>& row) {
  at::Tensor ids = at::tensor(row, at::kLong).unsqueeze(0);
  return model.forward(ModelInput{ids, at::Tensor(), true, false, nullptr}).logits[0].to(at::kDouble);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

std::vector<int64_t> sample_row(int64_t length) {
  std::vector<int64_t> row;
  for (int64_t i = 0; i < length; ++i) row.push_back((i * 5 + 3) % 23);
  return row;
}

// The error message of from_json on `text` ("" when it loads).
std::string error_of(const std::string& text) {
  try {
    TransformerConfig::from_json(text, "cfg/config.json");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(TransformerConfigTest, RopeParametersLayoutIsRead) {
  const TransformerConfig old_layout = TransformerConfig::from_json(config_json("llama", "\"rope_theta\":500000.0"), "old");
  const TransformerConfig new_layout = TransformerConfig::from_json(
      config_json("llama", "\"rope_parameters\":{\"rope_type\":\"default\",\"rope_theta\":500000.0}"), "new");
  const TransformerConfig default_theta = TransformerConfig::from_json(config_json("llama", ""), "none");
  EXPECT_EQ(new_layout.rope_theta, 500000.0);
  EXPECT_EQ(default_theta.rope_theta, 10000.0);
  TransformerModel a(old_layout), b(new_layout), c(default_theta);
  randomize(a, 1, 0.4);
  copy_weights(a, b);
  copy_weights(a, c);
  const auto row = sample_row(12);
  const at::Tensor la = logits_of(a, row);
  EXPECT_TRUE(la.equal(logits_of(b, row)));
  EXPECT_GT(max_diff(la, logits_of(c, row)), 1e-3);  // theta 10000 is another model
  EXPECT_LT(max_diff(la, reference_logits(weights_of(a), 2, 4, 2, 1e-5, 500000.0, {0, 0}, row)), 1e-4);

  // The scaled rope types in rope_parameters: the same frequencies as rope_scaling gives.
  const std::string llama3 =
      "\"rope_type\":\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
      "\"original_max_position_embeddings\":64";
  const TransformerConfig scaled_old = TransformerConfig::from_json(
      config_json("llama", "\"rope_theta\":500000.0,\"rope_scaling\":{" + llama3 + "}"), "old");
  const TransformerConfig scaled_new = TransformerConfig::from_json(
      config_json("llama", "\"rope_parameters\":{\"rope_theta\":500000.0," + llama3 + "}"), "new");
  EXPECT_EQ(scaled_new.rope_scaling_type, "llama3");
  EXPECT_TRUE(scaled_new.rotary_inv_freq().equal(scaled_old.rotary_inv_freq()));
  EXPECT_FALSE(scaled_new.rotary_inv_freq().equal(old_layout.rotary_inv_freq()));
  const TransformerConfig linear = TransformerConfig::from_json(
      config_json("llama", "\"rope_parameters\":{\"rope_type\":\"linear\",\"factor\":4.0,\"rope_theta\":100.0}"), "l");
  // linear: every inverse frequency divided by the factor; head size 4 -> theta^0, theta^-1/2.
  const at::Tensor f = linear.rotary_inv_freq();
  ASSERT_EQ(f.numel(), 2);
  EXPECT_NEAR(f[0].item<double>(), 1.0 / 4.0, 1e-7);
  EXPECT_NEAR(f[1].item<double>(), 0.1 / 4.0, 1e-7);
  // Both layouts at once must agree.
  EXPECT_NE(error_of(config_json("llama", "\"rope_theta\":10000.0,\"rope_parameters\":{\"rope_theta\":500000.0}"))
                .find("disagree"),
            std::string::npos);
  EXPECT_EQ(error_of(config_json("llama", "\"rope_theta\":500000.0,\"rope_parameters\":{\"rope_theta\":500000.0}")), "");
  const std::string yarn = error_of(config_json("llama", "\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":4.0}"));
  EXPECT_NE(yarn.find("cfg/config.json"), std::string::npos) << yarn;
  EXPECT_NE(yarn.find("yarn"), std::string::npos) << yarn;
  const std::string partial = error_of(config_json("llama", "\"partial_rotary_factor\":0.5"));
  EXPECT_NE(partial.find("partial_rotary_factor"), std::string::npos) << partial;
  EXPECT_NE(error_of(config_json("llama", "\"rope_parameters\":{\"rope_type\":\"default\",\"beta_fast\":32}"))
                .find("beta_fast"),
            std::string::npos);
}

TEST(TransformerConfigTest, EveryKeyIsUnderstoodHarmlessOrAnError) {
  // Keys transformers writes that do not change the logits load.
  const std::string harmless =
      "\"architectures\":[\"LlamaForCausalLM\"],\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.57.1\","
      "\"use_cache\":true,\"initializer_range\":0.02,\"pretraining_tp\":1,\"_name_or_path\":\"x\","
      "\"bos_token_id\":1,\"eos_token_id\":[2,3],\"pad_token_id\":0,\"attention_dropout\":0.0,\"mlp_bias\":false,"
      "\"hidden_act\":\"silu\",\"rope_scaling\":null,\"head_dim\":4,\"max_position_embeddings\":64,\"dtype\":\"float32\"";
  EXPECT_EQ(error_of(config_json("llama", harmless)), "");
  // Unknown keys and keys whose math is not implemented are errors naming the key and the file.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"\"quantization_config\":{\"quant_method\":\"gptq\"}", "quantization_config"},
      {"\"some_new_scaling\":2.0", "some_new_scaling"},
      {"\"attention_dropout\":0.1", "attention_dropout"},
      {"\"mlp_bias\":true", "mlp_bias"},
      {"\"hidden_act\":\"gelu\"", "hidden_act"},
      {"\"sliding_window\":8", "sliding_window"},  // not a Llama setting
      {"\"rope_scaling\":{\"rope_type\":\"dynamic\",\"factor\":2.0}", "dynamic"},
      {"\"is_encoder_decoder\":true", "is_encoder_decoder"},
  };
  for (const auto& [extra, key] : bad) {
    const std::string message = error_of(config_json("llama", extra));
    EXPECT_NE(message.find("cfg/config.json"), std::string::npos) << extra << ": " << message;
    EXPECT_NE(message.find(key), std::string::npos) << extra << ": " << message;
  }
  const std::string gemma = error_of(config_json("gemma", ""));
  EXPECT_NE(gemma.find("model_type 'gemma'"), std::string::npos) << gemma;
  // Every key to_json writes is read back (exported folders load).
  for (const char* type : {"llama", "qwen2", "mistral"}) {
    const TransformerConfig c = TransformerConfig::from_json(
        config_json(type, std::string(type) == "llama" ? "\"attention_bias\":true" : "\"sliding_window\":3"), "in");
    const TransformerConfig back = TransformerConfig::from_json(c.to_json("bfloat16"), "out");
    EXPECT_EQ(back.model_type, type);
    EXPECT_EQ(back.attention_bias, c.attention_bias);
    EXPECT_EQ(back.sliding_window, c.sliding_window);
    for (int64_t l = 0; l < 2; ++l) EXPECT_EQ(back.layer_window(l), c.layer_window(l)) << type << l;
  }
}

TEST(TransformerConfigTest, LlamaAttentionBiasCoversOutputProjection) {
  const TransformerConfig llama = TransformerConfig::from_json(config_json("llama", "\"attention_bias\":true"), "l");
  TransformerModel model(llama);
  std::set<std::string> names;
  for (const auto& p : model.named_parameters()) names.insert(p.key());
  for (const char* proj : {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    EXPECT_TRUE(names.count(std::string("model.layers.1.self_attn.") + proj + ".bias")) << proj;
  }
  int64_t count = 0;
  for (const auto& p : model.parameters()) count += p.numel();
  EXPECT_EQ(llama.num_parameters(), count);
  // Qwen2: q/k/v biases only.
  TransformerModel qwen(TransformerConfig::from_json(config_json("qwen2", ""), "q"));
  std::set<std::string> qwen_names;
  for (const auto& p : qwen.named_parameters()) qwen_names.insert(p.key());
  EXPECT_TRUE(qwen_names.count("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(qwen_names.count("model.layers.0.self_attn.o_proj.bias"));

  // The reference adds every bias it finds, o_proj's included.
  randomize(model, 7, 0.4);
  const auto row = sample_row(9);
  const at::Tensor with_bias = logits_of(model, row);
  EXPECT_LT(max_diff(with_bias, reference_logits(weights_of(model), 2, 4, 2, 1e-5, 10000.0, {0, 0}, row)), 1e-4);
  // Zero biases equal a model without biases; a non-zero o_proj bias changes the output.
  TransformerModel plain(TransformerConfig::from_json(config_json("llama", ""), "p"));
  {
    at::NoGradGuard no_grad;
    auto w = weights_of(model);
    for (auto& p : plain.named_parameters()) p.value().copy_(w.at(p.key()).to(at::kFloat));
    for (auto& p : model.named_parameters()) {
      if (p.key().find(".bias") != std::string::npos) p.value().zero_();
    }
  }
  EXPECT_TRUE(logits_of(model, row).equal(logits_of(plain, row)));
  {
    at::NoGradGuard no_grad;
    for (auto& p : model.named_parameters()) {
      if (p.key() == "model.layers.0.self_attn.o_proj.bias") p.value().fill_(0.5);
    }
  }
  const at::Tensor shifted = logits_of(model, row);
  EXPECT_GT(max_diff(shifted, logits_of(plain, row)), 1e-3);
  EXPECT_LT(max_diff(shifted, reference_logits(weights_of(model), 2, 4, 2, 1e-5, 10000.0, {0, 0}, row)), 1e-4);
  // Mistral has no attention biases.
  EXPECT_NE(error_of(config_json("mistral", "\"attention_bias\":true")).find("attention_bias"), std::string::npos);
}

TEST(TransformerConfigTest, SlidingWindowMasksOldKeys) {
  const auto row = sample_row(11);
  // Mistral: every layer. A window at least as long as the input is full attention.
  TransformerModel full(TransformerConfig::from_json(config_json("mistral", "\"sliding_window\":null"), "f"));
  randomize(full, 3, 0.4);
  TransformerModel wide(TransformerConfig::from_json(config_json("mistral", "\"sliding_window\":11"), "w"));
  copy_weights(full, wide);
  EXPECT_TRUE(logits_of(full, row).equal(logits_of(wide, row)));
  TransformerModel narrow(TransformerConfig::from_json(config_json("mistral", "\"sliding_window\":4"), "n"));
  copy_weights(full, narrow);
  const at::Tensor windowed = logits_of(narrow, row);
  const auto w = weights_of(full);
  EXPECT_LT(max_diff(windowed, reference_logits(w, 2, 4, 2, 1e-5, 10000.0, {4, 4}, row)), 1e-4);
  EXPECT_GT(max_diff(windowed, logits_of(full, row)), 1e-3);
  // The first `window` positions see all their keys: the same logits as full attention.
  EXPECT_LT(max_diff(windowed.narrow(0, 0, 4), logits_of(full, row).narrow(0, 0, 4)), 1e-6);

  // Qwen2: only with use_sliding_window, from max_window_layers on.
  TransformerModel qwen_off(TransformerConfig::from_json(
      config_json("qwen2", "\"sliding_window\":4,\"use_sliding_window\":false,\"max_window_layers\":1"), "q0"));
  randomize(qwen_off, 5, 0.4);
  TransformerModel qwen_on(TransformerConfig::from_json(
      config_json("qwen2", "\"sliding_window\":4,\"use_sliding_window\":true,\"max_window_layers\":1"), "q1"));
  copy_weights(qwen_off, qwen_on);
  const auto wq = weights_of(qwen_off);
  EXPECT_LT(max_diff(logits_of(qwen_off, row), reference_logits(wq, 2, 4, 2, 1e-5, 10000.0, {0, 0}, row)), 1e-4);
  EXPECT_LT(max_diff(logits_of(qwen_on, row), reference_logits(wq, 2, 4, 2, 1e-5, 10000.0, {0, 4}, row)), 1e-4);
  // The newer layout's layer_types.
  TransformerModel typed(TransformerConfig::from_json(
      config_json("qwen2", "\"sliding_window\":4,\"use_sliding_window\":true,"
                           "\"layer_types\":[\"sliding_attention\",\"full_attention\"]"),
      "q2"));
  copy_weights(qwen_off, typed);
  EXPECT_LT(max_diff(logits_of(typed, row), reference_logits(wq, 2, 4, 2, 1e-5, 10000.0, {4, 0}, row)), 1e-4);

  // The KV-cache path: a prompt of 3 then one token at a time gives the full forward's logits.
  auto cache = narrow.new_cache(1, 0);
  std::vector<at::Tensor> steps;
  at::Tensor ids = at::tensor(row, at::kLong).unsqueeze(0);
  steps.push_back(narrow.forward(ModelInput{ids.narrow(1, 0, 3), at::Tensor(), true, false, cache.get()}).logits[0]);
  for (int64_t i = 3; i < int64_t(row.size()); ++i) {
    steps.push_back(narrow.forward(ModelInput{ids.narrow(1, i, 1), at::Tensor(), true, false, cache.get()}).logits[0]);
  }
  EXPECT_LT(max_diff(at::cat(steps, 0), windowed), 1e-5);
}
