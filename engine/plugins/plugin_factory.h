#pragma once
// Creates the plugins an experiment names: its model (the `model:` block) and a stage's loss (the
// stage's `loss:` block) and a stage's grader. One place for the runner, the PPO stage's fresh models and
// `prefengine generate`, so all create them the same way and report errors the same way.
#include <memory>

#include "engine/config/experiment_config.h"
#include "prefengine/plugin_loader.h"

namespace prefengine {

class Grader;
class Loss;
class Model;

// Passes the block's options (less the engine's own `plugin:` key) to the plugin. An unknown
// plugin name is reported at the block's `plugin:` key ("FILE:LINE: model.plugin: unknown model
// plugin ..."); option errors already name their keys.
std::shared_ptr<Model> create_model(const PluginLoader& loader, const ExperimentConfig& config);
std::shared_ptr<Loss> create_loss(const PluginLoader& loader, const StageOptions& stage);
// A stage's `grader:` block (pairs stages, evaluation by generation, grader rewards).
std::shared_ptr<Grader> create_grader(const PluginLoader& loader, const GraderOptions& grader);

}  // namespace prefengine
