#pragma once
// Where a ppo stage's sequence rewards come from. A reward model (a second model of the
// experiment's plugin with a trained scalar head, read at the last token) now; a grader plugin
// can implement the same interface later (it reads the prompt records and decodes the tokens).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "engine/data/records.h"
#include "engine/train/sequence_batch.h"

namespace prefengine {

class Model;

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

}  // namespace prefengine
