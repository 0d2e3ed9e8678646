#pragma once
// Supervised fine-tuning: the mean token negative log-likelihood of a target completion, or, for
// a row whose target is a distribution over the next token (the toy model's responses are one
// token), the cross-entropy to that distribution.
#include "prefengine/plugin_options.h"
#include "prefengine/sft_loss.h"

namespace prefengine::plugins::losses {

// Per row: completion rows  L = -logp(y|x) / |y|   (|y| at least 1)
//          distribution rows L = -sum_v q(v) log softmax(z)_v   (z: logits after the prompt)
// The loss is the batch mean. No options.
class SftCrossEntropyLoss : public SftLoss, public SftGradient {
 public:
  explicit SftCrossEntropyLoss(PluginOptions& options);

  LossRequirements requirements() const override;
  LossOutput sft(const SftBatch& batch) override;
  // The same loss with its closed-form gradient (no autograd): the engine's direct step. The
  // operations are those of autograd's backward through sft(), in its order: the same bits.
  LossOutput sft_with_gradient(const SftBatch& batch, const at::Tensor& grad_output,
                               at::Tensor& grad_next_token_logits, at::Tensor& grad_logps) override;
};

}  // namespace prefengine::plugins::losses
