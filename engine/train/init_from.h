#pragma once
// A stage's starting weights (`init_from:`, any stage kind): the checkpoint of an earlier stage of
// this run (`init_from: sft`) or a checkpoint folder of another run (`init_from:
// runs/sft-base/checkpoints/sft`), so SFT trained once feeds many preference experiments.
//
// The runner applies it once per stage, before the stage's unit prepares (so the frozen reference
// is a copy of the loaded weights), on resume too: at a stage boundary the next stage starts from
// it; mid-stage the loop then loads the stage's own checkpoint over it. The run.json stage entry
// records the origin under "init_from".
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"

namespace prefengine {

class Model;
struct StageContext;

// The checkpoint folder a weights source (`init_from`, `reference_from`) names:
// RUN_DIR/checkpoints/<name> for an earlier stage, the path itself (relative to the working
// directory) for a folder.
std::string weights_directory(const std::string& source, const std::string& run_directory);

// Checks the stage's folder sources (init_from, reference_from) before anything trains: state.json
// readable, model.pt present, and the model it was written for is this experiment's: the other
// run's config.yaml model block must equal this one, else the tensors must fit anyway (then a
// warning). Draws no random numbers. Throws std::invalid_argument "file:line:column:
// stages[i].init_from: ...". An earlier stage's name is checked when the config is read.
void check_weights_sources(const ExperimentConfig& config, const StageOptions& stage,
                           const std::function<std::shared_ptr<Model>()>& make_model);

// At the stage's start: a fresh model of the experiment's plugin with the checkpoint's weights (and
// its scalar head, when it had one) replaces context.model; context.report["init_from"] records
// {checkpoint, run, run_directory (another run), stage, step, global_step}.
void apply_init_from(StageContext& context);

// The stage's frozen reference (eval mode, no gradients): a copy of the policy as it is now (with
// its scalar head, when it has one), or the `reference_from` checkpoint's weights (recorded in
// context.report["reference_from"]). A policy with LoRA adapters that are still the identity
// gives itself with its adapters disabled instead of a copy (adapter_reference.h).
std::shared_ptr<Model> make_frozen_reference(StageContext& context);

}  // namespace prefengine
