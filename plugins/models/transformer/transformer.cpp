#include "transformer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "lora.h"
#include "safetensors.h"

namespace prefengine::plugins::model {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Configuration

void TransformerConfig::validate() const {
  auto fail = [](const std::string& field, const std::string& what, const std::string& value) {
    throw std::invalid_argument("transformer: " + field + " must be " + what + ", got " + value);
  };
  if (vocab_size < 1) fail("vocab_size", ">= 1", std::to_string(vocab_size));
  if (hidden_size < 1) fail("hidden_size", ">= 1", std::to_string(hidden_size));
  if (intermediate_size < 1) fail("intermediate_size", ">= 1", std::to_string(intermediate_size));
  if (num_hidden_layers < 1) fail("num_hidden_layers", ">= 1", std::to_string(num_hidden_layers));
  if (num_attention_heads < 1) {
    fail("num_attention_heads", ">= 1", std::to_string(num_attention_heads));
  }
  if (num_key_value_heads < 1 || num_attention_heads % num_key_value_heads != 0) {
    fail("num_key_value_heads", "a divisor of num_attention_heads (" +
                                    std::to_string(num_attention_heads) + ")",
         std::to_string(num_key_value_heads));
  }
  if (head_dim < 0) fail("head_dim", ">= 0", std::to_string(head_dim));
  if (head_dim == 0 && hidden_size % num_attention_heads != 0) {
    fail("hidden_size", "a multiple of num_attention_heads (" +
                            std::to_string(num_attention_heads) + ")",
         std::to_string(hidden_size));
  }
  if (head_size() % 2 != 0) fail("head_dim", "even (rotary pairs)", std::to_string(head_size()));
  if (!(rms_norm_eps > 0)) fail("rms_norm_eps", "> 0", std::to_string(rms_norm_eps));
  if (!(rope_theta > 0)) fail("rope_theta", "> 0", std::to_string(rope_theta));
  if (max_position_embeddings < 1) {
    fail("max_position_embeddings", ">= 1", std::to_string(max_position_embeddings));
  }
  if (!rope_scaling_type.empty() && rope_scaling_type != "linear" && rope_scaling_type != "llama3") {
    fail("rope_scaling", "linear or llama3", "'" + rope_scaling_type + "'");
  }
  if (!(rope_scaling_factor > 0)) fail("rope_scaling.factor", "> 0", std::to_string(rope_scaling_factor));
  if (rope_scaling_type == "llama3" &&
      !(rope_high_freq_factor > rope_low_freq_factor && rope_low_freq_factor > 0 &&
        rope_original_max_position > 0)) {
    fail("rope_scaling", "high_freq_factor > low_freq_factor > 0 and original_max_position_embeddings > 0",
         std::to_string(rope_high_freq_factor) + ", " + std::to_string(rope_low_freq_factor) + ", " +
             std::to_string(rope_original_max_position));
  }
  if (sliding_window < 0) fail("sliding_window", ">= 0", std::to_string(sliding_window));
}

at::Tensor TransformerConfig::rotary_inv_freq() const {
  const int64_t d = head_size();
  // Computed in double, then rounded to float (HF computes in float: the last bit may differ).
  at::Tensor inv_freq =
      at::pow(rope_theta, at::arange(0, d, 2, at::kDouble) / double(d)).reciprocal();
  if (rope_scaling_type == "linear") {
    inv_freq = inv_freq / rope_scaling_factor;
  } else if (rope_scaling_type == "llama3") {
    // transformers' _compute_llama3_parameters.
    const double old_context = double(rope_original_max_position);
    const double low_wavelen = old_context / rope_low_freq_factor;
    const double high_wavelen = old_context / rope_high_freq_factor;
    const at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / rope_scaling_factor, inv_freq);
    const at::Tensor smooth = (old_context / wavelen - rope_low_freq_factor) /
                              (rope_high_freq_factor - rope_low_freq_factor);
    const at::Tensor smoothed = (1 - smooth) * scaled / rope_scaling_factor + smooth * scaled;
    const at::Tensor medium = wavelen.ge(high_wavelen) & wavelen.le(low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  return inv_freq.to(at::kFloat);
}

int64_t TransformerConfig::num_parameters() const {
  const int64_t d = head_size();
  const int64_t q = hidden_size * num_attention_heads * d;
  const int64_t kv = 2 * hidden_size * num_key_value_heads * d;
  const int64_t bias = attention_bias ? (num_attention_heads + 2 * num_key_value_heads) * d : 0;
  const int64_t o = num_attention_heads * d * hidden_size;
  const int64_t mlp = 3 * hidden_size * intermediate_size;
  const int64_t layer = q + kv + bias + o + mlp + 2 * hidden_size;
  const int64_t embed = vocab_size * hidden_size;
  return embed * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + hidden_size;
}

namespace {

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
}

}  // namespace

TransformerConfig TransformerConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return from_json(text.str(), path);
}

TransformerConfig TransformerConfig::from_json(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    throw std::invalid_argument(path + ": not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!j.is_object()) throw std::invalid_argument(path + ": expected a JSON object");
  TransformerConfig c;
  auto get_int = [&](const char* key, int64_t fallback, bool required) -> int64_t {
    if (!j.contains(key) || j[key].is_null()) {
      if (required) throw std::invalid_argument(path + ": missing key '" + key + "'");
      return fallback;
    }
    if (!j[key].is_number_integer()) {
      throw std::invalid_argument(path + ": '" + key + "' must be an integer, got " + j[key].dump());
    }
    return j[key].get<int64_t>();
  };
  auto get_double = [&](const char* key, double fallback) -> double {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_number()) {
      throw std::invalid_argument(path + ": '" + key + "' must be a number, got " + j[key].dump());
    }
    return j[key].get<double>();
  };
  auto get_bool = [&](const char* key, bool fallback) -> bool {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    if (!j[key].is_boolean()) {
      throw std::invalid_argument(path + ": '" + key + "' must be true or false, got " + j[key].dump());
    }
    return j[key].get<bool>();
  };
  c.model_type = j.value("model_type", std::string("llama"));
  c.vocab_size = get_int("vocab_size", 0, true);
  c.hidden_size = get_int("hidden_size", 0, true);
  c.intermediate_size = get_int("intermediate_size", 0, true);
  c.num_hidden_layers = get_int("num_hidden_layers", 0, true);
  c.num_attention_heads = get_int("num_attention_heads", 0, true);
  c.num_key_value_heads = get_int("num_key_value_heads", c.num_attention_heads, false);
  c.head_dim = get_int("head_dim", 0, false);
  if (c.head_dim * c.num_attention_heads == c.hidden_size) c.head_dim = 0;
  c.rms_norm_eps = get_double("rms_norm_eps", 1e-6);
  c.rope_theta = get_double("rope_theta", 10000.0);
  c.max_position_embeddings = get_int("max_position_embeddings", 2048, false);
  // Llama, Qwen2 and Mistral configs all default to untied embeddings.
  c.tie_word_embeddings = get_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases and has no attention_bias key.
  c.attention_bias = get_bool("attention_bias", c.model_type == "qwen2");
  c.bos_token_id = get_int("bos_token_id", -1, false);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    c.eos_token_id = j["eos_token_id"].empty() ? -1 : j["eos_token_id"][0].get<int64_t>();
  } else {
    c.eos_token_id = get_int("eos_token_id", -1, false);
  }
  c.pad_token_id = get_int("pad_token_id", -1, false);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const nlohmann::json& r = j["rope_scaling"];
    const std::string type = r.is_object() ? r.value("rope_type", r.value("type", std::string())) : "";
    if (type != "linear" && type != "llama3") {
      throw std::invalid_argument(path + ": rope_scaling " + r.dump() +
                                  " is not supported (only linear and llama3)");
    }
    auto number = [&](const char* key, double fallback) {
      if (!r.contains(key)) return fallback;
      if (!r[key].is_number()) {
        throw std::invalid_argument(path + ": rope_scaling." + key + " must be a number");
      }
      return r[key].get<double>();
    };
    c.rope_scaling_type = type;
    c.rope_scaling_factor = number("factor", 1.0);
    if (type == "llama3") {
      c.rope_low_freq_factor = number("low_freq_factor", 1.0);
      c.rope_high_freq_factor = number("high_freq_factor", 4.0);
      c.rope_original_max_position =
          static_cast<int64_t>(number("original_max_position_embeddings", 8192));
    }
  }
  const std::string act = j.value("hidden_act", std::string("silu"));
  if (act != "silu") {
    throw std::invalid_argument(path + ": hidden_act '" + act + "' is not supported (only silu)");
  }
  if (get_bool("mlp_bias", false)) {
    throw std::invalid_argument(path + ": mlp_bias is not supported");
  }
  // Qwen2 has a sliding_window value even when use_sliding_window is false.
  const bool window_used = j.contains("use_sliding_window") ? get_bool("use_sliding_window", false)
                                                            : c.model_type == "mistral";
  if (window_used) c.sliding_window = get_int("sliding_window", 0, false);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
  return c;
}

std::string TransformerConfig::to_json() const {
  const std::string type = model_type.empty() ? "llama" : model_type;
  std::string arch = "LlamaForCausalLM";
  if (type == "qwen2") arch = "Qwen2ForCausalLM";
  if (type == "mistral") arch = "MistralForCausalLM";
  nlohmann::json j = {
      {"architectures", {arch}},
      {"model_type", type},
      {"vocab_size", vocab_size},
      {"hidden_size", hidden_size},
      {"intermediate_size", intermediate_size},
      {"num_hidden_layers", num_hidden_layers},
      {"num_attention_heads", num_attention_heads},
      {"num_key_value_heads", num_key_value_heads},
      {"head_dim", head_size()},
      {"rms_norm_eps", rms_norm_eps},
      {"rope_theta", rope_theta},
      {"max_position_embeddings", max_position_embeddings},
      {"tie_word_embeddings", tie_word_embeddings},
      {"attention_bias", attention_bias},
      {"hidden_act", "silu"},
      {"rope_scaling", nullptr},
      {"sliding_window", nullptr},
      {"use_sliding_window", sliding_window > 0},
      {"torch_dtype", "float32"},
  };
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  if (pad_token_id >= 0) j["pad_token_id"] = pad_token_id;
  if (sliding_window > 0) j["sliding_window"] = sliding_window;
  if (rope_scaling_type == "linear") {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope_scaling_factor}};
  } else if (rope_scaling_type == "llama3") {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_scaling_factor},
                         {"low_freq_factor", rope_low_freq_factor},
                         {"high_freq_factor", rope_high_freq_factor},
                         {"original_max_position_embeddings", rope_original_max_position}};
  }
  return j.dump(2) + "\n";
}

TransformerConfig transformer_config_from_options(PluginOptions& options,
                                                  std::string* pretrained_dir) {
  const std::string pretrained = options.get_string("pretrained", "");
  const std::string config_json = options.get_string("config_json", "");
  if (!pretrained.empty() && !config_json.empty()) {
    options.fail("config_json", "either pretrained or config_json, not both", "'" + config_json + "'");
  }
  TransformerConfig c;
  auto from_file = [&](const std::string& key, const std::string& file) {
    try {
      c = TransformerConfig::from_json_file(file);
    } catch (const std::exception& e) {
      options.fail(key, "a readable Hugging Face config.json", e.what());
    }
  };
  if (!pretrained.empty()) from_file("pretrained", (fs::path(pretrained) / "config.json").string());
  if (!config_json.empty()) from_file("config_json", config_json);
  if (pretrained_dir) *pretrained_dir = pretrained;

  c.vocab_size = options.get_int("vocab_size", c.vocab_size, 1);
  c.hidden_size = options.get_int("hidden_size", c.hidden_size, 1);
  c.intermediate_size = options.get_int("intermediate_size", c.intermediate_size, 1);
  c.num_hidden_layers = options.get_int("num_hidden_layers", c.num_hidden_layers, 1);
  c.num_attention_heads = options.get_int("num_attention_heads", c.num_attention_heads, 1);
  // Without an explicit value the key/value heads follow the query heads (plain multi-head).
  const bool heads_given = options.has("num_attention_heads");
  c.num_key_value_heads = options.get_int(
      "num_key_value_heads",
      heads_given && pretrained.empty() && config_json.empty() ? c.num_attention_heads
                                                               : c.num_key_value_heads,
      1);
  c.head_dim = options.get_int("head_dim", c.head_dim, 0);
  c.rms_norm_eps = options.get_double("rms_norm_eps", c.rms_norm_eps, 0, 1, true);
  c.rope_theta = options.get_double("rope_theta", c.rope_theta, 0,
                                    std::numeric_limits<double>::infinity(), true);
  c.max_position_embeddings =
      options.get_int("max_position_embeddings", c.max_position_embeddings, 1);
  c.tie_word_embeddings = options.get_bool("tie_word_embeddings", c.tie_word_embeddings);
  c.attention_bias = options.get_bool("attention_bias", c.attention_bias);
  c.gradient_checkpointing = options.get_bool("gradient_checkpointing", c.gradient_checkpointing);
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    options.fail("num_key_value_heads",
                 "a divisor of num_attention_heads (" + std::to_string(c.num_attention_heads) + ")",
                 std::to_string(c.num_key_value_heads));
  }
  if (c.head_dim == 0 && c.hidden_size % c.num_attention_heads != 0) {
    options.fail("hidden_size",
                 "a multiple of num_attention_heads (" + std::to_string(c.num_attention_heads) + ")",
                 std::to_string(c.hidden_size));
  }
  if (c.head_size() % 2 != 0) {
    options.fail(c.head_dim > 0 ? "head_dim" : "hidden_size",
                 "an even head size (rotary embeddings rotate pairs)", std::to_string(c.head_size()));
  }
  c.validate();
  return c;
}

// ---------------------------------------------------------------------------------------------
// Modules

namespace {

// A linear map with HF layout: weight [out, in], optional bias [out].
class Projection : public torch::nn::Module {
 public:
  Projection(int64_t in, int64_t out, bool bias) {
    weight = register_parameter("weight", at::empty({out, in}));
    if (bias) this->bias = register_parameter("bias", at::zeros({out}));
  }
  at::Tensor forward(const at::Tensor& x) const {
    const at::Tensor y = at::linear(x, weight, bias);
    return lora ? lora->add_to(y, x, is_training()) : y;
  }
  at::Tensor weight;
  at::Tensor bias;
  std::shared_ptr<LoraLinear> lora;  // the LoRA adapter (lora.h); null when none
};

class RmsNorm : public torch::nn::Module {
 public:
  RmsNorm(int64_t size, double eps) : eps_(eps) {
    weight = register_parameter("weight", at::ones({size}));
  }
  at::Tensor forward(const at::Tensor& x) const {
    // In float whatever the model's dtype, as HF's LlamaRMSNorm.
    const at::Tensor xf = x.to(at::kFloat);
    const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
    return (xf * at::rsqrt(variance + eps_)).to(x.scalar_type()) * weight;
  }
  at::Tensor weight;

 private:
  double eps_;
};

class WeightHolder : public torch::nn::Module {
 public:
  explicit WeightHolder(at::Tensor w) { weight = register_parameter("weight", std::move(w)); }
  at::Tensor weight;
};

// Slices of a cache for one layer; null when there is no cache.
struct LayerCache {
  at::Tensor* keys;
  at::Tensor* values;
  int64_t past;  // tokens cached before this forward
};

// x [B, H, T, D] rotated by the rotary angles (cos, sin [B, 1, T, D]) in HF's half-split layout.
at::Tensor apply_rotary(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  const at::Tensor x1 = x.narrow(-1, 0, half);
  const at::Tensor x2 = x.narrow(-1, half, half);
  return x * cos + at::cat({-x2, x1}, -1) * sin;
}

// Writes `fresh` [B, Hkv, T, D] at [past, past + T) of `buffer`, growing it as needed, and returns
// the filled part [B, Hkv, past + T, D].
at::Tensor append_to_cache(at::Tensor* buffer, const at::Tensor& fresh, int64_t past) {
  const int64_t needed = past + fresh.size(2);
  if (!buffer->defined() || buffer->size(2) < needed) {
    const int64_t old = buffer->defined() ? buffer->size(2) : 0;
    const int64_t capacity = std::max(needed, 2 * old);
    at::Tensor grown = at::zeros({fresh.size(0), fresh.size(1), capacity, fresh.size(3)},
                                 fresh.options());
    if (past > 0) grown.narrow(2, 0, past).copy_(buffer->narrow(2, 0, past));
    *buffer = grown;
  }
  buffer->narrow(2, past, fresh.size(2)).copy_(fresh);
  return buffer->narrow(2, 0, needed);
}

class Attention : public torch::nn::Module {
 public:
  explicit Attention(const TransformerConfig& c)
      : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_size()) {
    q_proj = register_module("q_proj", std::make_shared<Projection>(
                                           c.hidden_size, heads_ * head_dim_, c.attention_bias));
    k_proj = register_module("k_proj", std::make_shared<Projection>(
                                           c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
    v_proj = register_module("v_proj", std::make_shared<Projection>(
                                           c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
    o_proj = register_module("o_proj", std::make_shared<Projection>(heads_ * head_dim_,
                                                                    c.hidden_size, false));
  }

  // x [B, T, hidden]; bias [B, 1, 1, T, S] additive mask over the S keys.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& bias, const LayerCache* cache) const {
    const int64_t b = x.size(0);
    const int64_t t = x.size(1);
    const int64_t rep = heads_ / kv_heads_;
    at::Tensor q = q_proj->forward(x).view({b, t, heads_, head_dim_}).transpose(1, 2);
    at::Tensor k = k_proj->forward(x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
    at::Tensor v = v_proj->forward(x).view({b, t, kv_heads_, head_dim_}).transpose(1, 2);
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
    if (cache) {
      k = append_to_cache(cache->keys, k, cache->past);
      v = append_to_cache(cache->values, v, cache->past);
    }
    const int64_t s = k.size(2);
    // Query head h reads key/value head h / rep (HF's repeat_kv): group the rep query heads of a
    // key/value head along the time axis instead of copying the keys.
    q = q.reshape({b, kv_heads_, rep * t, head_dim_});
    at::Tensor scores = at::matmul(q, k.transpose(2, 3)) * (1.0 / std::sqrt(double(head_dim_)));
    scores = scores.view({b, kv_heads_, rep, t, s}) + bias;
    // Softmax in float (the float bias promotes low-precision scores), back to v's dtype.
    at::Tensor probs =
        at::softmax(scores, -1).to(v.scalar_type()).view({b, kv_heads_, rep * t, s});
    at::Tensor out = at::matmul(probs, v);  // [B, Hkv, rep*T, D]
    out = out.view({b, heads_, t, head_dim_}).transpose(1, 2).reshape({b, t, heads_ * head_dim_});
    return o_proj->forward(out);
  }

  std::shared_ptr<Projection> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t heads_, kv_heads_, head_dim_;
};

class Mlp : public torch::nn::Module {
 public:
  explicit Mlp(const TransformerConfig& c) {
    gate_proj = register_module(
        "gate_proj", std::make_shared<Projection>(c.hidden_size, c.intermediate_size, false));
    up_proj = register_module(
        "up_proj", std::make_shared<Projection>(c.hidden_size, c.intermediate_size, false));
    down_proj = register_module(
        "down_proj", std::make_shared<Projection>(c.intermediate_size, c.hidden_size, false));
  }
  at::Tensor forward(const at::Tensor& x) const {
    return down_proj->forward(at::silu(gate_proj->forward(x)) * up_proj->forward(x));
  }
  std::shared_ptr<Projection> gate_proj, up_proj, down_proj;
};

class DecoderLayer : public torch::nn::Module {
 public:
  explicit DecoderLayer(const TransformerConfig& c) {
    self_attn = register_module("self_attn", std::make_shared<Attention>(c));
    mlp = register_module("mlp", std::make_shared<Mlp>(c));
    input_layernorm =
        register_module("input_layernorm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
    post_attention_layernorm = register_module(
        "post_attention_layernorm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
  }
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                     const at::Tensor& bias, const LayerCache* cache) const {
    const at::Tensor h = x + self_attn->forward(input_layernorm->forward(x), cos, sin, bias, cache);
    return h + mlp->forward(post_attention_layernorm->forward(h));
  }
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<Mlp> mlp;
  std::shared_ptr<RmsNorm> input_layernorm, post_attention_layernorm;
};

// Reruns a layer's forward in backward instead of keeping its activations: the reentrant scheme
// of torch.utils.checkpoint, which LibTorch 1.13's C++ API lacks. The inner backward accumulates
// the layer's parameter gradients into .grad directly (as Python's reentrant checkpoint does), so
// use it with loss.backward(), not with autograd::grad on the parameters.
struct CheckpointedLayer : public torch::autograd::Function<CheckpointedLayer> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx,
                                                at::Tensor x, int64_t layer_address,
                                                at::Tensor cos, at::Tensor sin, at::Tensor bias) {
    const auto* layer = reinterpret_cast<const DecoderLayer*>(layer_address);
    ctx->saved_data["layer"] = layer_address;
    ctx->saved_data["cos"] = cos;
    ctx->saved_data["sin"] = sin;
    ctx->saved_data["bias"] = bias;
    ctx->save_for_backward({x});
    at::NoGradGuard no_grad;
    return {layer->forward(x, cos, sin, bias, nullptr)};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto* layer = reinterpret_cast<const DecoderLayer*>(ctx->saved_data["layer"].toInt());
    const at::Tensor cos = ctx->saved_data["cos"].toTensor();
    const at::Tensor sin = ctx->saved_data["sin"].toTensor();
    const at::Tensor bias = ctx->saved_data["bias"].toTensor();
    at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    at::Tensor out;
    {
      at::AutoGradMode enable(true);
      out = layer->forward(x, cos, sin, bias, nullptr);
    }
    torch::autograd::backward({out}, {grad_outputs[0]});
    return {x.grad(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

class TransformerDecoder : public torch::nn::Module {
 public:
  explicit TransformerDecoder(const TransformerConfig& c) {
    embed_tokens = register_module(
        "embed_tokens", std::make_shared<WeightHolder>(at::empty({c.vocab_size, c.hidden_size})));
    auto list = std::make_shared<torch::nn::Module>("Layers");
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
      layers.push_back(list->register_module(std::to_string(i), std::make_shared<DecoderLayer>(c)));
    }
    register_module("layers", list);
    norm = register_module("norm", std::make_shared<RmsNorm>(c.hidden_size, c.rms_norm_eps));
  }
  std::shared_ptr<WeightHolder> embed_tokens;
  std::vector<std::shared_ptr<DecoderLayer>> layers;
  std::shared_ptr<RmsNorm> norm;
};

// ---------------------------------------------------------------------------------------------
// Cache

TransformerCache::TransformerCache(int64_t num_layers, int64_t batch_size, int64_t capacity)
    : keys_(num_layers), values_(num_layers), batch_size_(batch_size), capacity_(capacity) {}

// ---------------------------------------------------------------------------------------------
// Model

TransformerModel::TransformerModel(const TransformerConfig& config) : config_(config) {
  config_.validate();
  build();
}

TransformerModel::TransformerModel(PluginOptions& options) {
  std::string pretrained;
  config_ = transformer_config_from_options(options, &pretrained);
  const LoraOptions lora = lora_options_from(options);
  if (lora.enabled() && lora.dropout > 0 && config_.gradient_checkpointing) {
    options.fail("lora.dropout", "0 with gradient_checkpointing (the recomputed layer would draw another mask)",
                 std::to_string(lora.dropout));
  }
  build();
  if (!pretrained.empty()) {
    try {
      load_pretrained(pretrained);
    } catch (const std::exception& e) {
      options.fail("pretrained", "a directory with loadable weights", e.what());
    }
  }
  if (lora.enabled()) enable_lora(lora, pretrained);
}

void TransformerModel::enable_lora(const LoraOptions& options, const std::string& base_model_name_or_path) {
  if (lora_) throw std::logic_error("transformer: LoRA adapters are already attached");
  auto set = std::make_unique<LoraSet>(options, base_model_name_or_path);
  for (size_t i = 0; i < decoder_->layers.size(); ++i) {
    DecoderLayer& layer = *decoder_->layers[i];
    const std::string prefix = "model.layers." + std::to_string(i) + ".";
    const std::pair<std::string, Projection*> projections[] = {
        {"self_attn.q_proj", layer.self_attn->q_proj.get()}, {"self_attn.k_proj", layer.self_attn->k_proj.get()},
        {"self_attn.v_proj", layer.self_attn->v_proj.get()}, {"self_attn.o_proj", layer.self_attn->o_proj.get()},
        {"mlp.gate_proj", layer.mlp->gate_proj.get()},        {"mlp.up_proj", layer.mlp->up_proj.get()},
        {"mlp.down_proj", layer.mlp->down_proj.get()}};
    for (const auto& [name, projection] : projections) {
      projection->lora = set->maybe_attach(prefix + name, *projection);
    }
  }
  for (auto& item : named_parameters()) {
    item.value().set_requires_grad(is_lora_parameter(item.key()));
  }
  lora_ = std::move(set);
}

void TransformerModel::set_adapters_enabled(bool enabled) {
  if (lora_) lora_->set_enabled(enabled);
}

bool TransformerModel::adapters_enabled() const { return lora_ && lora_->enabled(); }

bool TransformerModel::adapters_are_identity() const { return !lora_ || lora_->identity(); }

std::vector<std::string> TransformerModel::save_adapters(const std::string& directory) const {
  if (!lora_) throw std::logic_error("transformer: no LoRA adapters to save");
  return lora_->save_peft(directory);
}

void TransformerModel::merge_adapters() {
  if (lora_) lora_->merge();
}

TransformerModel::~TransformerModel() = default;

void TransformerModel::build() {
  decoder_ = register_module("model", std::make_shared<TransformerDecoder>(config_));
  if (!config_.tie_word_embeddings) {
    auto head = register_module(
        "lm_head", std::make_shared<WeightHolder>(at::empty({config_.vocab_size, config_.hidden_size})));
    lm_head_ = head->weight;
  }
  // HF's LlamaPreTrainedModel._init_weights: normal(0, 0.02) for linear and embedding weights,
  // zero biases, unit norms (RmsNorm starts at one).
  at::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& p = item.value();
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      p.zero_();
    } else if (name.find("norm.") == std::string::npos) {
      p.normal_(0.0, 0.02);
    }
  }
}

void TransformerModel::add_scalar_head() {
  if (score_.defined()) return;
  auto head = register_module(
      "score", std::make_shared<WeightHolder>(at::empty({1, config_.hidden_size})));
  {
    at::NoGradGuard no_grad;
    head->weight.normal_(0.0, 1.0 / std::sqrt(double(config_.hidden_size + 1)));
  }
  score_ = head->weight;
  // Follow the device and dtype of the rest of the model.
  const at::Tensor like = decoder_->embed_tokens->weight;
  if (score_.device() != like.device() || score_.scalar_type() != like.scalar_type()) {
    at::NoGradGuard no_grad;
    score_.set_data(score_.to(like.device(), like.scalar_type()));
  }
}

std::unique_ptr<KvCache> TransformerModel::new_cache(int64_t batch_size, int64_t max_length) {
  return std::make_unique<TransformerCache>(
      config_.num_hidden_layers, batch_size,
      max_length > 0 ? max_length : config_.max_position_embeddings);
}

ModelOutput TransformerModel::forward(const ModelInput& input) {
  const at::Tensor& ids = input.input_ids;
  if (!ids.defined() || ids.dim() != 2) {
    throw std::invalid_argument("transformer: input_ids must be a [B, T] tensor");
  }
  const int64_t b = ids.size(0);
  const int64_t t = ids.size(1);
  const auto device = decoder_->embed_tokens->weight.device();
  at::Tensor mask = input.attention_mask.defined()
                        ? input.attention_mask.to(device, at::kLong)
                        : at::ones({b, t}, at::TensorOptions().dtype(at::kLong).device(device));
  if (mask.sizes() != ids.sizes()) {
    throw std::invalid_argument("transformer: attention_mask must have the shape of input_ids");
  }
  TransformerCache* cache = nullptr;
  if (input.cache) {
    cache = dynamic_cast<TransformerCache*>(input.cache);
    if (!cache) throw std::invalid_argument("transformer: the cache was not made by this model");
    if (cache->batch_size() != b) {
      throw std::invalid_argument("transformer: cache batch size " +
                                  std::to_string(cache->batch_size()) + " != input batch " +
                                  std::to_string(b));
    }
  }
  const int64_t past = cache ? cache->length_ : 0;
  const int64_t s = past + t;

  if (config_.sliding_window > 0 && s > config_.sliding_window) {
    throw std::invalid_argument("transformer: " + std::to_string(s) +
                                " tokens exceed the sliding_window " +
                                std::to_string(config_.sliding_window) +
                                " (windowed attention is not implemented)");
  }

  // The mask of every key: the cached one followed by this input's.
  at::Tensor full_mask = mask;
  if (cache) {
    if (!cache->mask_.defined() || cache->mask_.size(1) < s) {
      const int64_t capacity = std::max({s, cache->capacity_, cache->mask_.defined()
                                                                   ? 2 * cache->mask_.size(1)
                                                                   : int64_t(0)});
      at::Tensor grown = at::zeros({b, capacity}, mask.options());
      if (past > 0) grown.narrow(1, 0, past).copy_(cache->mask_.narrow(1, 0, past));
      cache->mask_ = grown;
    }
    cache->mask_.narrow(1, past, t).copy_(mask);
    full_mask = cache->mask_.narrow(1, 0, s);
  }

  // Positions count the real tokens before each one, so that left padding does not shift them.
  at::Tensor positions = (full_mask.cumsum(1) - 1).clamp_min(0).narrow(1, past, t);
  const auto fopts = at::TensorOptions().dtype(at::kFloat).device(device);
  const at::Tensor inv_freq = config_.rotary_inv_freq().to(device);
  at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv_freq;  // [B, T, D/2]
  at::Tensor angles = at::cat({freqs, freqs}, -1).unsqueeze(1);           // [B, 1, T, D]
  const auto dtype = decoder_->embed_tokens->weight.scalar_type();
  const at::Tensor cos = angles.cos().to(dtype);
  const at::Tensor sin = angles.sin().to(dtype);

  // Additive mask [B, 1, 1, T, S]: query i (global position past + i) sees key j <= past + i
  // when key j is a real token. A finite minimum keeps all-padding query rows finite.
  at::Tensor query_index = at::arange(past, s, fopts.dtype(at::kLong)).unsqueeze(1);  // [T, 1]
  at::Tensor key_index = at::arange(0, s, fopts.dtype(at::kLong)).unsqueeze(0);       // [1, S]
  at::Tensor allowed = key_index.le(query_index).unsqueeze(0) &
                       full_mask.ne(0).unsqueeze(1);  // [B, T, S]
  at::Tensor bias = at::zeros({b, t, s}, fopts)
                        .masked_fill(allowed.logical_not(), std::numeric_limits<float>::lowest())
                        .view({b, 1, 1, t, s});

  at::Tensor x = at::embedding(decoder_->embed_tokens->weight, ids.to(device, at::kLong));
  const bool checkpoint = config_.gradient_checkpointing && is_training() && !cache &&
                          at::GradMode::is_enabled();
  for (size_t i = 0; i < decoder_->layers.size(); ++i) {
    const DecoderLayer& layer = *decoder_->layers[i];
    // A layer whose input needs no gradient (frozen embeddings) runs normally: the recomputed
    // backward would never be reached and its parameters would get no gradients.
    if (checkpoint && x.requires_grad()) {
      x = CheckpointedLayer::apply(x, reinterpret_cast<int64_t>(&layer), cos, sin, bias)[0];
    } else if (cache) {
      LayerCache lc{&cache->keys_[i], &cache->values_[i], past};
      x = layer.forward(x, cos, sin, bias, &lc);
    } else {
      x = layer.forward(x, cos, sin, bias, nullptr);
    }
  }
  if (cache) cache->length_ = s;
  x = decoder_->norm->forward(x);

  ModelOutput out;
  if (input.want_logits) {
    out.logits = at::matmul(x, (lm_head_.defined() ? lm_head_ : decoder_->embed_tokens->weight).t())
                     .to(at::kFloat);
  }
  if (input.want_scalar) {
    if (!score_.defined()) {
      throw std::invalid_argument("transformer: want_scalar needs add_scalar_head() first");
    }
    out.scalar = at::matmul(x, score_.t()).squeeze(-1).to(at::kFloat);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pretrained weights

void TransformerModel::save_pretrained(const std::string& directory) const {
  fs::create_directories(directory);
  {
    std::ofstream out(fs::path(directory) / "config.json");
    if (!out) throw std::runtime_error(directory + "/config.json: cannot open for writing");
    out << config_.to_json();
  }
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : named_parameters()) {
    if (is_lora_parameter(item.key())) continue;
    tensors.emplace(item.key(), item.value().detach().to(at::kFloat));
  }
  if (lora_) lora_->fold_into(tensors);
  save_safetensors((fs::path(directory) / "model.safetensors").string(), tensors);
}

void TransformerModel::load_pretrained(const std::string& directory) {
  const fs::path dir(directory);
  std::vector<std::string> files;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const nlohmann::json j = read_json(index.string());
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) {
      throw std::invalid_argument(index.string() + ": expected an object 'weight_map'");
    }
    std::set<std::string> unique;
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) {
        throw std::invalid_argument(index.string() + ": weight_map['" + name + "'] is not a file name");
      }
      unique.insert(file.get<std::string>());
    }
    for (const auto& f : unique) files.push_back((dir / f).string());
  } else if (fs::exists(dir / "model.safetensors")) {
    files.push_back((dir / "model.safetensors").string());
  } else {
    throw std::runtime_error(directory + ": neither model.safetensors nor model.safetensors.index.json");
  }

  std::map<std::string, std::pair<at::Tensor, std::string>> tensors;  // name -> (tensor, file)
  for (const auto& f : files) {
    for (auto& [name, tensor] : load_safetensors(f)) {
      if (tensors.count(name)) {
        throw std::invalid_argument(f + ": tensor '" + name + "' is also in " + tensors[name].second);
      }
      tensors.emplace(name, std::make_pair(std::move(tensor), f));
    }
  }
  if (tensors.count("score.weight") && !score_.defined()) add_scalar_head();

  at::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    if (is_lora_parameter(name)) continue;  // adapters are not part of the base weights
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      throw std::invalid_argument(directory + ": tensor '" + name + "' is missing");
    }
    const at::Tensor& source = it->second.first;
    if (source.sizes() != item.value().sizes()) {
      std::ostringstream msg;
      msg << it->second.second << ": tensor '" << name << "' has shape " << source.sizes()
          << ", the model expects " << item.value().sizes();
      throw std::invalid_argument(msg.str());
    }
    const auto type = source.scalar_type();
    if (type != at::kFloat && type != at::kHalf && type != at::kBFloat16 && type != at::kDouble) {
      throw std::invalid_argument(it->second.second + ": tensor '" + name + "' has dtype " +
                                  std::string(c10::toString(type)) + ", expected a float type");
    }
    item.value().copy_(source.to(at::kFloat));
    used.insert(name);
  }
  for (const auto& [name, entry] : tensors) {
    if (used.count(name)) continue;
    // Old checkpoints store the rotary frequencies; a tied model may still store lm_head.
    if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (name == "lm_head.weight" && config_.tie_word_embeddings) continue;
    throw std::invalid_argument(entry.second + ": unknown tensor '" + name +
                                "' (not part of this transformer configuration)");
  }
}

}  // namespace prefengine::plugins::model
