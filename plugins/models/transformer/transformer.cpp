#include "transformer.h"

#include "decode_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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
  if (model_type != "llama" && model_type != "qwen2" && model_type != "mistral") {
    fail("model_type", "llama, qwen2 or mistral", "'" + model_type + "'");
  }
  if (model_type == "qwen2" && !attention_bias) {
    fail("attention_bias", "true for qwen2 (Qwen2 always has q/k/v biases)", "false");
  }
  if (model_type == "mistral" && attention_bias) {
    fail("attention_bias", "false for mistral (MistralConfig has no attention biases)", "true");
  }
  if (model_type == "llama" && sliding_window > 0) {
    fail("sliding_window", "0 for llama (only mistral and qwen2 have sliding windows)",
         std::to_string(sliding_window));
  }
  if (!layer_types.empty()) {
    if (static_cast<int64_t>(layer_types.size()) != num_hidden_layers) {
      fail("layer_types", std::to_string(num_hidden_layers) + " entries (one per layer)",
           std::to_string(layer_types.size()));
    }
    for (const auto& t : layer_types) {
      if (t != "full_attention" && t != "sliding_attention") {
        fail("layer_types", "full_attention or sliding_attention entries", "'" + t + "'");
      }
    }
  }
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
  const int64_t bias = (attention_bias ? (num_attention_heads + 2 * num_key_value_heads) * d : 0) +
                       (output_bias() ? hidden_size : 0);
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

const std::vector<std::string>& TransformerConfig::harmless_config_keys() {
  // Bookkeeping, training-time or generation-time settings: none changes the logits of a forward.
  static const std::vector<std::string> keys = {
      "_name_or_path", "_attn_implementation", "_attn_implementation_autoset", "architectures",
      "bad_words_ids", "begin_suppress_tokens", "chunk_size_feed_forward", "decoder_start_token_id",
      "diversity_penalty", "do_sample", "dtype", "early_stopping", "encoder_no_repeat_ngram_size",
      "exponential_decay_length_penalty", "finetuning_task", "forced_bos_token_id",
      "forced_eos_token_id", "id2label", "initializer_range", "is_decoder", "label2id", "length_penalty",
      "max_length", "min_length", "no_repeat_ngram_size", "num_beam_groups", "num_beams",
      "num_return_sequences", "output_attentions", "output_hidden_states", "output_scores",
      "prefix", "pretraining_tp", "problem_type", "remove_invalid_values", "repetition_penalty",
      "return_dict", "return_dict_in_generate", "sep_token_id", "suppress_tokens",
      "task_specific_params", "temperature", "tf_legacy_loss", "tokenizer_class", "top_k", "top_p",
      "torch_dtype", "torchscript", "transformers_version", "typical_p", "use_bfloat16",
      "use_cache"};
  return keys;
}

int64_t TransformerConfig::layer_window(int64_t layer) const {
  if (sliding_window <= 0) return 0;
  if (layer_types.empty()) return sliding_window;
  return layer_types.at(static_cast<size_t>(layer)) == "sliding_attention" ? sliding_window : 0;
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
  std::set<std::string> read;  // the keys understood below
  auto present = [&](const char* key) {
    read.insert(key);
    return j.contains(key) && !j[key].is_null();
  };
  auto get_int = [&](const char* key, int64_t fallback, bool required) -> int64_t {
    if (!present(key)) {
      if (required) throw std::invalid_argument(path + ": missing key '" + key + "'");
      return fallback;
    }
    if (!j[key].is_number_integer()) {
      throw std::invalid_argument(path + ": '" + key + "' must be an integer, got " + j[key].dump());
    }
    return j[key].get<int64_t>();
  };
  auto get_double = [&](const char* key, double fallback) -> double {
    if (!present(key)) return fallback;
    if (!j[key].is_number()) {
      throw std::invalid_argument(path + ": '" + key + "' must be a number, got " + j[key].dump());
    }
    return j[key].get<double>();
  };
  auto get_bool = [&](const char* key, bool fallback) -> bool {
    if (!present(key)) return fallback;
    if (!j[key].is_boolean()) {
      throw std::invalid_argument(path + ": '" + key + "' must be true or false, got " + j[key].dump());
    }
    return j[key].get<bool>();
  };
  auto get_string = [&](const char* key, const std::string& fallback) -> std::string {
    if (!present(key)) return fallback;
    if (!j[key].is_string()) {
      throw std::invalid_argument(path + ": '" + key + "' must be a string, got " + j[key].dump());
    }
    return j[key].get<std::string>();
  };
  c.model_type = get_string("model_type", "llama");
  if (c.model_type != "llama" && c.model_type != "qwen2" && c.model_type != "mistral") {
    throw std::invalid_argument(path + ": model_type '" + c.model_type +
                                "' is not supported (llama, qwen2 or mistral)");
  }
  c.vocab_size = get_int("vocab_size", 0, true);
  c.hidden_size = get_int("hidden_size", 0, true);
  c.intermediate_size = get_int("intermediate_size", 0, true);
  c.num_hidden_layers = get_int("num_hidden_layers", 0, true);
  c.num_attention_heads = get_int("num_attention_heads", 0, true);
  c.num_key_value_heads = get_int("num_key_value_heads", c.num_attention_heads, false);
  c.head_dim = get_int("head_dim", 0, false);
  if (c.head_dim * c.num_attention_heads == c.hidden_size) c.head_dim = 0;
  c.rms_norm_eps = get_double("rms_norm_eps", 1e-6);
  c.max_position_embeddings = get_int("max_position_embeddings", 2048, false);
  // Llama, Qwen2 and Mistral configs all default to untied embeddings.
  c.tie_word_embeddings = get_bool("tie_word_embeddings", false);
  // Qwen2 always has q/k/v biases (Qwen2Attention ignores attention_bias); Mistral has none.
  const bool bias = get_bool("attention_bias", false);
  if (c.model_type == "qwen2") {
    c.attention_bias = true;
  } else if (c.model_type == "mistral" && bias) {
    throw std::invalid_argument(path + ": attention_bias: true is not part of MistralConfig");
  } else {
    c.attention_bias = bias;
  }
  c.bos_token_id = get_int("bos_token_id", -1, false);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    read.insert("eos_token_id");
    c.eos_token_id = j["eos_token_id"].empty() ? -1 : j["eos_token_id"][0].get<int64_t>();
  } else {
    c.eos_token_id = get_int("eos_token_id", -1, false);
  }
  c.pad_token_id = get_int("pad_token_id", -1, false);

  // Rotary embeddings: rope_theta and rope_scaling (transformers 4.x), or rope_parameters
  // {rope_type, rope_theta, factor, ...} (the newer layout). Both may be given if they agree.
  struct Rope {
    bool given = false;
    std::string type;  // "" = default
    double theta = 0;  // 0 = not given
    double factor = 1.0, low = 1.0, high = 4.0;
    int64_t original = 8192;
  };
  auto parse_rope = [&](const char* key) {
    Rope rope;
    if (!present(key)) return rope;
    const nlohmann::json& r = j[key];
    const std::string where = path + ": " + key;
    if (!r.is_object()) throw std::invalid_argument(where + " must be an object, got " + r.dump());
    rope.given = true;
    std::string type;
    for (const char* name : {"rope_type", "type"}) {
      if (!r.contains(name)) continue;
      if (!r[name].is_string()) throw std::invalid_argument(where + "." + name + " must be a string");
      type = r[name].get<std::string>();
    }
    if (type.empty() || type == "default") {
      type = "";
    } else if (type != "linear" && type != "llama3") {
      throw std::invalid_argument(where + ": rope type '" + type + "' in " + r.dump() +
                                  " is not supported (only default, linear and llama3)");
    }
    rope.type = type;
    std::set<std::string> allowed = {"rope_type", "type", "rope_theta"};
    if (type == "linear") allowed.insert("factor");
    if (type == "llama3") {
      allowed.insert({"factor", "low_freq_factor", "high_freq_factor",
                      "original_max_position_embeddings"});
    }
    for (const auto& item : r.items()) {
      if (item.key() == "partial_rotary_factor" && item.value().is_number() &&
          item.value().get<double>() == 1.0) {
        continue;  // the whole head is rotated: what this model does
      }
      if (!allowed.count(item.key())) {
        throw std::invalid_argument(where + "." + item.key() + " is not understood for rope type '" +
                                    (type.empty() ? "default" : type) +
                                    "' (it would change the rotary embeddings)");
      }
    }
    auto number = [&](const char* name, double fallback) {
      if (!r.contains(name) || r[name].is_null()) return fallback;
      if (!r[name].is_number()) {
        throw std::invalid_argument(where + "." + name + " must be a number, got " + r[name].dump());
      }
      return r[name].get<double>();
    };
    rope.theta = number("rope_theta", 0);
    rope.factor = number("factor", 1.0);
    rope.low = number("low_freq_factor", 1.0);
    rope.high = number("high_freq_factor", 4.0);
    rope.original = static_cast<int64_t>(number("original_max_position_embeddings", 8192));
    return rope;
  };
  const Rope scaling = parse_rope("rope_scaling");
  const Rope parameters = parse_rope("rope_parameters");
  if (scaling.given && scaling.theta != 0) {
    throw std::invalid_argument(path + ": rope_scaling.rope_theta is not a transformers key "
                                "(rope_theta belongs at the top level or in rope_parameters)");
  }
  if (scaling.given && parameters.given &&
      (scaling.type != parameters.type || scaling.factor != parameters.factor ||
       scaling.low != parameters.low || scaling.high != parameters.high ||
       scaling.original != parameters.original)) {
    throw std::invalid_argument(path + ": rope_scaling " + j["rope_scaling"].dump() +
                                " and rope_parameters " + j["rope_parameters"].dump() + " disagree");
  }
  const double top_theta = get_double("rope_theta", 0);
  if (top_theta != 0 && parameters.theta != 0 && top_theta != parameters.theta) {
    throw std::invalid_argument(path + ": rope_theta " + j["rope_theta"].dump() +
                                " and rope_parameters.rope_theta " +
                                j["rope_parameters"]["rope_theta"].dump() + " disagree");
  }
  c.rope_theta = parameters.theta != 0 ? parameters.theta : top_theta != 0 ? top_theta : 10000.0;
  const Rope& rope = parameters.given ? parameters : scaling;
  c.rope_scaling_type = rope.type;
  if (!rope.type.empty()) c.rope_scaling_factor = rope.factor;
  if (rope.type == "llama3") {
    c.rope_low_freq_factor = rope.low;
    c.rope_high_freq_factor = rope.high;
    c.rope_original_max_position = rope.original;
  }
  if (present("partial_rotary_factor") &&
      !(j["partial_rotary_factor"].is_number() && j["partial_rotary_factor"].get<double>() == 1.0)) {
    throw std::invalid_argument(path + ": partial_rotary_factor " + j["partial_rotary_factor"].dump() +
                                " is not supported (only 1.0: the whole head is rotated)");
  }

  const std::string act = get_string("hidden_act", "silu");
  if (act != "silu") {
    throw std::invalid_argument(path + ": hidden_act '" + act + "' is not supported (only silu)");
  }
  if (get_bool("mlp_bias", false)) {
    throw std::invalid_argument(path + ": mlp_bias: true is not supported");
  }
  if (get_double("attention_dropout", 0.0) != 0.0) {
    throw std::invalid_argument(path + ": attention_dropout " + j["attention_dropout"].dump() +
                                " is not supported (only 0: this model applies no dropout)");
  }
  if (get_bool("is_encoder_decoder", false) || get_bool("add_cross_attention", false)) {
    throw std::invalid_argument(path + ": is_encoder_decoder/add_cross_attention: true describe "
                                "another architecture than a decoder-only transformer");
  }

  // Sliding windows. Mistral: every layer (sliding_window null = none). Qwen2: only when
  // use_sliding_window is true, and then on the layers from max_window_layers on (Qwen2's
  // layer_types default). The newer layout lists layer_types explicitly.
  const int64_t window = get_int("sliding_window", 0, false);
  const bool use_window = get_bool("use_sliding_window", c.model_type != "qwen2");
  const int64_t max_window_layers = get_int("max_window_layers", 0, false);
  if (c.model_type == "llama" && window != 0) {
    throw std::invalid_argument(path + ": sliding_window " + j["sliding_window"].dump() +
                                " is not a Llama setting (use model_type mistral or qwen2)");
  }
  if (use_window && window > 0) {
    c.sliding_window = window;
    if (c.model_type == "qwen2") {
      for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        c.layer_types.push_back(i >= max_window_layers ? "sliding_attention" : "full_attention");
      }
    }
  } else if (window < 0) {
    throw std::invalid_argument(path + ": sliding_window must be >= 0 or null, got " +
                                std::to_string(window));
  }
  if (present("layer_types")) {
    const nlohmann::json& types = j["layer_types"];
    if (!types.is_array() || static_cast<int64_t>(types.size()) != c.num_hidden_layers) {
      throw std::invalid_argument(path + ": layer_types must be a list of " +
                                  std::to_string(c.num_hidden_layers) + " layer types, got " +
                                  types.dump());
    }
    std::vector<std::string> listed;
    for (const auto& t : types) {
      if (!t.is_string() || (t != "full_attention" && t != "sliding_attention")) {
        throw std::invalid_argument(path + ": layer_types entries must be \"full_attention\" or "
                                    "\"sliding_attention\", got " + t.dump());
      }
      listed.push_back(t.get<std::string>());
    }
    // Without a window in use (sliding_window null, Qwen2's use_sliding_window false) every
    // layer attends to everything, as in transformers.
    c.layer_types = c.sliding_window > 0 ? listed : std::vector<std::string>();
  }

  // Every other key must be known not to change the model.
  const auto& harmless = harmless_config_keys();
  for (const auto& item : j.items()) {
    if (read.count(item.key())) continue;
    if (std::find(harmless.begin(), harmless.end(), item.key()) != harmless.end()) continue;
    throw std::invalid_argument(
        path + ": key '" + item.key() + "' (" + item.value().dump() +
        ") is not understood by the transformer plugin and may change the model's math; "
        "supported: the LlamaConfig/Qwen2Config/MistralConfig keys, and the keys known to be "
        "harmless (see docs/architecture.md)");
  }
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
  return c;
}

std::string TransformerConfig::to_json(const std::string& torch_dtype) const {
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
      {"hidden_act", "silu"},
      {"rope_scaling", nullptr},
      {"attention_dropout", 0.0},
      {"initializer_range", 0.02},
      {"use_cache", true},
      {"torch_dtype", torch_dtype},
      {"transformers_version", "4.46.0"},
  };
  if (type == "llama") {
    j["attention_bias"] = attention_bias;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
  }
  if (type != "llama") {
    j["sliding_window"] = sliding_window > 0 ? nlohmann::json(sliding_window) : nlohmann::json();
  }
  if (type == "qwen2") {
    // Qwen2: the window applies from max_window_layers on; layer_types says it per layer.
    int64_t first_window = num_hidden_layers;
    for (int64_t i = 0; i < num_hidden_layers; ++i) {
      if (layer_window(i) > 0) {
        first_window = i;
        break;
      }
    }
    j["use_sliding_window"] = sliding_window > 0;
    j["max_window_layers"] = first_window;
  }
  if (sliding_window > 0 && !layer_types.empty()) j["layer_types"] = layer_types;
  if (bos_token_id >= 0) j["bos_token_id"] = bos_token_id;
  if (eos_token_id >= 0) j["eos_token_id"] = eos_token_id;
  if (pad_token_id >= 0) j["pad_token_id"] = pad_token_id;
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
  const bool type_given = options.has("model_type");
  c.model_type = options.get_choice("model_type", c.model_type, {"llama", "qwen2", "mistral"});
  // Qwen2 always has q/k/v biases.
  c.attention_bias = options.get_bool("attention_bias", c.attention_bias ||
                                                            (type_given && c.model_type == "qwen2"));
  c.sliding_window = options.get_int("sliding_window", c.sliding_window, 0);
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

// x W^T (+ bias) for a single row x (numel = W's columns) through sgemv, shaped like x with W's
// rows as the last size; undefined when the matrix-matrix product is the better call. OpenBLAS
// 0.3.21's sgemm handles one row with its "small matrix" kernel, fast for narrow outputs but slow
// when the output is wide, and packs (copies) the whole weight once the product is past its small
// size: measured for one row (2 threads), [512 -> 1376] 750 us against 190 us for sgemv and
// [512 -> 4000] 1.7-2.8 ms against 0.3-0.4 ms, while sgemv loses below ~1000 outputs
// ([256 -> 688] 13 against 40 us). So outputs of 1024 or more take sgemv. The sum runs in another
// order than sgemm's: the logits can differ in the last bits from the full forward's.
at::Tensor single_row_product(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& x) {
  if (weight.size(0) < 1024) return at::Tensor();
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = weight.size(0);
  const at::Tensor row = x.reshape({-1});
  return (bias.defined() ? at::addmv(bias, weight, row) : at::mv(weight, row)).view(shape);
}

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
  // forward() for the KV-cache path: one input row (batch 1, one token) with a wide output goes
  // through matrix-vector BLAS (single_row_product), anything else through forward().
  at::Tensor forward_cached(const at::Tensor& x) const {
    if (lora || x.numel() != weight.size(1)) return forward(x);
    const at::Tensor y = single_row_product(weight, bias, x);
    return y.defined() ? y : forward(x);
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

// What one forward with the KV cache shares across layers on the CPU float path (forward_cached).
struct CachedStep {
  const int64_t* positions = nullptr;  // [B * T] row-major: each new token's position
  const float* cos = nullptr;          // the rotary tables [P, D] (TransformerModel::rotary_table)
  const float* sin = nullptr;
  int64_t past = 0;                    // tokens cached before this forward
};

// Rotates a projection's output `proj` [B, T, H * D] by the rotary angles of each token's position
// and writes token i of row b, head h to dest[b, h, offset + i, :] (dest [B, H, C, D] contiguous
// float). The arithmetic of apply_rotary element for element: x * cos + rotate_half(x) * sin, with
// rotate_half(x) = (-x2, x1), each product rounded to float and then summed.
void rotate_into(const at::Tensor& proj, int64_t heads, int64_t d, const CachedStep& step, at::Tensor& dest,
                 int64_t offset) {
  const at::Tensor src = proj.contiguous();
  const float* x = src.data_ptr<float>();
  float* out = dest.data_ptr<float>();
  const int64_t b = src.size(0), t = src.size(1), capacity = dest.size(2);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < t; ++i) {
      const int64_t position = step.positions[r * t + i];
      const float* c = step.cos + position * d;
      const float* s = step.sin + position * d;
      for (int64_t h = 0; h < heads; ++h) {
        decode::rotate(x + ((r * t + i) * heads + h) * d, c, s, d,
                       out + ((r * heads + h) * capacity + offset + i) * d);
      }
    }
  }
}

// Copies a projection's output `proj` [B, T, H * D] to dest[b, h, offset + i, :] (dest [B, H, C, D]
// contiguous float): the values written into the cache without a transposed temporary.
void copy_into(const at::Tensor& proj, int64_t heads, int64_t d, at::Tensor& dest, int64_t offset) {
  const at::Tensor src = proj.contiguous();
  const float* x = src.data_ptr<float>();
  float* out = dest.data_ptr<float>();
  const int64_t b = src.size(0), t = src.size(1), capacity = dest.size(2);
  for (int64_t r = 0; r < b; ++r) {
    for (int64_t i = 0; i < t; ++i) {
      for (int64_t h = 0; h < heads; ++h) {
        std::memcpy(out + ((r * heads + h) * capacity + offset + i) * d, x + ((r * t + i) * heads + h) * d,
                    static_cast<size_t>(d) * sizeof(float));
      }
    }
  }
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
                                                                    c.hidden_size, c.output_bias()));
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

  // The same attention on the CPU float path with the cache: q and k rotated by the kernel above,
  // k and v written in place into the cache's buffers [B, Hkv, C, D] at step.past; bias [B, 1, 1, T,
  // S] or undefined when nothing is masked. Equal to forward() bit for bit (same operations on the
  // same values; the in-place scale and mask give the values the out-of-place ones do), except
  // where a single row takes sgemv (Projection::forward_cached).
  at::Tensor forward_cached(const at::Tensor& x, const CachedStep& step, const at::Tensor& bias,
                            at::Tensor* keys, at::Tensor* values) const {
    const int64_t b = x.size(0);
    const int64_t t = x.size(1);
    const int64_t rep = heads_ / kv_heads_;
    const int64_t s = step.past + t;
    at::Tensor q = at::empty({b, heads_, t, head_dim_}, x.options());
    rotate_into(q_proj->forward_cached(x), heads_, head_dim_, step, q, 0);
    rotate_into(k_proj->forward_cached(x), kv_heads_, head_dim_, step, *keys, step.past);
    copy_into(v_proj->forward_cached(x), kv_heads_, head_dim_, *values, step.past);
    at::Tensor scores =
        at::matmul(q.view({b, kv_heads_, rep * t, head_dim_}), keys->narrow(2, 0, s).transpose(2, 3));
    scores.mul_(1.0 / std::sqrt(double(head_dim_)));
    if (bias.defined()) scores.view({b, kv_heads_, rep, t, s}).add_(bias);
    at::Tensor out = at::matmul(at::softmax(scores, -1), values->narrow(2, 0, s));  // [B, Hkv, rep*T, D]
    out = out.view({b, heads_, t, head_dim_}).transpose(1, 2).reshape({b, t, heads_ * head_dim_});
    return o_proj->forward_cached(out);
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
  // forward() for the KV-cache path: the gate's activation and the product in place (the same
  // values), the projections through Projection::forward_cached.
  at::Tensor forward_cached(const at::Tensor& x) const {
    at::Tensor gate = gate_proj->forward_cached(x);
    at::silu_(gate);
    return down_proj->forward_cached(gate.mul_(up_proj->forward_cached(x)));
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
  // forward() on the CPU float path with the cache (Attention::forward_cached); the residual sums
  // are taken in place into the fresh sublayer outputs (a + b == b + a in floating point).
  at::Tensor forward_cached(const at::Tensor& x, const CachedStep& step, const at::Tensor& bias,
                            at::Tensor* keys, at::Tensor* values) const {
    at::Tensor h = self_attn->forward_cached(input_layernorm->forward(x), step, bias, keys, values);
    h.add_(x);
    return mlp->forward_cached(post_attention_layernorm->forward(h)).add_(h);
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
  fused_decode_ = options.get_bool("fused_decode", true);
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
  // Packed rows (PackedSequences): segment ids 1..segments, each segment computed as a row alone.
  const int64_t segments = mask.numel() > 0 ? mask.max().item<int64_t>() : 0;
  if (segments > 1 && cache) {
    throw std::invalid_argument("transformer: packed rows (attention_mask values above 1) take no KV cache");
  }
  if (cache && device.is_cpu() && decoder_->embed_tokens->weight.scalar_type() == at::kFloat &&
      !at::GradMode::is_enabled()) {
    return forward_cached(input, ids.to(device, at::kLong), mask, *cache);
  }
  const int64_t past = cache ? cache->length_ : 0;
  const int64_t s = past + t;

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

  // Positions count the real tokens before each one, so that left padding does not shift them;
  // in packed rows, the tokens of the same segment before each one.
  at::Tensor positions;
  if (segments > 1) {
    positions = at::zeros_like(full_mask);
    for (int64_t k = 1; k <= segments; ++k) {
      const at::Tensor in = full_mask.eq(k).to(at::kLong);
      positions.add_(in * (in.cumsum(1) - 1));
    }
  } else {
    positions = (full_mask.cumsum(1) - 1).clamp_min(0).narrow(1, past, t);
  }
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
  if (segments > 1) allowed = allowed & full_mask.unsqueeze(1).eq(full_mask.unsqueeze(2));  // same segment
  auto additive = [&](const at::Tensor& keep) {
    return at::zeros({b, t, s}, fopts)
        .masked_fill(keep.logical_not(), std::numeric_limits<float>::lowest())
        .view({b, 1, 1, t, s});
  };
  const at::Tensor bias = additive(allowed);
  // Sliding-window layers (Mistral, Qwen2) also mask the keys W or more positions back:
  // query i sees key j when i - W < j <= i, in the full forward and with the KV cache alike.
  at::Tensor window_bias;
  if (config_.sliding_window > 0 && s > config_.sliding_window) {
    window_bias = additive(allowed & (query_index - key_index).lt(config_.sliding_window).unsqueeze(0));
  }

  at::Tensor x = at::embedding(decoder_->embed_tokens->weight, ids.to(device, at::kLong));
  const bool checkpoint = config_.gradient_checkpointing && is_training() && !cache &&
                          at::GradMode::is_enabled();
  for (size_t i = 0; i < decoder_->layers.size(); ++i) {
    const DecoderLayer& layer = *decoder_->layers[i];
    const at::Tensor& layer_bias =
        window_bias.defined() && config_.layer_window(int64_t(i)) > 0 ? window_bias : bias;
    // A layer whose input needs no gradient (frozen embeddings) runs normally: the recomputed
    // backward would never be reached and its parameters would get no gradients.
    if (checkpoint && x.requires_grad()) {
      x = CheckpointedLayer::apply(x, reinterpret_cast<int64_t>(&layer), cos, sin, layer_bias)[0];
    } else if (cache) {
      LayerCache lc{&cache->keys_[i], &cache->values_[i], past};
      x = layer.forward(x, cos, sin, layer_bias, &lc);
    } else {
      x = layer.forward(x, cos, sin, layer_bias, nullptr);
    }
  }
  if (cache) cache->length_ = s;
  return outputs(x, input, /*cached=*/false);
}

ModelOutput TransformerModel::outputs(const at::Tensor& hidden, const ModelInput& input, bool cached) const {
  const at::Tensor x = decoder_->norm->forward(hidden);
  ModelOutput out;
  if (input.want_logits) {
    const at::Tensor& head = lm_head_.defined() ? lm_head_ : decoder_->embed_tokens->weight;
    if (cached && x.numel() == head.size(1)) out.logits = single_row_product(head, at::Tensor(), x);
    if (!out.logits.defined()) out.logits = at::matmul(x, head.t()).to(at::kFloat);
  }
  if (input.want_scalar) {
    if (!score_.defined()) {
      throw std::invalid_argument("transformer: want_scalar needs add_scalar_head() first");
    }
    out.scalar = at::matmul(x, score_.t()).squeeze(-1).to(at::kFloat);
  }
  return out;
}

std::pair<at::Tensor, at::Tensor> TransformerModel::rotary_table(int64_t length) const {
  const at::Tensor& like = decoder_->embed_tokens->weight;
  std::lock_guard<std::mutex> lock(rope_mutex_);
  if (!rope_cos_.defined() || rope_cos_.size(0) < length || rope_cos_.device() != like.device() ||
      rope_cos_.scalar_type() != like.scalar_type()) {
    const int64_t old = rope_cos_.defined() ? rope_cos_.size(0) : 0;
    const int64_t rows = std::max({length, 2 * old, int64_t(256)});
    at::NoGradGuard no_grad;
    // As the full forward: float positions times the float inverse frequencies, then cos and sin.
    const at::Tensor inv_freq = config_.rotary_inv_freq().to(like.device());
    const at::Tensor freqs =
        at::arange(rows, at::TensorOptions().dtype(at::kFloat).device(like.device())).unsqueeze(-1) * inv_freq;
    const at::Tensor angles = at::cat({freqs, freqs}, -1);  // [rows, D]
    rope_cos_ = angles.cos().to(like.scalar_type()).contiguous();
    rope_sin_ = angles.sin().to(like.scalar_type()).contiguous();
  }
  return {rope_cos_, rope_sin_};
}

// The KV-cache forward of a float model on the CPU without gradients (generation): the same
// arithmetic as forward()'s, with the per-call work of a one-token step cut to the layers' own
// operations. Positions come from each row's count of real tokens kept in the cache (not a cumsum
// over the whole mask), cos/sin from the model's rotary table, the additive mask is built on the
// host and only where something is masked (a one-token step of unpadded rows has none), and keys
// and values are rotated/copied straight into the cache's buffers, allocated once for the
// cache's capacity.
ModelOutput TransformerModel::forward_cached(const ModelInput& input, const at::Tensor& ids,
                                             const at::Tensor& mask_in, TransformerCache& cache) {
  const int64_t b = ids.size(0);
  const int64_t t = ids.size(1);
  const int64_t past = cache.length_;
  const int64_t s = past + t;
  const int64_t kv_heads = config_.num_key_value_heads;
  const int64_t d = config_.head_size();
  const at::Tensor mask = mask_in.contiguous();

  // Room for s tokens: the mask and every layer's keys and values (uninitialised past the length).
  if (!cache.mask_.defined() || cache.mask_.size(1) < s) {
    const int64_t old = cache.mask_.defined() ? cache.mask_.size(1) : 0;
    const int64_t capacity = std::max({s, cache.capacity_, 2 * old});
    at::Tensor grown = at::zeros({b, capacity}, at::kLong);
    if (past > 0) grown.narrow(1, 0, past).copy_(cache.mask_.narrow(1, 0, past));
    cache.mask_ = grown;
  }
  const int64_t capacity = cache.mask_.size(1);
  for (size_t i = 0; i < cache.keys_.size(); ++i) {
    for (at::Tensor* buffer : {&cache.keys_[i], &cache.values_[i]}) {
      if (buffer->defined() && buffer->size(2) >= s) continue;
      at::Tensor grown = at::empty({b, kv_heads, capacity, d}, at::kFloat);
      if (past > 0) grown.narrow(2, 0, past).copy_(buffer->narrow(2, 0, past));
      *buffer = grown;
    }
  }

  // The mask, the rows' real-token counts and the new tokens' positions, on the host: position =
  // (real tokens up to and including this one) - 1, at least 0, as the full forward's cumsum.
  int64_t* cached_mask = cache.mask_.data_ptr<int64_t>();
  if (cache.counted_ != past || static_cast<int64_t>(cache.counts_.size()) != b) {
    cache.counts_.assign(static_cast<size_t>(b), 0);
    cache.padded_ = false;
    for (int64_t r = 0; r < b; ++r) {
      for (int64_t j = 0; j < past; ++j) {
        cache.counts_[static_cast<size_t>(r)] += cached_mask[r * capacity + j];
        cache.padded_ = cache.padded_ || cached_mask[r * capacity + j] == 0;
      }
    }
  }
  at::Tensor positions = at::empty({b, t}, at::kLong);
  int64_t* position = positions.data_ptr<int64_t>();
  const int64_t* new_mask = mask.data_ptr<int64_t>();
  for (int64_t r = 0; r < b; ++r) {
    int64_t& count = cache.counts_[static_cast<size_t>(r)];
    for (int64_t i = 0; i < t; ++i) {
      const int64_t m = new_mask[r * t + i];
      cached_mask[r * capacity + past + i] = m;
      cache.padded_ = cache.padded_ || m == 0;
      count += m;
      position[r * t + i] = std::max<int64_t>(count - 1, 0);
    }
  }
  cache.counted_ = s;
  int64_t longest = 0;
  for (int64_t i = 0; i < b * t; ++i) longest = std::max(longest, position[i]);
  const auto [cos_table, sin_table] = rotary_table(std::max(longest + 1, s));

  // A one-token step takes the fused step (decode_step.h), which masks as it goes: no additive
  // masks are built for it.
  if (t == 1 && fused_decode_ && !lora_ && input.want_logits && !input.want_scalar && decode::available()) {
    at::Tensor logits = at::empty({b, 1, config_.vocab_size}, at::kFloat);
    if (decode_step(ids, position, cos_table, sin_table, cache, logits)) {
      cache.length_ = s;
      ModelOutput out;
      out.logits = logits;
      return out;
    }
  }

  // Additive masks [B, 1, 1, T, S]: query i (index past + i) sees key j <= past + i when key j is a
  // real token (and, in sliding-window layers, past + i - j < window); undefined when nothing is
  // masked (one token, no padding cached, no window reached).
  const float lowest = std::numeric_limits<float>::lowest();
  auto additive = [&](int64_t window) -> at::Tensor {
    if (t == 1 && !cache.padded_ && (window <= 0 || s <= window)) return at::Tensor();
    at::Tensor bias = at::empty({b, 1, 1, t, s}, at::kFloat);
    float* out = bias.data_ptr<float>();
    for (int64_t r = 0; r < b; ++r) {
      for (int64_t i = 0; i < t; ++i) {
        const int64_t query = past + i;
        for (int64_t j = 0; j < s; ++j) {
          const bool keep = j <= query && cached_mask[r * capacity + j] != 0 && (window <= 0 || query - j < window);
          out[(r * t + i) * s + j] = keep ? 0.0f : lowest;
        }
      }
    }
    return bias;
  };
  const at::Tensor bias = additive(0);
  at::Tensor window_bias;
  if (config_.sliding_window > 0 && s > config_.sliding_window) window_bias = additive(config_.sliding_window);

  CachedStep step;
  step.positions = position;
  step.cos = cos_table.data_ptr<float>();
  step.sin = sin_table.data_ptr<float>();
  step.past = past;
  at::Tensor x = at::embedding(decoder_->embed_tokens->weight, ids);
  for (size_t i = 0; i < decoder_->layers.size(); ++i) {
    const bool windowed = window_bias.defined() && config_.layer_window(int64_t(i)) > 0;
    x = decoder_->layers[i]->forward_cached(x, step, windowed ? window_bias : bias, &cache.keys_[i],
                                            &cache.values_[i]);
  }
  cache.length_ = s;
  return outputs(x, input, /*cached=*/true);
}

// One token a row through decode::run (decode_step.h): the layers' weights and this step's cache
// slots as raw buffers. False (nothing written) when a weight is not a contiguous float tensor.
bool TransformerModel::decode_step(const at::Tensor& ids, const int64_t* positions, const at::Tensor& cos,
                                   const at::Tensor& sin, TransformerCache& cache, at::Tensor& logits) const {
  bool plain = true;
  auto data = [&plain](const at::Tensor& w) -> const float* {
    if (!w.defined()) return nullptr;
    plain = plain && w.scalar_type() == at::kFloat && w.is_contiguous() && w.device().is_cpu();
    return plain ? w.data_ptr<float>() : nullptr;
  };
  std::vector<decode::Layer> layers;
  for (size_t i = 0; i < decoder_->layers.size(); ++i) {
    const DecoderLayer& layer = *decoder_->layers[i];
    const Attention& a = *layer.self_attn;
    const Mlp& m = *layer.mlp;
    decode::Layer l{};
    l.input_norm = data(layer.input_layernorm->weight);
    l.post_norm = data(layer.post_attention_layernorm->weight);
    l.wq = data(a.q_proj->weight), l.bq = data(a.q_proj->bias);
    l.wk = data(a.k_proj->weight), l.bk = data(a.k_proj->bias);
    l.wv = data(a.v_proj->weight), l.bv = data(a.v_proj->bias);
    l.wo = data(a.o_proj->weight), l.bo = data(a.o_proj->bias);
    l.gate = data(m.gate_proj->weight), l.up = data(m.up_proj->weight), l.down = data(m.down_proj->weight);
    l.keys = cache.keys_[i].data_ptr<float>();
    l.values = cache.values_[i].data_ptr<float>();
    l.window = config_.layer_window(int64_t(i));
    layers.push_back(l);
  }
  const float* embed = data(decoder_->embed_tokens->weight);
  const float* final_norm = data(decoder_->norm->weight);
  const float* head = data(lm_head_.defined() ? lm_head_ : decoder_->embed_tokens->weight);
  if (!plain) return false;

  decode::Shape shape{};
  shape.batch = ids.size(0);
  shape.hidden = config_.hidden_size;
  shape.intermediate = config_.intermediate_size;
  shape.heads = config_.num_attention_heads;
  shape.kv_heads = config_.num_key_value_heads;
  shape.head_dim = config_.head_size();
  shape.vocab = config_.vocab_size;
  shape.eps = static_cast<float>(config_.rms_norm_eps);
  const at::Tensor step_ids = ids.contiguous();
  decode::Step step{};
  step.ids = step_ids.data_ptr<int64_t>();
  step.positions = positions;
  step.cos = cos.data_ptr<float>();
  step.sin = sin.data_ptr<float>();
  step.past = cache.length_;
  step.capacity = cache.mask_.size(1);
  step.mask = cache.padded_ ? cache.mask_.data_ptr<int64_t>() : nullptr;
  decode::run(shape, layers, embed, final_norm, head, step, logits.data_ptr<float>());
  return true;
}

// ---------------------------------------------------------------------------------------------
// Pretrained weights

void TransformerModel::fold_adapters_into(std::map<std::string, at::Tensor>& weights) const {
  if (lora_) lora_->fold_into(weights);
}

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
