#pragma once
// Runs an experiment's stages in order on one model, writing everything into the run directory.
// Each stage is a unit of its kind (engine/train/stage_unit.h) run by the one TrainLoop
// (engine/train/train_loop.h); this class owns what spans stages: plugins, the model, the run
// directory, run.json, the metrics files, the log file, data parallelism and resuming.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config/experiment_config.h"

namespace prefengine {

class DataParallel;
class Interrupted;
class Loss;
class MetricsLogger;
class Model;
class PluginLoader;
class RewardSource;
class StageUnit;
struct ResumePoint;

struct RunResult {
  std::string directory;    // the run directory
  int64_t global_steps = 0; // optimizer steps over all stages
};

class ExperimentRunner {
 public:
  ExperimentRunner(ExperimentConfig config, std::string run_directory);
  ~ExperimentRunner();

  // Creates the model, every stage's loss plugin and unit, and checks that they fit (so a bad
  // option in the last stage fails before the first trains). Called by validate() and run().
  void prepare();
  // prepare(), then reads and checks every stage's data; writes nothing. run() after validate()
  // reuses what validate() built and read.
  void validate();
  // Trains. On failure writes run.json with the error, keeps the metrics and the last checkpoint,
  // and rethrows. On SIGINT/SIGTERM (engine/train/interrupt.h) stops at the next step boundary,
  // checkpoints that step, marks run.json "interrupted" and throws Interrupted.
  RunResult run();

  Model& model() { return *model_; }
  // The run directory (when it is created after validate()).
  void set_directory(std::string run_directory) { directory_ = std::move(run_directory); }
  // run() continues the run directory from its latest checkpoint (see train/resume.h) instead of
  // starting afresh: metrics are appended, finished stages are skipped.
  void set_resume(bool resume) { resume_ = resume; }
  // A reward source for the ppo stages instead of the configured one (tests, graders).
  void set_reward_source(RewardSource* reward) { reward_override_ = reward; }

 private:
  std::shared_ptr<Model> make_model() const;
  // Resuming: the first stage to run, with the model as that stage saw it at its start.
  size_t begin_resume(const ResumePoint& point);
  // SIGINT/SIGTERM: marks run.json "interrupted" (signal, global_step); returns the error to rethrow,
  // which says how to resume.
  Interrupted interrupted(const Interrupted& stop, nlohmann::json& status, bool writer);

  ExperimentConfig config_;
  std::string directory_;
  std::unique_ptr<PluginLoader> loader_;
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<Loss>> losses_;       // per stage
  std::vector<std::unique_ptr<StageUnit>> units_;   // per stage
  int64_t global_step_ = 0;
  bool prepared_ = false;
  bool validated_ = false;
  std::unique_ptr<DataParallel> dp_;  // ranks from the environment; created by run()
  bool resume_ = false;
  RewardSource* reward_override_ = nullptr;
};

// Creates the experiment's model, losses and units and reads every stage's data; throws on the
// first problem; writes nothing.
void validate_experiment(const ExperimentConfig& config);

}  // namespace prefengine
