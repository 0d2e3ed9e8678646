#pragma once
// A decoder-only transformer of the Llama family (Llama 2, Llama 3.x with its rope scaling, Qwen2,
// Mistral, TinyLlama, SmolLM): RMSNorm, rotary position embeddings, a SwiGLU MLP,
// grouped-query attention with optional q/k/v biases, tied or untied embeddings. Attention is
// written out (matmul, mask, softmax): LibTorch 1.13 has no scaled_dot_product_attention.
//
// The module tree mirrors the Hugging Face names, so named_parameters() yields
// "model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight", ..., "model.norm.weight",
// "lm_head.weight" (absent when tied) and "score.weight" (the optional scalar head).
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "prefengine/model.h"
#include "prefengine/plugin_options.h"

namespace prefengine::plugins::model {

struct TransformerConfig {
  int64_t vocab_size = 256;                // tokens in the vocabulary (rows of embed_tokens)
  int64_t hidden_size = 64;                // model width
  int64_t intermediate_size = 172;         // width of the SwiGLU MLP
  int64_t num_hidden_layers = 2;           // decoder layers
  int64_t num_attention_heads = 4;         // query heads
  int64_t num_key_value_heads = 4;         // key/value heads (grouped-query attention); divides heads
  int64_t head_dim = 0;                    // per-head width; 0 = hidden_size / num_attention_heads
  double rms_norm_eps = 1e-6;              // epsilon inside the RMSNorm square root
  double rope_theta = 10000.0;             // base of the rotary frequencies
  int64_t max_position_embeddings = 2048;  // longest sequence; the default KV-cache capacity
  bool tie_word_embeddings = false;        // lm_head shares embed_tokens' weight
  bool attention_bias = false;             // attention projections have biases: q/k/v and o_proj
                                           // (Llama's attention_bias), q/k/v only for qwen2
  bool gradient_checkpointing = false;     // recompute each layer in backward instead of storing it
  std::string rope_scaling_type;           // "" = none, "linear" or "llama3" (HF rope_scaling.rope_type)
  double rope_scaling_factor = 1.0;        // linear/llama3: how much the context was stretched
  double rope_low_freq_factor = 1.0;       // llama3: wavelengths above original/low are divided by factor
  double rope_high_freq_factor = 4.0;      // llama3: wavelengths below original/high are kept
  int64_t rope_original_max_position = 8192;  // llama3: the pre-training context length
  int64_t sliding_window = 0;              // Mistral/Qwen2 window; 0 = none. A query at index i
                                           // attends to keys j with i - W < j <= i (HF's masks)
  std::vector<std::string> layer_types;    // per layer "full_attention" or "sliding_attention"
                                           // (HF's layer_types); empty = every layer uses the window
  int64_t bos_token_id = -1;               // from config.json; -1 = unknown
  int64_t eos_token_id = -1;               // from config.json (the first when a list); -1 = unknown
  int64_t pad_token_id = -1;               // from config.json; -1 = unknown
  std::string model_type = "llama";        // "llama", "qwen2" or "mistral" (config.json's model_type)

  int64_t head_size() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  // o_proj has a bias: Llama's attention_bias covers all four projections, Qwen2's only q/k/v.
  bool output_bias() const { return attention_bias && model_type != "qwen2"; }
  // Layer `layer` masks keys older than sliding_window (0 = this layer attends to everything).
  int64_t layer_window(int64_t layer) const;
  // Throws std::invalid_argument naming the field and the bad value.
  void validate() const;
  // Reads a Hugging Face config.json (LlamaConfig, Qwen2Config, MistralConfig), in the layout
  // transformers 4.x writes (rope_theta, rope_scaling) or the newer one (rope_parameters). Every
  // key is either understood, on the list of keys that do not change the math
  // (harmless_config_keys(), ignored), or an error naming the key and the file; unsupported
  // features (rope types other than default/linear/llama3, a hidden_act other than silu, MLP
  // biases, attention dropout, ...) are errors.
  static TransformerConfig from_json(const std::string& text, const std::string& where);
  static TransformerConfig from_json_file(const std::string& path);
  // The Hugging Face config.json text for this configuration (transformers' LlamaConfig /
  // Qwen2Config / MistralConfig layout; torch_dtype as given).
  std::string to_json(const std::string& torch_dtype = "float32") const;
  // The config.json keys from_json ignores because they do not change the logits.
  static const std::vector<std::string>& harmless_config_keys();
  // The rotary inverse frequencies [head_size / 2] (float), rope scaling applied.
  at::Tensor rotary_inv_freq() const;
  // Total number of parameters (without the scalar head).
  int64_t num_parameters() const;
};

class TransformerDecoder;  // "model": embeddings, layers, final norm (transformer.cpp)

// The KV cache: per layer keys and values [B, kv_heads, capacity, head_dim] and the attention
// mask [B, capacity] of everything cached so far. Allocated for `capacity` tokens at the first
// forward (new_cache's max_length: the whole generation), written in place; grows (doubling) when
// a forward exceeds it.
class TransformerCache : public KvCache {
 public:
  TransformerCache(int64_t num_layers, int64_t batch_size, int64_t capacity);
  int64_t length() const override { return length_; }
  int64_t batch_size() const { return batch_size_; }

  // Used by the model's forward.
  std::vector<at::Tensor> keys_;
  std::vector<at::Tensor> values_;
  at::Tensor mask_;  // int64 [B, capacity]
  int64_t length_ = 0;
  int64_t batch_size_ = 0;
  int64_t capacity_ = 0;
  // The CPU float path (transformer.cpp, forward_cached): the real tokens cached in each row, so
  // that the next token's position is counted, not recomputed from the whole mask; and whether any
  // cached token is padding (when none is, a one-token step needs no mask at all).
  std::vector<int64_t> counts_;
  bool padded_ = false;
  int64_t counted_ = 0;  // the length counts_ and padded_ cover (the other path does not keep them)
};

class LoraSet;
struct LoraOptions;

class TransformerModel : public Model, public AdapterModel, public HfExportable, public PackedSequences {
 public:
  // Options: every TransformerConfig field by its config.json name, plus `pretrained: DIR`
  // (config.json + safetensors weights) or `config_json: FILE` (architecture only, random
  // weights). Keys given next to either override the file's values. `lora: {rank, alpha,
  // dropout, target_modules}` adds adapters after the weights are loaded (lora.h).
  explicit TransformerModel(PluginOptions& options);
  explicit TransformerModel(const TransformerConfig& config);
  ~TransformerModel() override;

  ModelOutput forward(const ModelInput& input) override;
  int64_t vocab_size() const override { return config_.vocab_size; }

  bool supports_scalar_head() const override { return true; }
  void add_scalar_head() override;
  bool has_scalar_head() const override { return score_.defined(); }

  // capacity 0 = max_position_embeddings; the cache grows past its capacity when needed.
  std::unique_ptr<KvCache> new_cache(int64_t batch_size, int64_t max_length) override;

  // HfExportable (hf_export.cpp): the Hugging Face folder, see hf_export.h.
  std::string export_hugging_face(const std::string& directory,
                                  const std::string& options_json) const override;

  // Writes config.json and model.safetensors (f32, Hugging Face names; lm_head omitted when tied).
  // With LoRA adapters the weights written are the merged ones (W + scale * B A).
  void save_pretrained(const std::string& directory) const;
  // Reads model.safetensors, or the shards listed in model.safetensors.index.json (the base
  // weights; LoRA adapters, when attached, are left as they are); bf16/f16/f32
  // are converted to f32. A score.weight in the files adds the scalar head. Missing tensors, shape
  // mismatches and unknown tensors are errors naming the tensor and the file.
  void load_pretrained(const std::string& directory);

  const TransformerConfig& config() const { return config_; }

  // The rotary cos and sin tables [P, head_size] (P >= length) in the model's dtype and device:
  // row p holds cos/sin(p * inv_freq) in HF's half-split layout, computed in float as the full
  // forward computes them (float position times rotary_inv_freq()). Computed once per model and
  // grown when a longer sequence needs it; the cached forward indexes them by position.
  std::pair<at::Tensor, at::Tensor> rotary_table(int64_t length) const;

  // LoRA (lora.h): attaches adapters to the target projections of every layer and freezes every
  // other parameter (a scalar head added later stays trainable). Once per model.
  void enable_lora(const LoraOptions& options, const std::string& base_model_name_or_path = "");
  const LoraSet* lora() const { return lora_.get(); }
  // AdapterModel
  bool has_adapters() const override { return lora_ != nullptr; }
  void set_adapters_enabled(bool enabled) override;
  bool adapters_enabled() const override;
  bool adapters_are_identity() const override;
  std::vector<std::string> save_adapters(const std::string& directory) const override;
  void merge_adapters() override;
  // Adds each adapter's (alpha/rank) B A to its base weight in `weights` (named as
  // named_parameters(); for writing merged weights without touching the model). No adapters: nothing.
  void fold_adapters_into(std::map<std::string, at::Tensor>& weights) const;
  void set_gradient_checkpointing(bool on) { config_.gradient_checkpointing = on; }
  // Whether a cached forward of one token a row (generation's decode steps, CPU float, no LoRA)
  // takes the fused step of decode_step.h (default; logits equal to rounding) or the operator path
  // (logits bit for bit those of the full forward, but for single wide rows). Option `fused_decode`.
  void set_fused_decode(bool on) { fused_decode_ = on; }
  bool fused_decode() const { return fused_decode_; }

 private:
  void build();
  // The KV-cache forward for float models on the CPU without gradients (transformer.cpp).
  ModelOutput forward_cached(const ModelInput& input, const at::Tensor& ids, const at::Tensor& mask,
                             TransformerCache& cache);
  // forward_cached's one-token step through decode::run (decode_step.h), the logits [B, 1, V] into
  // `logits`; false, with nothing done, when a weight is not a contiguous CPU float tensor.
  bool decode_step(const at::Tensor& ids, const int64_t* positions, const at::Tensor& cos, const at::Tensor& sin,
                   TransformerCache& cache, at::Tensor& logits) const;
  // The final norm, then the logits and the scalar head as `input` asks; `cached`: the CPU float
  // KV-cache path, where a single row with a wide vocabulary takes sgemv (transformer.cpp).
  ModelOutput outputs(const at::Tensor& hidden, const ModelInput& input, bool cached) const;

  mutable std::mutex rope_mutex_;           // guards the tables
  mutable at::Tensor rope_cos_, rope_sin_;  // rotary_table()'s tables; undefined until first used

  TransformerConfig config_;
  bool fused_decode_ = true;  // the `fused_decode` option: one-token cached steps take decode::run
  std::shared_ptr<TransformerDecoder> decoder_;
  at::Tensor lm_head_;  // [V, hidden]; undefined when tied
  at::Tensor score_;    // [1, hidden]; undefined until add_scalar_head
  std::unique_ptr<LoraSet> lora_;  // null without adapters
};

// Reads a TransformerConfig from plugin options (see TransformerModel's constructor); sets
// `pretrained_dir` when the options name one.
TransformerConfig transformer_config_from_options(PluginOptions& options,
                                                  std::string* pretrained_dir);

}  // namespace prefengine::plugins::model
