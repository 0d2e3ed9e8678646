// The pairwise stage: preference pairs (prompt, chosen, rejected) for the DPO family and the
// reward model. Builds the policy's (and the frozen reference's) log-probs or the scalar head's
// rewards for each micro-batch, calls the PairwiseLoss, and adds the 3D diagnostics: logps/*,
// probs/* (single-token responses) and grad/* (dL/dpi magnitudes).
#include <algorithm>
#include <array>
#include <stdexcept>

#include <boost/filesystem.hpp>
#include <spdlog/spdlog.h>

#include "engine/data/stage_data.h"
#include "engine/data/token_records.h"
#include "engine/dist/data_parallel.h"
#include "engine/metrics/diagnostics.h"
#include "engine/metrics/metrics_logger.h"
#include "engine/train/checkpoint.h"
#include "engine/train/init_from.h"
#include "engine/train/reference_cache.h"
#include "engine/train/sequence_batch.h"
#include "engine/train/stage_unit.h"
#include "prefengine/model.h"
#include "prefengine/pairwise_loss.h"

namespace prefengine {
namespace {

// The frozen-copy reference log-probs of `packed` (the policy as it is at the stage's start), from
// the reference cache when the experiment enables it.
at::Tensor reference_logps(StageContext& context, const SequenceTensors& packed) {
  const StageOptions& stage = context.stage;
  Model& model = *context.model;
  const int64_t rows = packed.rows();
  const std::string cache_dir = reference_cache_directory(context.config);
  // reference_from: the reference's own weights (not the policy's) key the cache.
  std::shared_ptr<Model> reference;
  if (!stage.reference_from.empty()) reference = make_frozen_reference(context);
  std::string key;
  if (!cache_dir.empty()) {
    key = reference_cache_key(context.config, stage, reference ? *reference : model);
    if (auto cached = load_cached_reference(cache_dir, key, rows)) {
      spdlog::info("stage '{}': reference log-probs for {} sequences from {}/{}.pt", stage.name, rows, cache_dir, key);
      context.report["reference"] = "cache";
      return *cached;
    }
  }
  // A frozen copy of the policy as it is now (or the reference_from weights), used once, then dropped.
  if (!reference) reference = make_frozen_reference(context);
  at::NoGradGuard no_grad;
  // Each rank scores its shard of the rows; every rank gets them all back.
  at::Tensor logps = context.dp->sharded_rows(rows, [&](int64_t shard_begin, int64_t shard_end) {
    std::vector<at::Tensor> chunks;
    const int64_t chunk = std::max<int64_t>(stage.batch_size, 64);
    for (int64_t start = shard_begin; start < shard_end; start += chunk) {
      const int64_t end = std::min(shard_end, start + chunk);
      std::vector<int64_t> part_index;
      for (int64_t i = start; i < end; ++i) part_index.push_back(i);
      chunks.push_back(score_sequences(*reference, packed.select(part_index), true, false).logps);
    }
    return at::cat(chunks);
  });
  context.report["reference"] = "computed";
  if (!cache_dir.empty() && context.dp->is_writer()) {
    store_cached_reference(cache_dir, key, logps);
    context.report["reference"] = "computed, cached";
  }
  spdlog::info("stage '{}': reference log-probs computed for {} sequences", stage.name, rows);
  return logps;
}

class PairwiseStage : public StageUnit {
 public:
  int64_t prepare(StageContext& context) override {
    model_ = context.model.get();
    loss_ = dynamic_cast<PairwiseLoss*>(context.loss);
    loss_name_ = context.stage.loss_plugin;
    req_ = loss_->requirements();
    dp_ = context.dp;
    if (!loaded_) validate(context);
    context.report["data"] = stats_.to_json();
    n_ = static_cast<int64_t>(records_.size());
    if (req_.scalar_head && !model_->has_scalar_head()) model_->add_scalar_head();
    dp_->broadcast_module(*model_);  // rank 0's weights, before the reference copies them

    // Rows 0..n-1: prompt + chosen; rows n..2n-1: prompt + rejected; one packing, one width.
    std::vector<TokenSequence> rows;
    for (const auto& r : records_) rows.push_back({&r.prompt, &r.chosen});
    for (const auto& r : records_) rows.push_back({&r.prompt, &r.rejected});
    packed_ = pack_sequences(rows);
    if (req_.reference_logps) ref_logps_ = reference_logps(context, packed_);
    if (dynamic_cast<const SingleTokenResponses*>(model_) != nullptr &&
        ResponseDistributionProbe::applicable(records_)) {
      probe_ = std::make_unique<ResponseDistributionProbe>(records_, model_->vocab_size());
    }
    feedback_wanted_ = context.loss->wants_step_feedback();
    direct_ = context.config.direct_backward;
    // The direct step: the model outside autograd and the loss's gradient in closed form, on steps
    // that log nothing (log steps keep autograd after the logits, for the gradient diagnostics).
    direct_model_ = direct_ ? dynamic_cast<DirectBackward*>(model_) : nullptr;
    closed_form_ = direct_model_ != nullptr && req_.policy_logps && !req_.scalar_head && !req_.token_logps
                       ? dynamic_cast<PairwiseGradient*>(loss_)
                       : nullptr;
    context.report["backward"] = closed_form_ != nullptr                     ? "direct"
                                 : direct_model_ != nullptr && !req_.scalar_head ? "direct_model"
                                                                                 : "autograd";
    model_->train();
    return n_;
  }

  // Reads and checks the pairs; prepare() reuses them.
  void validate(StageContext& context) override {
    if (context.stage.data.path.empty()) {
      // data.from_stage: the pairs file does not exist before that stage has run; its text needs
      // the experiment's tokenizer.
      (void)make_experiment_tokenizer(context.config, stage_prefix(context.stage) + "data.from_stage (text pairs)");
      return;
    }
    if (!context.stage.data.from_stage.empty() && boost::filesystem::exists(context.stage.data.path) &&
        boost::filesystem::file_size(context.stage.data.path) == 0) {
      throw std::invalid_argument(stage_prefix(context.stage) + "data.from_stage: stage '" + context.stage.data.from_stage +
                                  "' kept no pairs (" + context.stage.data.path + " is empty: on every prompt the "
                                  "chosen did not grade above the rejected); more samples (sampling.n), a higher "
                                  "sampling.temperature, more prompts or chosen_from: reference give pairs");
    }
    records_ = load_stage_pairs(context.config, context.stage, &stats_);
    check_token_range(records_, context.model->vocab_size());
    check_prompt_ids(*context.model, records_);
    // The reference cache is written after the reference is computed: refuse an unusable folder now.
    const auto* loss = dynamic_cast<const PairwiseLoss*>(context.loss);
    if (loss != nullptr && loss->requirements().reference_logps) check_reference_cache_directory(context.config);
    loaded_ = true;
  }

  // A step that logs nothing, without autograd: forward_direct, the log-probs, the loss's
  // closed-form gradient (backward() then sends it through the log-probs and the model).
  // The micro-batch's rows (its chosen rows, then its rejected rows), their lengths in `pairs`, and
  // their reference log-probs (in `ref` and `pairs`) when the loss needs them.
  SequenceTensors select_pair_rows(const std::vector<int64_t>& batch_index, PairwiseBatch& pairs,
                                   at::Tensor& ref) const {
    const int64_t b = static_cast<int64_t>(batch_index.size());
    std::vector<int64_t> rows_index = batch_index;
    for (int64_t i : batch_index) rows_index.push_back(i + n_);
    at::Tensor rows_tensor;
    SequenceTensors batch = packed_.select(rows_index, &rows_tensor);
    pairs.chosen_lengths = batch.lengths.slice(0, 0, b);
    pairs.rejected_lengths = batch.lengths.slice(0, b);
    if (req_.reference_logps) {
      ref = ref_logps_.index_select(0, rows_tensor);
      pairs.ref_chosen_logps = ref.slice(0, 0, b);
      pairs.ref_rejected_logps = ref.slice(0, b);
    }
    return batch;
  }

  LossOutput direct_micro_batch(const std::vector<int64_t>& batch_index, const StepInfo& info) {
    const int64_t b = static_cast<int64_t>(batch_index.size());
    PairwiseBatch pairs;
    at::Tensor ref;
    const SequenceTensors batch = select_pair_rows(batch_index, pairs, ref);
    const at::Tensor logits = direct_model_->forward_direct(scoring_input(batch, /*want_scalar=*/false));
    const at::Tensor logps = direct_logps_.forward(logits, batch.input_ids, batch.response_mask);
    pairs.chosen_logps = logps.slice(0, 0, b);
    pairs.rejected_logps = logps.slice(0, b);
    pairs.want_metrics = false;
    if (feedback_wanted_) record_feedback(logps, ref, pairs, b);
    at::Tensor grad_w, grad_l;
    LossOutput out = call_loss_plugin(loss_name_, [&] {
      return closed_form_->pairwise_with_gradient(pairs, loss_grad_output(info), grad_w, grad_l);
    });
    const auto check = [&](const at::Tensor& g, const char* name) {
      if (!g.defined() || g.dim() != 1 || g.size(0) != b) {
        throw std::runtime_error("loss plugin '" + loss_name_ + "': pairwise_with_gradient gave no " + name +
                                 " of shape [" + std::to_string(b) + "]");
      }
    };
    check(grad_w, "grad_chosen");
    check(grad_l, "grad_rejected");
    direct_grad_ = at::cat({grad_w, grad_l});  // what autograd's split node gives the log-probs
    return out;
  }

  void backward(const LossOutput& out, const StepInfo& info) override {
    const bool direct = send_direct_gradient(
        direct_grad_, [&](const at::Tensor& grad) { direct_model_->backward_direct(direct_logps_.backward(grad)); });
    if (!direct) StageUnit::backward(out, info);
  }

  LossOutput micro_batch(const std::vector<int64_t>& batch_index, const StepInfo& info) override {
    direct_grad_ = at::Tensor();  // nothing pending from a micro-batch whose backward never ran
    if (closed_form_ != nullptr && !info.log_now) {
      // no autograd at all: InferenceMode also skips the autograd dispatch of every operator
      c10::InferenceMode no_autograd;
      return direct_micro_batch(batch_index, info);
    }
    const int64_t b = static_cast<int64_t>(batch_index.size());
    PairwiseBatch pairs;
    at::Tensor ref;
    const SequenceTensors batch = select_pair_rows(batch_index, pairs, ref);
    SequenceScores scores = score_sequences(*model_, batch, req_.policy_logps, req_.scalar_head, req_.token_logps,
                                            /*want_logit_sums=*/info.log_now && req_.policy_logps,
                                            direct_ ? &direct_logits_ : nullptr);
    if (scores.logit_sums.defined()) {  // TRL's logits/chosen, logits/rejected: over the step's response tokens
      const at::Tensor tokens = batch.lengths.to(at::kDouble);
      logit_sum_w_ += scores.logit_sums.slice(0, 0, b).sum().item<double>();
      logit_sum_l_ += scores.logit_sums.slice(0, b).sum().item<double>();
      logit_tokens_w_ += tokens.slice(0, 0, b).sum().item<double>();
      logit_tokens_l_ += tokens.slice(0, b).sum().item<double>();
    }
    logps_all_ = at::Tensor();
    micro_rows_ = b;
    if (req_.policy_logps) {
      // A leaf-like handle on the log-probs, so autograd reports dL/dlogp for the diagnostics.
      logps_all_ = scores.logps;
      if (info.log_now && logps_all_.requires_grad()) logps_all_.retain_grad();
      const std::vector<at::Tensor> halves = logps_all_.split(b);  // one autograd node
      pairs.chosen_logps = halves[0];
      pairs.rejected_logps = halves[1];
      if (req_.token_logps) {
        pairs.chosen_token_logps = scores.token_logps.slice(0, 0, b);
        pairs.rejected_token_logps = scores.token_logps.slice(0, b);
        pairs.chosen_mask = batch.response_mask.slice(0, 0, b);
        pairs.rejected_mask = batch.response_mask.slice(0, b);
      }
    }
    pairs.want_metrics = info.log_now;
    if (info.log_now && req_.policy_logps) sequence_diagnostics(pairs, ref, b);
    if (req_.scalar_head) {
      pairs.chosen_rewards = scores.scalar.slice(0, 0, b);
      pairs.rejected_rewards = scores.scalar.slice(0, b);
    }
    if (feedback_wanted_ && logps_all_.defined()) record_feedback(logps_all_, ref, pairs, b);
    return call_loss_plugin(loss_name_, [&] { return loss_->pairwise(pairs); });
  }

  // What StepFeedback needs of a micro-batch (sums over its pairs).
  void record_feedback(const at::Tensor& logps, const at::Tensor& ref, const PairwiseBatch& pairs, int64_t b) {
    const at::Tensor l = logps.detach().to(at::kDouble);
    fb_.push_back({l.slice(0, 0, b).sum().item<double>(), l.slice(0, b).sum().item<double>(),
                   ref.defined() ? ref.slice(0, 0, b).sum().item<double>() : 0.0,
                   ref.defined() ? ref.slice(0, b).sum().item<double>() : 0.0,
                   pairs.chosen_lengths.sum().item<double>(), pairs.rejected_lengths.sum().item<double>(),
                   static_cast<double>(b)});
  }

  // The sequence 3D diagnostics of a micro-batch (docs/algorithms.md, "Sequence diagnostics"):
  // per-token mean log-probs of chosen and rejected, and how far the pair's per-token likelihood
  // fell below the reference's (mass moved off the preference data).
  void sequence_diagnostics(const PairwiseBatch& pairs, const at::Tensor& ref, int64_t b) {
    at::NoGradGuard no_grad;
    const at::Tensor len_w = pairs.chosen_lengths.to(at::kDouble).clamp_min(1);
    const at::Tensor len_l = pairs.rejected_lengths.to(at::kDouble).clamp_min(1);
    const at::Tensor w = pairs.chosen_logps.detach().to(at::kDouble) / len_w;
    const at::Tensor l = pairs.rejected_logps.detach().to(at::kDouble) / len_l;
    per_token_w_.push_back(w);
    per_token_l_.push_back(l);
    if (!ref.defined()) return;
    const at::Tensor ref_w = ref.slice(0, 0, b).to(at::kDouble) / len_w;
    const at::Tensor ref_l = ref.slice(0, b).to(at::kDouble) / len_l;
    off_data_.push_back(at::logsumexp(at::stack({ref_w, ref_l}), 0) - at::logsumexp(at::stack({w, l}), 0));
  }

  void after_backward(const StepInfo& info) override {
    finish_direct_backward(*model_, direct_logits_);
    if (!info.log_now || !logps_all_.defined() || !logps_all_.grad().defined()) return;
    // per-pair dL_i/dlogp: the loss is a mean over b pairs and the step's micro-batches
    const at::Tensor g = logps_all_.grad() * static_cast<double>(micro_rows_ * info.micro_batches);
    grad_w_.push_back(g.slice(0, 0, micro_rows_));
    grad_l_.push_back(g.slice(0, micro_rows_));
    logp_w_.push_back(logps_all_.detach().slice(0, 0, micro_rows_));
    logp_l_.push_back(logps_all_.detach().slice(0, micro_rows_));
  }

  void step_metrics(MetricsRow& row, const StepInfo& /*info*/) override {
    if (!logp_w_.empty()) {
      row.set("logps/chosen", at::cat(logp_w_).mean().item<double>());
      row.set("logps/rejected", at::cat(logp_l_).mean().item<double>());
    }
    if (!per_token_w_.empty()) {
      row.set("logps/chosen_per_token", at::cat(per_token_w_).mean().item<double>());
      row.set("logps/rejected_per_token", at::cat(per_token_l_).mean().item<double>());
    }
    if (!off_data_.empty()) row.set("dispersion/off_data_per_token", at::cat(off_data_).mean().item<double>());
    // TRL's logits/*: the policy's logits averaged over the vocabulary and over the step's response
    // tokens (of this rank; the loop then averages the ranks).
    if (logit_tokens_w_ > 0) row.set("logits/chosen", logit_sum_w_ / logit_tokens_w_);
    if (logit_tokens_l_ > 0) row.set("logits/rejected", logit_sum_l_ / logit_tokens_l_);
    logit_sum_w_ = logit_sum_l_ = logit_tokens_w_ = logit_tokens_l_ = 0;
    per_token_w_.clear();
    per_token_l_.clear();
    off_data_.clear();
  }

  void end_step(MetricsRow& row, const StepInfo& /*info*/) override {
    if (probe_) probe_->measure(*model_, row);
    if (!grad_w_.empty()) {
      add_gradient_diagnostics(dp_->gather_rows(at::cat(grad_w_)), dp_->gather_rows(at::cat(grad_l_)),
                               dp_->gather_rows(at::cat(logp_w_)), dp_->gather_rows(at::cat(logp_l_)), row);
    }
    grad_w_.clear();
    grad_l_.clear();
    logp_w_.clear();
    logp_l_.clear();
  }

  void feedback(StepFeedback& feedback) override {
    double s[7] = {0, 0, 0, 0, 0, 0, 0};
    for (const auto& f : fb_) {
      for (int k = 0; k < 7; ++k) s[k] += f[k];
    }
    fb_.clear();
    if (s[6] <= 0) return;
    feedback.chosen_logps = s[0] / s[6];
    feedback.rejected_logps = s[1] / s[6];
    if (req_.reference_logps) {
      feedback.ref_chosen_logps = s[2] / s[6];
      feedback.ref_rejected_logps = s[3] / s[6];
    }
    feedback.chosen_tokens = s[4] / s[6];
    feedback.rejected_tokens = s[5] / s[6];
  }

  bool logs_3d_diagnostics() const override { return true; }

  std::vector<std::string> progress_keys() const override {
    return {"loss", "probs/chosen", "probs/rejected", "probs/unseen", "logps/chosen", "logps/rejected",
            "grad/rejected_log10"};
  }

  std::string describe_rows(const std::vector<int64_t>& rows) const override {
    return describe_record_sources(records_, rows);
  }

  std::string describe(int64_t records) const override {
    return "pairwise, loss " + loss_name_ + ": " + std::to_string(records) + " pairs";
  }

 private:
  Model* model_ = nullptr;
  PairwiseLoss* loss_ = nullptr;
  std::string loss_name_;
  LossRequirements req_;
  DataParallel* dp_ = nullptr;
  std::vector<PairRecord> records_;
  StageDataStats stats_;
  bool loaded_ = false;
  int64_t n_ = 0;
  SequenceTensors packed_;
  at::Tensor ref_logps_;
  std::unique_ptr<ResponseDistributionProbe> probe_;
  at::Tensor logps_all_;
  int64_t micro_rows_ = 0;
  std::vector<at::Tensor> grad_w_, grad_l_, logp_w_, logp_l_;
  std::vector<at::Tensor> per_token_w_, per_token_l_, off_data_;  // sequence diagnostics of the step
  double logit_sum_w_ = 0, logit_sum_l_ = 0, logit_tokens_w_ = 0, logit_tokens_l_ = 0;  // TRL's logits/*
  bool feedback_wanted_ = false;
  std::vector<std::array<double, 7>> fb_;
  bool direct_ = true;         // the experiment's direct_backward
  at::Tensor direct_logits_;   // the micro-batch's logits leaf when the model runs outside autograd
  DirectBackward* direct_model_ = nullptr;     // the model, when it runs outside autograd
  PairwiseGradient* closed_form_ = nullptr;    // the loss, when its gradient is in closed form too
  DirectSequenceLogps direct_logps_;           // the direct step's log-probs
  at::Tensor direct_grad_;                     // the direct step's dL/dlogps, for backward()
};

}  // namespace

StageKindSpec pairwise_stage_kind() {
  StageKindSpec spec;
  spec.name = "pairwise";
  spec.summary = "preference pairs: the DPO family and the reward model";
  spec.read_options = [](PluginOptions& o, StageOptions& stage, const std::vector<std::string>& /*earlier*/) {
    stage.reference = o.get_choice("reference", stage.reference, {"frozen_copy", "none"});
    stage.warn_3d = EarlyWarningOptions::read(o);
  };
  spec.check_fit = [](const StageOptions& stage, const Loss* loss, const Model& model) {
    const auto* pairwise = dynamic_cast<const PairwiseLoss*>(loss);
    if (pairwise == nullptr) {
      throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                  "' does not take preference pairs");
    }
    const LossRequirements req = loss->requirements();
    if (req.reference_logps && stage.reference == "none") {
      throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                  "' needs reference log-probs, but the stage says reference: none");
    }
    if (req.scalar_head && !model.supports_scalar_head()) {
      throw std::invalid_argument(stage_prefix(stage) + "loss plugin '" + stage.loss_plugin +
                                  "' needs a scalar head, which this model does not have");
    }
  };
  spec.create = [] { return std::make_unique<PairwiseStage>(); };
  return spec;
}

}  // namespace prefengine
