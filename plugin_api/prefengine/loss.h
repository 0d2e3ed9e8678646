#pragma once
// The base of every loss plugin. A loss declares what it needs (requirements()); the engine
// computes exactly that, once per batch, and hands it over as tensors. Every "logps" is a sum over
// response tokens of token log-probabilities in fp32.
//
// A loss implements one of three interfaces, by the data it consumes:
//   SftLoss       (prefengine/sft_loss.h)       target completions or target distributions
//   PairwiseLoss  (prefengine/pairwise_loss.h)  preference pairs (DPO and its family, RM)
//   RolloutLoss   (prefengine/rollout_loss.h)   sampled responses with rewards (PPO)
// The stage kind decides which one it asks for; a loss of the wrong kind is a config error.
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>

#include "prefengine/plugin.h"

namespace prefengine {

// What the engine must compute for the loss.
struct LossRequirements {
  bool reference_logps = false;  // frozen reference log-probs (pairwise: of chosen and rejected)
  bool policy_logps = true;      // the policy's summed log-probs (false: a reward model)
  bool token_logps = false;      // per-token log-probs and masks besides the sums
  bool scalar_head = false;      // the model's scalar head (reward, value)
};

// A named scalar for the metrics files; the engine averages it over the batches of a log step.
using Metric = std::pair<std::string, at::Tensor>;

// Named tensors: a loss's state across steps (checkpointed by the engine).
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct LossOutput {
  at::Tensor loss;              // scalar, the mean over the batch
  std::vector<Metric> metrics;  // the plugin's own metrics (e.g. rewards/margins), detached
};

// What the engine measured over one whole optimizer step (every micro-batch, every rank), handed
// to a loss that asks for it (wants_step_feedback) right after the optimizer step. Fields the
// stage kind does not measure stay NaN.
struct StepFeedback {
  static constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  int64_t step = 0;                 // optimizer steps done in the stage, this one included
  double chosen_logps = kNan;     // mean policy logp(y_w|x) of the step's pairs
  double rejected_logps = kNan;   // mean policy logp(y_l|x)
  double ref_chosen_logps = kNan;    // mean reference logp(y_w|x) (NaN without a reference)
  double ref_rejected_logps = kNan;  // mean reference logp(y_l|x)
  double chosen_tokens = kNan;    // mean response length of y_w, in tokens
  double rejected_tokens = kNan;  // mean response length of y_l, in tokens
};

class PREFENGINE_API Loss : public Plugin {
 public:
  ~Loss() override;

  virtual LossRequirements requirements() const = 0;

  // State that must survive a checkpoint and resume (e.g. an adaptive controller), as named
  // tensors; the engine saves it with every checkpoint and hands it back on resume.
  virtual NamedTensors state() const { return {}; }
  virtual void load_state(const NamedTensors& /*state*/) {}

  // Stateful losses that steer themselves from what the step measured return true; the engine
  // then reduces StepFeedback over all ranks and calls on_step after every optimizer step.
  virtual bool wants_step_feedback() const { return false; }
  virtual void on_step(const StepFeedback& /*feedback*/) {}
};

}  // namespace prefengine
