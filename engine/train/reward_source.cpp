#include "engine/train/reward_source.h"

#include <cmath>

#include <spdlog/spdlog.h>

#include "engine/data/tokenizer.h"
#include "engine/loop/sampling.h"
#include "prefengine/grader.h"
#include "prefengine/model.h"
#include "prefengine/plugin_loader.h"

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

GraderRewardSource::GraderRewardSource(std::unique_ptr<PluginLoader> loader, std::shared_ptr<Grader> grader,
                                       std::string name, std::unique_ptr<Tokenizer> tokenizer, double center,
                                       double half_range)
    : loader_(std::move(loader)),
      grader_(std::move(grader)),
      name_(std::move(name)),
      tokenizer_(std::move(tokenizer)),
      center_(std::isnan(center) ? (grader_->min_score() + grader_->max_score()) / 2 : center),
      half_range_(std::isnan(half_range) ? (grader_->max_score() - grader_->min_score()) / 2 : half_range) {
  if (!(half_range_ > 0)) {
    throw std::invalid_argument("reward.grader " + name_ + ": its score range is empty; set reward.half_range");
  }
}

GraderRewardSource::~GraderRewardSource() {
  grader_.reset();  // before the library it came from
}

at::Tensor GraderRewardSource::score(const SequenceTensors& rows, const at::Tensor& prompt_index,
                                     const std::vector<PromptRecord>& prompts) {
  const int64_t b = rows.input_ids.size(0);
  // One copy to host memory, then plain reads: an .item() per token is a device sync (and a
  // dispatch) each.
  const at::Tensor ids = rows.input_ids.to(at::kCPU, at::kLong).contiguous();
  const at::Tensor mask = rows.response_mask.to(at::kCPU, at::kLong).contiguous();
  const at::Tensor index = prompt_index.to(at::kCPU, at::kLong).contiguous();
  const auto ids_at = ids.accessor<int64_t, 2>();
  const auto mask_at = mask.accessor<int64_t, 2>();
  const auto index_at = index.accessor<int64_t, 1>();
  std::vector<float> rewards(static_cast<size_t>(b));
  int64_t refused = 0;
  for (int64_t i = 0; i < b; ++i) {
    std::vector<int64_t> response;
    for (int64_t t = 0; t < ids.size(1); ++t) {
      if (mask_at[i][t] != 0) response.push_back(ids_at[i][t]);
    }
    const PromptRecord& prompt = prompts[static_cast<size_t>(index_at[i])];
    double score = grader_->min_score();
    try {
      score = grader_->grade({prompt.prompt_text, valid_utf8(tokenizer_->decode(response)), prompt.reference}).score;
    } catch (const std::exception& e) {
      if (refused++ == 0) spdlog::warn("{}: grader {} refused a response ({}): it scores {}", prompt.source, name_, e.what(), score);
    }
    rewards[static_cast<size_t>(i)] = static_cast<float>((score - center_) / half_range_);
  }
  return at::tensor(rewards, at::kFloat);
}

std::string GraderRewardSource::describe() const {
  return "grader " + name_ + " (reward = (score - " + std::to_string(center_) + ") / " + std::to_string(half_range_) + ")";
}

}  // namespace prefengine
