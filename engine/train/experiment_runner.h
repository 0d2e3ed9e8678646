#pragma once
// Runs an experiment's stages in order on one model, writing everything into the run directory.
#include <memory>
#include <string>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"

namespace prefengine {

class DataParallel;
class Loss;
class Model;
class PluginLoader;
class FlatOptimizer;
struct ResumePoint;
struct SequenceTensors;

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
  // run() continues the run directory from its latest checkpoint (see train/resume.h) instead of
  // starting afresh: metrics are appended, finished stages are skipped.
  void set_resume(bool resume) { resume_ = resume; }

 private:
  struct Stage;
  void run_sft(size_t index);
  void run_pairwise(size_t index);
  void run_ppo(size_t index);  // engine/train/ppo_stage.cpp
  // Resuming: the first stage to run (weights restored as that stage saw them at its start), and,
  // inside that stage, the checkpoint's state after restoring model, optimizer and generator.
  size_t begin_resume();
  const nlohmann::json* resume_stage(size_t index, FlatOptimizer& optimizer);
  // The frozen-copy reference log-probs of `packed`, from the reference cache when enabled.
  at::Tensor reference_logps(size_t index, const SequenceTensors& packed);

  ExperimentConfig config_;
  std::string directory_;
  std::unique_ptr<PluginLoader> loader_;
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<Loss>> losses_;  // per stage; null for sft
  int64_t global_step_ = 0;
  bool prepared_ = false;
  class MetricsLogger* metrics_ = nullptr;  // rank 0 only
  std::unique_ptr<DataParallel> dp_;       // ranks from the environment; created by run()
  bool resume_ = false;
  std::shared_ptr<ResumePoint> resume_point_;  // set while a resume is pending
  nlohmann::json resume_state_;                // the checkpoint state a resumed stage continues from
  nlohmann::json stage_report_;  // the running stage's data counts and reference source, for run.json
};

// Creates the experiment's model and losses and throws on the first problem; writes nothing.
void validate_experiment(const ExperimentConfig& config);

}  // namespace prefengine
