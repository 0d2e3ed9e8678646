#include "lora.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "safetensors.h"
#include "transformer.h"

namespace prefengine::plugins::model {

const std::vector<std::string>& lora_target_names() {
  static const std::vector<std::string> names = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                 "gate_proj", "up_proj", "down_proj"};
  return names;
}

LoraOptions lora_options_from(PluginOptions& options) {
  LoraOptions lora;
  // `lora: 8` (a scalar where a block belongs) would otherwise be rejected as an unknown key.
  if (options.has("lora")) {
    const OptionEntry& entry = options.entries().at("lora");
    options.fail("lora", "a block {rank, alpha, dropout, target_modules}",
                 entry.is_list ? "a list" : "'" + entry.scalar + "'");
  }
  bool any = false;
  for (const auto& [key, entry] : options.entries()) {
    if (key.rfind("lora.", 0) == 0) any = true;
  }
  if (!any) return lora;
  lora.rank = options.require_int("lora.rank", 1, 65536);
  lora.alpha = options.get_double("lora.alpha", 8.0, 0.0, 1e9, /*min_exclusive=*/true);
  lora.dropout = options.get_double("lora.dropout", 0.0, 0.0, 1.0);
  if (lora.dropout >= 1.0) options.fail("lora.dropout", "a probability in [0, 1)", std::to_string(lora.dropout));
  const std::vector<std::string> targets = options.get_string_list("lora.target_modules", {"q_proj", "v_proj"});
  const auto& known = lora_target_names();
  std::string known_text;
  for (const auto& n : known) known_text += (known_text.empty() ? "" : ", ") + n;
  if (targets.size() == 1 && targets[0] == "all-linear") {
    lora.target_modules = known;
    return lora;
  }
  if (targets.empty()) options.fail("lora.target_modules", "at least one of " + known_text, "an empty list");
  for (const auto& t : targets) {
    if (std::find(known.begin(), known.end(), t) == known.end()) {
      options.fail("lora.target_modules", "names among " + known_text + " (or all-linear)", "'" + t + "'");
    }
    if (std::find(lora.target_modules.begin(), lora.target_modules.end(), t) != lora.target_modules.end()) {
      options.fail("lora.target_modules", "each name once", "'" + t + "' twice");
    }
    lora.target_modules.push_back(t);
  }
  return lora;
}

void merge_lora(TransformerModel& model) { model.merge_adapters(); }

bool is_lora_parameter(const std::string& name) {
  return name.find(".lora_A.") != std::string::npos || name.find(".lora_B.") != std::string::npos;
}

// ---------------------------------------------------------------------------------------------

LoraLinear::LoraLinear(torch::nn::Module& projection, const LoraOptions& options,
                       std::shared_ptr<const bool> enabled)
    : scaling_(options.scaling()), dropout_(options.dropout), enabled_(std::move(enabled)) {
  const auto own = projection.named_parameters(/*recurse=*/false);
  const at::Tensor* weight = own.find("weight");
  if (weight == nullptr || weight->dim() != 2) {
    throw std::logic_error("lora: the adapted module has no 2-d weight");
  }
  weight_ = *weight;
  const int64_t out = weight_.size(0);
  const int64_t in = weight_.size(1);
  const auto opts = weight_.options().requires_grad(false);
  at::Tensor a = at::empty({options.rank, in}, opts);
  {
    at::NoGradGuard no_grad;
    // PEFT: nn.init.kaiming_uniform_(lora_A.weight, a=math.sqrt(5)): gain sqrt(2 / (1 + 5)),
    // bound gain * sqrt(3 / fan_in) = 1 / sqrt(in).
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    a.uniform_(-bound, bound);
  }
  a_ = projection.register_module("lora_A", std::make_shared<Holder>(a));
  b_ = projection.register_module("lora_B", std::make_shared<Holder>(at::zeros({out, options.rank}, opts)));
}

at::Tensor LoraLinear::add_to(const at::Tensor& y, const at::Tensor& x, bool training) const {
  if (!*enabled_) return y;
  const at::Tensor input = (training && dropout_ > 0) ? at::dropout(x, dropout_, /*train=*/true) : x;
  return y + at::linear(at::linear(input, a_->weight), b_->weight) * scaling_;
}

at::Tensor LoraLinear::delta() const {
  at::NoGradGuard no_grad;
  return at::matmul(b_->weight, a_->weight) * scaling_;
}

// ---------------------------------------------------------------------------------------------

LoraSet::LoraSet(LoraOptions options, std::string base_model_name_or_path)
    : options_(std::move(options)), base_model_(std::move(base_model_name_or_path)),
      enabled_(std::make_shared<bool>(true)) {}

std::shared_ptr<LoraLinear> LoraSet::maybe_attach(const std::string& module_name, torch::nn::Module& projection) {
  const size_t dot = module_name.rfind('.');
  const std::string leaf = dot == std::string::npos ? module_name : module_name.substr(dot + 1);
  if (std::find(options_.target_modules.begin(), options_.target_modules.end(), leaf) ==
      options_.target_modules.end()) {
    return nullptr;
  }
  auto adapter = std::make_shared<LoraLinear>(projection, options_, enabled_);
  adapters_[module_name] = adapter;
  return adapter;
}

bool LoraSet::identity() const {
  for (const auto& [name, adapter] : adapters_) {
    if (adapter->b().ne(0).any().item<bool>()) return false;
  }
  return true;
}

void LoraSet::merge() {
  at::NoGradGuard no_grad;
  for (const auto& [name, adapter] : adapters_) {
    at::Tensor w = adapter->base_weight();
    w.add_(adapter->delta().to(w.scalar_type()));
    at::Tensor b = adapter->b();
    b.zero_();
  }
}

void LoraSet::fold_into(std::map<std::string, at::Tensor>& weights) const {
  for (const auto& [name, adapter] : adapters_) {
    auto it = weights.find(name + ".weight");
    if (it == weights.end()) throw std::logic_error("lora: no base weight '" + name + ".weight' to merge into");
    it->second = it->second + adapter->delta().to(it->second.device(), it->second.scalar_type());
  }
}

std::string LoraSet::peft_config_json() const {
  // The fields PEFT 0.x writes for a LoraConfig (others take PEFT's defaults when read).
  nlohmann::json j = {
      {"peft_type", "LORA"},
      {"task_type", "CAUSAL_LM"},
      {"r", options_.rank},
      // An integer as PEFT writes it when it is one.
      {"lora_alpha", options_.alpha == std::floor(options_.alpha) && options_.alpha < 1e15
                         ? nlohmann::json(static_cast<int64_t>(options_.alpha))
                         : nlohmann::json(options_.alpha)},
      {"lora_dropout", options_.dropout},
      {"target_modules", options_.target_modules},
      {"base_model_name_or_path", base_model_.empty() ? nlohmann::json(nullptr) : nlohmann::json(base_model_)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"modules_to_save", nullptr},
      {"use_rslora", false},
      {"use_dora", false},
      {"revision", nullptr},
  };
  return j.dump(2) + "\n";
}

std::map<std::string, at::Tensor> LoraSet::peft_tensors() const {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, adapter] : adapters_) {
    tensors.emplace("base_model.model." + name + ".lora_A.weight", adapter->a().detach().to(at::kFloat).cpu());
    tensors.emplace("base_model.model." + name + ".lora_B.weight", adapter->b().detach().to(at::kFloat).cpu());
  }
  return tensors;
}

std::vector<std::string> LoraSet::save_peft(const std::string& directory) const {
  namespace fs = std::filesystem;
  fs::create_directories(directory);
  const fs::path config = fs::path(directory) / "adapter_config.json";
  {
    std::ofstream out(config);
    if (!out) throw std::runtime_error(config.string() + ": cannot open for writing");
    out << peft_config_json();
    if (!out) throw std::runtime_error(config.string() + ": write failed");
  }
  save_safetensors((fs::path(directory) / "adapter_model.safetensors").string(), peft_tensors());
  return {"adapter_config.json", "adapter_model.safetensors"};
}

}  // namespace prefengine::plugins::model
