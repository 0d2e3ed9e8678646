#include "engine/metrics/diagnostics.h"

#include <cmath>
#include <map>
#include <set>

#include "engine/train/sequence_batch.h"
#include "prefengine/model.h"

namespace prefengine {

bool ResponseDistributionProbe::applicable(const std::vector<PairRecord>& records) {
  for (const auto& r : records) {
    if (r.chosen.size() != 1 || r.rejected.size() != 1) return false;
  }
  return !records.empty();
}

ResponseDistributionProbe::ResponseDistributionProbe(const std::vector<PairRecord>& records,
                                                     int64_t vocab_size) {
  std::map<std::vector<int64_t>, int64_t> index;
  std::vector<int64_t> pair_prompt, chosen, rejected;
  std::vector<std::set<int64_t>> seen_per_prompt;
  std::set<int64_t> seen_anywhere;
  for (const auto& r : records) {
    auto it = index.find(r.prompt);
    if (it == index.end()) {
      it = index.emplace(r.prompt, static_cast<int64_t>(prompts_.size())).first;
      prompts_.push_back(r.prompt);
      seen_per_prompt.emplace_back();
    }
    pair_prompt.push_back(it->second);
    chosen.push_back(r.chosen[0]);
    rejected.push_back(r.rejected[0]);
    seen_per_prompt[it->second].insert({r.chosen[0], r.rejected[0]});
    seen_anywhere.insert({r.chosen[0], r.rejected[0]});
  }
  const int64_t u = static_cast<int64_t>(prompts_.size());
  pair_prompt_ = at::tensor(pair_prompt, at::kLong);
  pair_chosen_ = at::tensor(chosen, at::kLong);
  pair_rejected_ = at::tensor(rejected, at::kLong);
  unseen_mask_ = at::ones({u, vocab_size}, at::kFloat);
  never_seen_mask_ = at::ones({u, vocab_size}, at::kFloat);
  for (int64_t i = 0; i < u; ++i) {
    for (int64_t v : seen_per_prompt[i]) unseen_mask_[i][v] = 0;
    for (int64_t v : seen_anywhere) never_seen_mask_[i][v] = 0;
  }
  std::vector<TokenSequence> rows;
  for (const auto& p : prompts_) rows.push_back({&p, nullptr});
  const SequenceTensors packed = pack_sequences(rows);
  prompt_ids_ = packed.input_ids;
  prompt_attention_ = packed.attention_mask;
}

at::Tensor ResponseDistributionProbe::distributions(Model& model) const {
  at::NoGradGuard no_grad;
  ModelInput input;
  input.input_ids = prompt_ids_;
  input.attention_mask = prompt_attention_;
  at::Tensor logits = model.forward(input).logits.to(at::kFloat);
  at::Tensor last = (prompt_attention_.sum(1) - 1).view({-1, 1, 1}).expand({-1, 1, logits.size(2)});
  return logits.gather(1, last).squeeze(1).softmax(-1);
}

void ResponseDistributionProbe::measure(Model& model, MetricsRow& row) const {
  at::Tensor probs = distributions(model);
  at::Tensor per_pair = probs.index_select(0, pair_prompt_);
  row.set("probs/chosen", per_pair.gather(1, pair_chosen_.unsqueeze(1)).mean().item<double>());
  row.set("probs/rejected", per_pair.gather(1, pair_rejected_.unsqueeze(1)).mean().item<double>());
  row.set("probs/unseen", (probs * unseen_mask_).sum(1).mean().item<double>());
  row.set("probs/never_seen", (probs * never_seen_mask_).sum(1).mean().item<double>());
}

void add_gradient_diagnostics(const at::Tensor& dloss_dlogp_chosen, const at::Tensor& dloss_dlogp_rejected,
                              const at::Tensor& logp_chosen, const at::Tensor& logp_rejected,
                              MetricsRow& row) {
  const double ln10 = std::log(10.0);
  at::Tensor gw = dloss_dlogp_chosen.to(at::kDouble).abs();
  at::Tensor gl = dloss_dlogp_rejected.to(at::kDouble).abs();
  at::Tensor w = gw.log10() - logp_chosen.to(at::kDouble) / ln10;
  at::Tensor l = gl.log10() - logp_rejected.to(at::kDouble) / ln10;
  at::Tensor w_ok = gw > 0;
  at::Tensor l_ok = gl > 0;
  at::Tensor both = w_ok.logical_and(l_ok);
  if (w_ok.any().item<bool>()) row.set("grad/chosen_log10", w.masked_select(w_ok).mean().item<double>());
  if (l_ok.any().item<bool>()) row.set("grad/rejected_log10", l.masked_select(l_ok).mean().item<double>());
  if (both.any().item<bool>()) {
    row.set("grad/ratio_log10", (l - w).masked_select(both).mean().item<double>());
  }
}

}  // namespace prefengine
