#pragma once
// The frozen reference for free: a policy with LoRA adapters (prefengine::AdapterModel) whose
// adapters are still the identity at the stage's start is, with its adapters switched off, exactly
// the policy at the stage's start, for the whole stage (its base weights are frozen). The
// reference is then a view of the policy that switches the adapters off around each forward: no
// second copy of the weights. make_frozen_reference (init_from.h) uses it automatically.
#include <memory>
#include <string>

namespace prefengine {

class Model;
struct StageContext;

// The adapters-off view of context.model when it applies (an AdapterModel with adapters, all of
// them the identity now, and no reference_from); nullptr otherwise (the caller copies the policy).
// Records context.report["reference_model"] = "policy with adapters disabled".
std::shared_ptr<Model> adapters_off_reference(StageContext& context);

// For export: loads a checkpoint's model.pt into `model` (built with the experiment's model block,
// adapters included) and, when it is an AdapterModel with adapters, folds them into the base
// weights (AdapterModel::merge_adapters): `model` then computes the trained function with
// identity adapters, and its plugin's own writer can save plain base weights. Returns whether
// adapters were merged.
bool load_merged_weights(const std::string& checkpoint_directory, Model& model);

}  // namespace prefengine
