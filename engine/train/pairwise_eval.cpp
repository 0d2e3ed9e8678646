#include "engine/train/pairwise_eval.h"

#include <algorithm>
#include <stdexcept>

#include "engine/data/token_records.h"
#include "engine/metrics/metrics_logger.h"
#include "prefengine/model.h"

namespace prefengine {
namespace {

constexpr int64_t kChunk = 256;  // rows per forward pass

SequenceScores score_all(Model& model, const SequenceTensors& packed, bool logps, bool scalar) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> lp, tok, sc;
  const int64_t rows = packed.rows();
  for (int64_t start = 0; start < rows; start += kChunk) {
    const int64_t end = std::min(rows, start + kChunk);
    std::vector<int64_t> index;
    for (int64_t i = start; i < end; ++i) index.push_back(i);
    const SequenceTensors part = packed.select(index);
    SequenceScores s = score_sequences(model, part, logps, scalar, /*want_token_logps=*/logps);
    if (logps) {
      lp.push_back(s.logps);
      // pad the per-token log-probs back to the full width, so chunks concatenate
      tok.push_back(at::constant_pad_nd(s.token_logps, {0, packed.input_ids.size(1) - s.token_logps.size(1)}));
    }
    if (scalar) sc.push_back(s.scalar);
  }
  SequenceScores out;
  if (logps) {
    out.logps = at::cat(lp);
    out.token_logps = at::cat(tok);
  }
  if (scalar) out.scalar = at::cat(sc);
  return out;
}

}  // namespace

PairwiseEvaluator::PairwiseEvaluator(const EvalOptions& options, const LossRequirements& requirements,
                                     Model& model)
    : options_(options), requirements_(requirements) {
  records_ = read_pair_records(options.path);
  check_token_range(records_, model.vocab_size());
  std::vector<TokenSequence> rows;
  for (const auto& r : records_) rows.push_back({&r.prompt, &r.chosen});
  for (const auto& r : records_) rows.push_back({&r.prompt, &r.rejected});
  packed_ = pack_sequences(rows);
  if (requirements_.reference_logps) ref_logps_ = score_all(model, packed_, true, false).logps;
}

bool PairwiseEvaluator::due(int64_t step, bool log_row) const {
  if (options_.every == 0) return log_row;
  return step == 1 || step % options_.every == 0;
}

void PairwiseEvaluator::measure(Model& model, PairwiseLoss& loss, MetricsRow& row) const {
  const int64_t n = pairs();
  const bool want_logps = requirements_.policy_logps;
  const bool want_scalar = requirements_.scalar_head;
  SequenceScores s = score_all(model, packed_, want_logps, want_scalar);
  PairwiseBatch batch;
  batch.chosen_lengths = packed_.lengths.slice(0, 0, n);
  batch.rejected_lengths = packed_.lengths.slice(0, n);
  at::Tensor margin;
  if (want_logps) {
    batch.chosen_logps = s.logps.slice(0, 0, n);
    batch.rejected_logps = s.logps.slice(0, n);
    if (requirements_.token_logps) {
      batch.chosen_token_logps = s.token_logps.slice(0, 0, n);
      batch.rejected_token_logps = s.token_logps.slice(0, n);
      batch.chosen_mask = packed_.response_mask.slice(0, 0, n);
      batch.rejected_mask = packed_.response_mask.slice(0, n);
    }
    margin = batch.chosen_logps - batch.rejected_logps;
  }
  if (requirements_.reference_logps) {
    batch.ref_chosen_logps = ref_logps_.slice(0, 0, n);
    batch.ref_rejected_logps = ref_logps_.slice(0, n);
    margin = margin - (batch.ref_chosen_logps - batch.ref_rejected_logps);
  }
  if (want_scalar) {
    batch.chosen_rewards = s.scalar.slice(0, 0, n);
    batch.rejected_rewards = s.scalar.slice(0, n);
    if (!want_logps) margin = batch.chosen_rewards - batch.rejected_rewards;
  }
  if (!margin.defined()) throw std::runtime_error("eval: the loss asks for neither log-probs nor rewards");
  at::NoGradGuard no_grad;
  LossOutput out = loss.pairwise(batch);
  row.set("eval/accuracy", (margin > 0).to(at::kDouble).mean().item<double>());
  if (out.loss.defined()) row.set("eval/loss", out.loss.item<double>());
}

std::unique_ptr<PairwiseEvaluator> make_pairwise_evaluator(const StageOptions& stage,
                                                           const LossRequirements& requirements,
                                                           Model& model) {
  if (!stage.eval.enabled()) return nullptr;
  return std::make_unique<PairwiseEvaluator>(stage.eval, requirements, model);
}

}  // namespace prefengine
