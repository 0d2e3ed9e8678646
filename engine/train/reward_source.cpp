#include "engine/train/reward_source.h"

#include "prefengine/model.h"

namespace prefengine {

RewardSource::~RewardSource() = default;

RewardModelSource::RewardModelSource(std::shared_ptr<Model> model, std::string origin)
    : model_(std::move(model)), origin_(std::move(origin)) {
  model_->eval();
  for (auto& p : model_->parameters()) p.set_requires_grad(false);
}

at::Tensor RewardModelSource::score(const SequenceTensors& rows, const at::Tensor& /*prompt_index*/,
                                    const std::vector<PromptRecord>& /*prompts*/) {
  at::NoGradGuard no_grad;
  return score_sequences(*model_, rows, /*want_logps=*/false, /*want_scalar=*/true).scalar.to(at::kFloat);
}

}  // namespace prefengine
