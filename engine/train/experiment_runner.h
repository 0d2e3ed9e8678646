#pragma once
// Runs an experiment's stages in order on one model, writing everything into the run directory.
#include <memory>
#include <string>

#include "engine/config/experiment_config.h"

namespace prefengine {

class DataParallel;
class Loss;
class Model;
class PluginLoader;

struct RunResult {
  std::string directory;    // the run directory
  int64_t global_steps = 0; // optimizer steps over all stages
};

class ExperimentRunner {
 public:
  ExperimentRunner(ExperimentConfig config, std::string run_directory);
  ~ExperimentRunner();

  // Creates the model and every stage's plugins (so a bad option in the last stage fails before
  // the first trains). Called by run(); public for `prefengine validate`.
  void prepare();
  // Trains. On failure writes run.json with the error, keeps the metrics and the last good
  // checkpoint, and rethrows.
  RunResult run();

  Model& model() { return *model_; }

 private:
  struct Stage;
  void run_sft(size_t index);
  void run_pairwise(size_t index);
  void run_ppo(size_t index);  // engine/train/ppo_stage.cpp

  ExperimentConfig config_;
  std::string directory_;
  std::unique_ptr<PluginLoader> loader_;
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<Loss>> losses_;  // per stage; null for sft
  int64_t global_step_ = 0;
  bool prepared_ = false;
  class MetricsLogger* metrics_ = nullptr;  // rank 0 only
  std::unique_ptr<DataParallel> dp_;       // ranks from the environment; created by run()
};

// Creates the experiment's model and losses and throws on the first problem; writes nothing.
void validate_experiment(const ExperimentConfig& config);

}  // namespace prefengine
