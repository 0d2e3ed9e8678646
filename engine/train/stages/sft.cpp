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
    padded_ = pack_sequences(rows);
    std::vector<int64_t> flags(is_distribution_.begin(), is_distribution_.end());
    distribution_flags_ = at::tensor(flags, at::kLong).to(at::kBool);
    // data.packing (the model's capability is checked by the runner, the rows in validate): model
    // rows of max_length tokens, or of the longest row when it is unset.
    packing_ = context.stage.data.packing;
    if (packing_) capacity_ = std::max<int64_t>(context.stage.data.max_length, padded_.input_ids.size(1));
    direct_ = context.config.direct_backward;
    // The direct step (the model outside autograd, the loss's gradient in closed form) on steps
    // that log nothing.
    direct_model_ = direct_ ? dynamic_cast<DirectBackward*>(model_) : nullptr;
    closed_form_ = direct_model_ != nullptr && requirements_.policy_logps && !requirements_.token_logps
                       ? dynamic_cast<SftGradient*>(loss_)
                       : nullptr;
    context.report["backward"] = closed_form_ != nullptr    ? "direct"
                                 : direct_model_ != nullptr ? "direct_model"
                                                            : "autograd";
    model_->train();
    return n;
  }

  // Reads and checks the records; prepare() reuses them.
  void validate(StageContext& context) override {
    records_ = load_stage_sft(context.config, context.stage, &stats_);
    if (context.stage.data.packing) {
      for (const SftRecord& r : records_) {
        if (!r.distribution.empty()) {
          throw std::invalid_argument(r.source + ": data.packing: expected a completion (packing takes prompt + "
                                      "completion rows), got a target distribution");
        }
      }
    }
    check_token_range(records_, context.model->vocab_size());
    check_prompt_ids(*context.model, records_);
    loaded_ = true;
  }

  LossOutput micro_batch(const std::vector<int64_t>& rows, const StepInfo& info) override {
    direct_grad_ = at::Tensor();  // nothing pending from a micro-batch whose backward never ran
    at::Tensor rows_tensor;
    const SequenceTensors batch = padded_.select(rows, &rows_tensor);
    if (packing_) return packed_micro_batch(batch, info);
    bool any_distribution = false, any_completion = false;
    for (int64_t i : rows) {
      const bool d = is_distribution_[static_cast<size_t>(i)];
      any_distribution = any_distribution || d;
      any_completion = any_completion || !d;
    }
    ModelInput input;
    input.input_ids = batch.input_ids;
    input.attention_mask = batch.attention_mask;
    // The direct step takes batches of one kind of row; distribution rows one token long (the
    // toy model's prompt-only rows, whose logits are [B, 1, V]).
    if (closed_form_ != nullptr && !info.log_now && any_distribution != any_completion &&
        (!any_distribution || batch.input_ids.size(1) == 1)) {
      c10::InferenceMode no_autograd;  // no autograd at all: skips its dispatch of every operator
      return direct_micro_batch(input, batch, rows_tensor, any_distribution, info);
    }
    at::Tensor logits = model_logits(*model_, input, direct_ ? &direct_logits_ : nullptr);
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

  // The rows packed into fewer model rows (data.packing): the same per-row log-probs, summed from
  // the packed per-token ones, and the same loss.
  LossOutput packed_micro_batch(const SequenceTensors& batch, const StepInfo& info) {
    const PackedRows packed = pack_rows(batch, capacity_);
    const ModelInput input = scoring_input(packed.packed, /*want_scalar=*/false);
    at::Tensor logits = model_logits(*model_, input, direct_ ? &direct_logits_ : nullptr);
    if (logits.scalar_type() != at::kFloat) logits = logits.to(at::kFloat);
    SftBatch sft;
    sft.want_metrics = info.log_now;
    sft.has_distribution = at::zeros({batch.rows()}, at::kBool);
    sft.lengths = batch.lengths;
    if (requirements_.policy_logps) {
      const at::Tensor tokens = gather_token_logps(logits, packed.packed.input_ids, packed.packed.response_mask);
      const at::Tensor index = packed.gather_index.to(tokens.device());
      sft.token_logps = tokens.flatten().index_select(0, index.flatten()).view(index.sizes());
      sft.logps = sft.token_logps.sum(1);
      if (requirements_.token_logps) {
        sft.mask = batch.response_mask;
      } else {
        sft.token_logps = at::Tensor();
      }
    }
    LossOutput out = call_loss_plugin(loss_name_, [&] { return loss_->sft(sft); });
    if (info.log_now) {
      // The share of the model rows' positions that hold tokens (1 = no padding computed).
      const double slots = static_cast<double>(packed.packed.input_ids.numel());
      out.metrics.push_back({"batch/packed_fill", at::scalar_tensor(static_cast<double>(packed.real_tokens) / slots)});
    }
    return out;
  }

  LossOutput direct_micro_batch(const ModelInput& input, const SequenceTensors& batch, const at::Tensor& rows_tensor,
                                bool distribution, const StepInfo& info) {
    const at::Tensor logits = direct_model_->forward_direct(input);
    SftBatch sft;
    sft.want_metrics = false;
    sft.has_distribution = distribution_flags_.index_select(0, rows_tensor);
    sft.lengths = batch.lengths;
    if (distribution) {
      sft.next_token_logits = logits.select(1, 0);
      sft.target_distribution = targets_.index_select(0, rows_tensor);
    } else {
      sft.logps = direct_logps_.forward(logits, batch.input_ids, batch.response_mask);
    }
    at::Tensor grad_next, grad_logps;
    LossOutput out = call_loss_plugin(loss_name_, [&] {
      return closed_form_->sft_with_gradient(sft, loss_grad_output(info), grad_next, grad_logps);
    });
    const at::Tensor& grad = distribution ? grad_next : grad_logps;
    const at::Tensor& input_of = distribution ? sft.next_token_logits : sft.logps;
    if (!grad.defined() || grad.sizes() != input_of.sizes()) {
      throw std::runtime_error("loss plugin '" + loss_name_ + "': sft_with_gradient gave no " +
                               (distribution ? "grad_next_token_logits" : "grad_logps") + " of the input's shape");
    }
    direct_grad_ = grad;
    direct_distribution_ = distribution;
    return out;
  }

  void backward(const LossOutput& out, const StepInfo& info) override {
    // dL/dlogits: the next-token logits are position 0 of [B, 1, V] (what select's backward gives)
    const bool direct = send_direct_gradient(direct_grad_, [&](const at::Tensor& grad) {
      direct_model_->backward_direct(direct_distribution_ ? grad.unsqueeze(1) : direct_logps_.backward(grad));
    });
    if (!direct) StageUnit::backward(out, info);
  }

  void after_backward(const StepInfo& /*info*/) override { finish_direct_backward(*model_, direct_logits_); }

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
  bool packing_ = false;  // data.packing
  int64_t capacity_ = 0;  // with packing: the most tokens in a model row
  SequenceTensors padded_;  // every record, right-padded (pack_sequences); batches select rows
  at::Tensor targets_;
  std::vector<bool> is_distribution_;
  at::Tensor distribution_flags_;  // [records] bool: is_distribution_ as a tensor, selected per batch
  bool direct_ = true;             // the experiment's direct_backward
  at::Tensor direct_logits_;       // the micro-batch's logits leaf when the model runs outside autograd
  DirectBackward* direct_model_ = nullptr;  // the model, when it runs outside autograd
  SftGradient* closed_form_ = nullptr;      // the loss, when its gradient is in closed form too
  DirectSequenceLogps direct_logps_;        // the direct step's log-probs of completions
  at::Tensor direct_grad_;                  // the direct step's dL/d(next-token logits or logps)
  bool direct_distribution_ = false;        // direct_grad_ is of the next-token logits
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
