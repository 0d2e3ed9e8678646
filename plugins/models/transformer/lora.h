#pragma once
// LoRA (low-rank adapters, Hu et al. 2021) for the transformer plugin, laid out as PEFT lays it out.
//
// An adapted linear map computes   y = W x + b + (alpha / rank) * B A dropout(x)
// with A [rank, in] initialised like PEFT (kaiming-uniform with a = sqrt(5): U(-1/sqrt(in),
// 1/sqrt(in))) and B [out, rank] zero, so an untrained adapter changes nothing. The base weights are
// frozen (requires_grad false), so the engine's optimizer sees only the adapters. The adapters are
// registered on the projection as submodules lora_A and lora_B, so the model's parameter names are
// "model.layers.N.self_attn.q_proj.lora_A.weight" (PEFT's, less its "base_model.model." prefix).
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include "prefengine/plugin_options.h"

namespace prefengine::plugins::model {

struct LoraOptions {
  int64_t rank = 0;     // r; 0 = no adapters
  double alpha = 8.0;   // lora_alpha; the update is scaled by alpha / rank
  double dropout = 0.0; // lora_dropout, on the adapter's input only, in training mode only
  std::vector<std::string> target_modules;  // projection names (q_proj, ..., down_proj)

  bool enabled() const { return rank > 0; }
  double scaling() const { return alpha / static_cast<double>(rank); }
};

// The projections an adapter can target, in the order of a decoder layer.
const std::vector<std::string>& lora_target_names();

// Reads the plugin's `lora:` block: lora.rank (>= 1, required when the block is given),
// lora.alpha (> 0, default 8 as PEFT), lora.dropout (in [0, 1), default 0), lora.target_modules
// (a list of lora_target_names(), or "all-linear"; default [q_proj, v_proj], PEFT's for Llama).
// No `lora` keys: rank 0. A bad value is an error naming the key (PluginOptions::fail); unknown
// keys inside the block are rejected by the engine after construction, naming the nearest one.
LoraOptions lora_options_from(PluginOptions& options);

// Whether a parameter name belongs to an adapter (".lora_A." or ".lora_B.").
bool is_lora_parameter(const std::string& name);

class TransformerModel;
// Folds a model's adapters into its base weights (W += scale * B A, then B = 0): the same
// function, identity adapters; save_pretrained then writes plain weights. No-op without adapters.
void merge_lora(TransformerModel& model);

// One adapted projection.
class LoraLinear {
 public:
  // Registers lora_A and lora_B on `projection` (whose parameter "weight" is [out, in]), on its
  // device and dtype; A drawn from the default generator.
  LoraLinear(torch::nn::Module& projection, const LoraOptions& options, std::shared_ptr<const bool> enabled);

  // `y` (the base projection of x) plus the adapter's update, when the adapters are enabled.
  at::Tensor add_to(const at::Tensor& y, const at::Tensor& x, bool training) const;
  // scale * B A, the update as a weight [out, in] (no gradient).
  at::Tensor delta() const;

  const at::Tensor& a() const { return a_->weight; }
  const at::Tensor& b() const { return b_->weight; }
  const at::Tensor& base_weight() const { return weight_; }

 private:
  struct Holder : torch::nn::Module {
    explicit Holder(at::Tensor w) { weight = register_parameter("weight", std::move(w)); }
    at::Tensor weight;
  };
  std::shared_ptr<Holder> a_, b_;
  at::Tensor weight_;  // the projection's base weight (shares its storage)
  double scaling_;
  double dropout_;
  std::shared_ptr<const bool> enabled_;
};

// Every adapter of a model, by the adapted projection's module name
// ("model.layers.0.self_attn.q_proj"), with the model-wide on/off switch.
class LoraSet {
 public:
  LoraSet(LoraOptions options, std::string base_model_name_or_path);

  // Adds an adapter to `projection`, named `module_name`, if its last component is a target.
  // Returns it (nullptr when not a target).
  std::shared_ptr<LoraLinear> maybe_attach(const std::string& module_name, torch::nn::Module& projection);

  const LoraOptions& options() const { return options_; }
  const std::map<std::string, std::shared_ptr<LoraLinear>>& adapters() const { return adapters_; }
  bool enabled() const { return *enabled_; }
  void set_enabled(bool on) { *enabled_ = on; }
  // Every B is zero: the adapters change nothing.
  bool identity() const;
  // W += scale * B A for every adapter, then B = 0.
  void merge();
  // `weights` (the model's named parameters without the adapters) with every adapted weight
  // replaced by W + scale * B A: the merged model's tensors, the model left untouched.
  void fold_into(std::map<std::string, at::Tensor>& weights) const;

  // PEFT's adapter_config.json text.
  std::string peft_config_json() const;
  // adapter_model.safetensors' tensors: "base_model.model.<module>.lora_A.weight" [rank, in] and
  // ".lora_B.weight" [out, rank], float32.
  std::map<std::string, at::Tensor> peft_tensors() const;
  // Writes adapter_config.json and adapter_model.safetensors into `directory` (created).
  std::vector<std::string> save_peft(const std::string& directory) const;

 private:
  LoraOptions options_;
  std::string base_model_;
  std::shared_ptr<bool> enabled_;
  std::map<std::string, std::shared_ptr<LoraLinear>> adapters_;
};

}  // namespace prefengine::plugins::model
