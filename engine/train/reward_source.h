#pragma once
// Where a ppo stage's sequence rewards come from: a reward model (a second model of the
// experiment's plugin with a trained scalar head, read at the last token) or a grader plugin (the
// response decoded to text and graded against the prompt record's text and reference).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/data/records.h"
#include "engine/train/sequence_batch.h"

namespace prefengine {

class Grader;
class Model;
class PluginLoader;
class Tokenizer;

class RewardSource {
 public:
  virtual ~RewardSource();
  // [B] float rewards for rows = prompt + sampled response; prompt_index[b] indexes `prompts`.
  virtual at::Tensor score(const SequenceTensors& rows, const at::Tensor& prompt_index,
                           const std::vector<PromptRecord>& prompts) = 0;
  virtual std::string describe() const = 0;
};

// r(x, y) = the model's scalar head at the last token; the model is frozen (no gradient).
class RewardModelSource : public RewardSource {
 public:
  RewardModelSource(std::shared_ptr<Model> model, std::string origin);
  at::Tensor score(const SequenceTensors& rows, const at::Tensor& prompt_index,
                   const std::vector<PromptRecord>& prompts) override;
  std::string describe() const override { return "reward model from " + origin_; }

 private:
  std::shared_ptr<Model> model_;
  std::string origin_;
};

// r(x, y) = (grader score - center) / half_range. The defaults map the grader's [min, max] onto
// [-1, 1] (math's 1-5 rubric: (score - 3) / 2). A response the grader refuses scores its minimum.
class GraderRewardSource : public RewardSource {
 public:
  GraderRewardSource(std::unique_ptr<PluginLoader> loader, std::shared_ptr<Grader> grader, std::string name,
                     std::unique_ptr<Tokenizer> tokenizer, double center, double half_range);
  ~GraderRewardSource() override;
  at::Tensor score(const SequenceTensors& rows, const at::Tensor& prompt_index,
                   const std::vector<PromptRecord>& prompts) override;
  std::string describe() const override;
  double center() const { return center_; }
  double half_range() const { return half_range_; }

 private:
  std::unique_ptr<PluginLoader> loader_;  // keeps the grader's library loaded
  std::shared_ptr<Grader> grader_;
  std::string name_;
  std::unique_ptr<Tokenizer> tokenizer_;
  double center_;
  double half_range_;
};

}  // namespace prefengine
