// The sft stage: supervised fine-tuning on target completions (prompt + completion rows) or, for
// models whose responses are one token, target next-token distributions (prompt-only rows). The
// loss is a plugin (`sft` unless the stage names another SftLoss).
#include <algorithm>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "engine/data/stage_data.h"
#include "engine/data/token_records.h"
#include "engine/dist/data_parallel.h"
#include "engine/train/sequence_batch.h"
#include "engine/train/stage_unit.h"
#include "prefengine/model.h"
#include "prefengine/sft_loss.h"

namespace prefengine {
namespace {

class SftStage : public StageUnit {
 public:
  int64_t prepare(StageContext& context) override {
    model_ = context.model.get();
    loss_ = dynamic_cast<SftLoss*>(context.loss);
    loss_name_ = context.stage.loss_plugin;
    requirements_ = loss_->requirements();
    if (!loaded_) validate(context);
    context.report["data"] = stats_.to_json();
    const int64_t n = static_cast<int64_t>(records_.size());
    if (context.dp != nullptr) context.dp->broadcast_module(*model_);  // rank 0's weights on every rank
    // Rows: prompt + completion (completion records), prompt alone (distribution records).
    std::vector<TokenSequence> rows;
    targets_ = at::zeros({n, model_->vocab_size()}, at::kFloat);
    is_distribution_.assign(static_cast<size_t>(n), false);
    for (int64_t i = 0; i < n; ++i) {
      const SftRecord& r = records_[static_cast<size_t>(i)];
      rows.push_back({&r.prompt, r.completion.empty() ? nullptr : &r.completion, &r.completion_mask});
      if (!r.distribution.empty()) {
        is_distribution_[static_cast<size_t>(i)] = true;
        targets_[i] = at::tensor(r.distribution, at::kDouble).to(at::kFloat);
      }
    }
    packed_ = pack_sequences(rows);
    std::vector<int64_t> flags(is_distribution_.begin(), is_distribution_.end());
    distribution_flags_ = at::tensor(flags, at::kLong).to(at::kBool);
    model_->train();
    return n;
  }

  // Reads and checks the records; prepare() reuses them.
  void validate(StageContext& context) override {
    records_ = load_stage_sft(context.config, context.stage, &stats_);
    check_token_range(records_, context.model->vocab_size());
    check_prompt_ids(*context.model, records_);
    loaded_ = true;
  }

  LossOutput micro_batch(const std::vector<int64_t>& rows, const StepInfo& info) override {
    at::Tensor rows_tensor;
    const SequenceTensors batch = packed_.select(rows, &rows_tensor);
    bool any_distribution = false, any_completion = false;
    for (int64_t i : rows) {
      const bool d = is_distribution_[static_cast<size_t>(i)];
      any_distribution = any_distribution || d;
      any_completion = any_completion || !d;
    }
    ModelInput input;
    input.input_ids = batch.input_ids;
    input.attention_mask = batch.attention_mask;
    at::Tensor logits = model_->forward(input).logits;
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    SftBatch sft;
    sft.want_metrics = info.log_now;
    sft.has_distribution = distribution_flags_.index_select(0, rows_tensor);
    sft.lengths = batch.lengths;
    if (any_distribution) {
      // the logits of the token after the prompt (the last real position)
      if (logits.size(1) == 1) {
        sft.next_token_logits = logits.select(1, 0);
      } else {
        const at::Tensor last =
            (batch.attention_mask.sum(1) - 1).view({-1, 1, 1}).expand({-1, 1, logits.size(2)});
        sft.next_token_logits = logits.gather(1, last).squeeze(1);
      }
      sft.target_distribution = targets_.index_select(0, rows_tensor);
    }
    if (any_completion && requirements_.policy_logps) {
      if (requirements_.token_logps) {
        sft.token_logps = gather_token_logps(logits, batch.input_ids, batch.response_mask);
        sft.mask = batch.response_mask;
        sft.logps = sft.token_logps.sum(1);
      } else {
        sft.logps = sequence_logps(logits, batch.input_ids, batch.response_mask);
      }
    }
    return call_loss_plugin(loss_name_, [&] { return loss_->sft(sft); });
  }

  std::string describe_rows(const std::vector<int64_t>& rows) const override {
    return describe_record_sources(records_, rows);
  }

  std::string describe(int64_t records) const override {
    return "sft, loss " + loss_name_ + ": " + std::to_string(records) + " records";
  }

 private:
  std::string loss_name_;
  Model* model_ = nullptr;
  SftLoss* loss_ = nullptr;
  LossRequirements requirements_;
  std::vector<SftRecord> records_;
  StageDataStats stats_;
  bool loaded_ = false;
  SequenceTensors packed_;
  at::Tensor targets_;
  std::vector<bool> is_distribution_;
  at::Tensor distribution_flags_;  // [records] bool: is_distribution_ as a tensor, selected per batch
};

}  // namespace

StageKindSpec sft_stage_kind() {
  StageKindSpec spec;
  spec.name = "sft";
  spec.summary = "supervised fine-tuning on target completions or next-token distributions";
  spec.needs_loss = false;
  spec.default_loss = "sft";
  spec.check_fit = [](const StageOptions& stage, const Loss* loss, const Model& /*model*/) {
    if (dynamic_cast<const SftLoss*>(loss) == nullptr) {
      throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                  "' is not an SFT loss (an sft stage takes e.g. loss: {plugin: sft})");
    }
  };
  spec.create = [] { return std::make_unique<SftStage>(); };
  return spec;
}

}  // namespace prefengine
