#pragma once
// The model interface: sequence-shaped from the start. Token ids and masks in, next-token logits
// (and, optionally, a scalar per position) out. The toy MLP is the case of a one-token prompt and a
// one-token response; the Llama-style transformer is the general case.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "prefengine/plugin.h"

namespace prefengine {

// A model's key/value cache for incremental decoding; each model defines its own.
class PREFENGINE_API KvCache {
 public:
  virtual ~KvCache();
  virtual int64_t length() const = 0;  // tokens already in the cache
};

struct ModelInput {
  at::Tensor input_ids;       // [B, T] int64 token ids
  at::Tensor attention_mask;  // [B, T] int64, 1 for real tokens, 0 for padding; undefined = all 1
                              // (values above 1: packed segments, see PackedSequences)
  bool want_logits = true;    // false skips the output projection (a reward model's pass)
  bool want_scalar = false;   // compute the scalar head at every position (needs add_scalar_head)
  KvCache* cache = nullptr;   // when set, input_ids continue the cached sequence and are appended
};

struct ModelOutput {
  at::Tensor logits;  // [B, T, V] float: logits[b, t] scores token t+1 of row b
  at::Tensor scalar;  // [B, T] float: the scalar head (reward or value) at each position
};

class PREFENGINE_API Model : public torch::nn::Module, public Plugin {
 public:
  ~Model() override;

  virtual ModelOutput forward(const ModelInput& input) = 0;

  // Size of the output vocabulary (the last dimension of logits).
  virtual int64_t vocab_size() const = 0;

  // The optional scalar head (reward model, PPO value): a linear map from the last hidden state
  // at each position to one number. add_scalar_head registers its parameters with the module.
  virtual bool supports_scalar_head() const { return false; }
  virtual void add_scalar_head();
  virtual bool has_scalar_head() const { return false; }

  // Incremental decoding; nullptr when the model has no cache (generation then recomputes).
  virtual std::unique_ptr<KvCache> new_cache(int64_t batch_size, int64_t max_length);
};

// A capability a model adds beside Model: every response is a single token after the prompt
// (the toy model). The engine then computes the whole response distribution and the probs/*
// diagnostics exactly (dynamic_cast<const SingleTokenResponses*>(&model)).
class PREFENGINE_API SingleTokenResponses {
 public:
  virtual ~SingleTokenResponses();
};

// A capability a model adds beside Model: packed rows. Several sequences share one row of
// input_ids, each a contiguous run of positions with its own segment id in attention_mask (1, 2,
// ... ; 0 = padding). With any attention_mask value above 1, the model must compute each segment
// as if it were a row of its own: a token sees only the earlier tokens of its segment, and
// positions restart at 0 at each segment's first token (so the logits of a segment equal those of
// the same tokens alone in a row, to rounding). A mask of 0s and 1s means what it always means.
// Not with a KvCache. The engine packs a stage's rows only for models with this capability (an sft
// stage's `data.packing`). dynamic_cast<const PackedSequences*>(&model).
class PREFENGINE_API PackedSequences {
 public:
  virtual ~PackedSequences();
};

// A capability a model adds beside Model: its logits and their backward without autograd. For a
// model whose step costs its operator count rather than its arithmetic (the toy MLP: a few thousand
// weights), autograd's graph (nodes, saved tensors, the engine, a gradient accumulator per
// parameter) is a large share of a step. The engine's sft and pairwise stages then take the logits
// from forward_direct as a leaf, run only what follows them (log-probs, the loss plugin) in
// autograd, and hand the leaf's gradient to backward_direct. The contract: forward_direct gives
// forward()'s logits and backward_direct adds the gradients autograd would add, so that a run is
// the same either way (the toy model runs the same kernels in the same order: the same bits).
// dynamic_cast<DirectBackward*>(&model).
class PREFENGINE_API DirectBackward {
 public:
  virtual ~DirectBackward();
  // forward(input).logits ([B, T, V]) computed without an autograd graph (input.want_scalar and
  // input.cache are not supported); the model keeps what backward_direct needs until the next
  // call.
  virtual at::Tensor forward_direct(const ModelInput& input) = 0;
  // Adds dL/dparameter to the .grad() of every parameter that requires grad (creating it when
  // undefined), given dL/dlogits (`grad_logits`, the shape of the last forward_direct's logits).
  // Called at most once per forward_direct, with gradient recording off.
  virtual void backward_direct(const at::Tensor& grad_logits) = 0;
};

// A capability a model adds beside Model: low-rank adapters (LoRA) trained on frozen base weights
// (the transformer plugin's `lora:` option). With the adapters switched off the model computes its
// base weights alone, so while the adapters are still the identity (a stage's start before any
// update) the engine uses the policy itself with its adapters off as the frozen reference instead
// of copying its weights (engine/train/init_from.h). dynamic_cast<AdapterModel*>(&model).
class PREFENGINE_API AdapterModel {
 public:
  virtual ~AdapterModel();
  // Whether adapters are attached (false: the capability is present but unused).
  virtual bool has_adapters() const = 0;
  // Switches the adapters' contribution on or off; off, forward() is the base model's.
  virtual void set_adapters_enabled(bool enabled) = 0;
  virtual bool adapters_enabled() const = 0;
  // True when the adapters add exactly nothing now (every up-projection B is zero).
  virtual bool adapters_are_identity() const = 0;
  // Writes the adapters in PEFT's layout into `directory` (adapter_config.json,
  // adapter_model.safetensors) and returns the file names written.
  virtual std::vector<std::string> save_adapters(const std::string& directory) const = 0;
  // Folds the adapters into the base weights (W += scale * B A) and zeroes B: the model computes
  // the same function with identity adapters (for export).
  virtual void merge_adapters() = 0;
};

// A capability a model adds beside Model: it writes itself as a Hugging Face model folder that
// `transformers` loads (config.json, safetensors, generation_config.json, tokenizer files). The
// engine finds it with dynamic_cast<const HfExportable*>(&model) (`prefengine export`, a
// stage's `export:`). JSON text crosses the plugin boundary:
//   options: {"dtype": "float32"|"bfloat16"|"float16", "max_shard_size": bytes,
//             "tokenizer": {"kind", "path", "special_tokens", "chat_template", "add_bos",
//                           "bos_id", "eos_id", "pad_id"}}
//   result:  {"files": [names written], "dropped": [tensors not written], "total_size": bytes}
// Errors are exceptions (std::invalid_argument for bad options or an unexportable model).
class PREFENGINE_API HfExportable {
 public:
  virtual ~HfExportable();
  virtual std::string export_hugging_face(const std::string& directory,
                                          const std::string& options_json) const = 0;
};

}  // namespace prefengine
