// The registry of stage kinds. Adding a kind: write engine/train/stages/<kind>.cpp with a
// `StageKindSpec <kind>_stage_kind()` and add one line to the list below.
#include "engine/dist/data_parallel.h"
#include "engine/train/stage_unit.h"

namespace prefengine {

StageKindSpec sft_stage_kind();
StageKindSpec pairwise_stage_kind();
StageKindSpec ppo_stage_kind();
StageKindSpec pairs_stage_kind();

const std::vector<StageKindSpec>& stage_kinds() {
  static const std::vector<StageKindSpec> kinds = {
      sft_stage_kind(),
      pairwise_stage_kind(),
      ppo_stage_kind(),
      pairs_stage_kind(),
  };
  return kinds;
}

const StageKindSpec* find_stage_kind(const std::string& name) {
  for (const auto& spec : stage_kinds()) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

std::string stage_prefix(const StageOptions& stage) {
  return stage.location + ": stage '" + stage.name + "': ";
}

StageUnit::~StageUnit() = default;

at::Tensor loss_grad_output(const StepInfo& info) {
  const at::Tensor one = at::ones({}, at::kFloat);  // backward()'s seed: ones_like(the fp32 loss)
  return info.micro_batches == 1 ? one : one / static_cast<double>(info.micro_batches);
}

void StageUnit::backward(const LossOutput& out, const StepInfo& info) {
  if (info.micro_batches == 1) out.loss.backward();
  else (out.loss / static_cast<double>(info.micro_batches)).backward();
}

std::vector<UpdatePlan> StageUnit::plan(const std::vector<int64_t>& records, const StageOptions& stage,
                                        DataParallel& dp, std::mt19937_64& /*rng*/) {
  UpdatePlan update;
  for (int64_t m = 0; m < stage.grad_accum; ++m) {
    const auto begin = records.begin() + m * stage.batch_size;
    update.push_back(dp.shard(std::vector<int64_t>(begin, begin + stage.batch_size)));
  }
  return {update};
}

}  // namespace prefengine
