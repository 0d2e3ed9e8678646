#pragma once
// Prompt + response token sequences packed into padded tensors, and the per-token log-probs of a
// model over them. Rows are right-padded; position t of response_mask is 1 when token t belongs
// to the response, so logp(y|x) = sum_t response_mask[t] * log p(token t | tokens < t).
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "prefengine/model.h"

namespace prefengine {

class Model;

struct SequenceTensors {
  at::Tensor input_ids;       // [N, T] int64, padded with 0
  at::Tensor attention_mask;  // [N, T] int64, 1 on real tokens
  at::Tensor response_mask;   // [N, T] float, 1 on response tokens
  at::Tensor lengths;         // [N] float, number of response tokens

  int64_t rows() const { return input_ids.defined() ? input_ids.size(0) : 0; }
  std::vector<int64_t> row_lengths;  // real tokens per row (host copy, for trimming batches)

  // The rows `index` (also given as host values), with trailing all-padding columns dropped.
  // `rows` (optional) receives `index` as the int64 tensor the selection used, for callers that
  // select other per-row tensors with it (one tensor built per step, not one per use).
  SequenceTensors select(const std::vector<int64_t>& index, at::Tensor* rows = nullptr) const;
};

struct TokenSequence {
  const std::vector<int64_t>* prompt;
  const std::vector<int64_t>* response;  // may be empty (prompt-only rows)
  // Per response token, 0 = context only (not in response_mask); null or empty = all 1.
  const std::vector<uint8_t>* response_weights = nullptr;
};

SequenceTensors pack_sequences(const std::vector<TokenSequence>& rows);

// Rows of `rows` (right-padded, [N, T]) packed several to a model row for a model with the
// PackedSequences capability: first-fit decreasing (longest first, ties by index) into rows of at
// most `capacity` tokens (a longer row gets a model row of its own). In `packed`, attention_mask
// holds segment ids 1, 2, ... (0 = padding) and response_mask is 0 at each segment's first token
// (which a row alone never scores either); lengths and row_lengths are those of the model rows.
struct PackedRows {
  SequenceTensors packed;  // [P, W]
  // [N, T] int64: where row n's token t is in packed's flattened [P * W]; padding points at 0
  // (column 0, which per-token log-probs leave at 0).
  at::Tensor gather_index;
  int64_t real_tokens = 0;  // tokens of the N rows
};
PackedRows pack_rows(const SequenceTensors& rows, int64_t capacity);

// [N, T] log p(token t | tokens < t) in fp32, 0 at t = 0, from logits [N, T', V] with T' >= T-1
// where logits[:, t] scores token t+1; multiplied by response_mask [N, T] when it is given. Uses
// logsumexp + gather over chunks of positions: no [N, T, V] log-softmax is kept, and no
// temporary larger than about 2^22 elements is made (except the gradient of the logits itself).
// Differentiable as a single autograd node (backward from the saved logits and logsumexp).
at::Tensor gather_token_logps(const at::Tensor& logits, const at::Tensor& input_ids,
                              const at::Tensor& response_mask = {});

// [N] sum over t of response_mask[t] * log p(token t | tokens < t): gather_token_logps summed,
// without the [N, T] result. One autograd node.
at::Tensor sequence_logps(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask);

// What the backward of the token log-probs needs (the saved logits and logsumexp).
struct TokenLogpsSaved {
  at::Tensor logits, input_ids, mask, lse;
  bool reduce = true;
};

// sequence_logps outside autograd (the direct step of a DirectBackward model with a loss that
// has its gradient in closed form): forward() gives sequence_logps's values, backward() from
// dL/dlogps the dL/dlogits that sequence_logps's autograd node gives, bit for bit (the same code).
class DirectSequenceLogps {
 public:
  at::Tensor forward(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask);
  at::Tensor backward(const at::Tensor& grad_logps);  // once per forward

 private:
  TokenLogpsSaved saved_;
};

// [N] -sum_v targets[n, v] * log softmax(scores[n])[v] (cross-entropy to a target distribution)
// for scores [N, V] and targets [N, V]; fp32, one autograd node.
at::Tensor soft_target_cross_entropy(const at::Tensor& scores, const at::Tensor& targets);

struct SequenceScores {
  at::Tensor token_logps;  // [N, T] masked by response_mask (0 elsewhere), when asked
  at::Tensor logps;        // [N] summed over response tokens
  at::Tensor scalar;       // [N] scalar head at the last real token, when asked
  at::Tensor logit_sums;   // [N] fp64, no gradient: sum over the response tokens of the mean over the
                           // vocabulary of the logits that score them, when asked (TRL's logits/*)
};

// Runs the model over the rows and scores the response tokens. Only the logits needed are
// computed: without the scalar head the last position is dropped (causal models do not need it).
// `direct` (optional): when it is set, the model has the DirectBackward capability and the scalar
// head is not wanted, the logits come from forward_direct, outside autograd, as a leaf that
// requires grad, and *direct is that leaf: after the loss's backward, finish_direct_backward hands
// its gradient to the model. Otherwise *direct is left undefined.
SequenceScores score_sequences(Model& model, const SequenceTensors& rows, bool want_logps,
                               bool want_scalar, bool want_token_logps = false, bool want_logit_sums = false,
                               at::Tensor* direct = nullptr);

// Every row of `rows` scored without gradient (summed log-probs and/or the scalar head, in the
// rows' order), the rows taken shortest first in chunks of at most `max_positions` padded positions
// (rows x the chunk's longest row; one row at least). A chunk pads little and its attention
// ([rows, heads, T, T]) stays small: 256 eval answers of ~350 tokens in one pass allocated ~0.3 GB
// a layer and spent most of the eval in page faults. A row's score does not depend on the rows
// beside it, to rounding.
SequenceScores score_in_chunks(Model& model, const SequenceTensors& rows, bool want_logps, bool want_scalar,
                               int64_t max_positions = 4096);

// The model input that scores `rows`: without the scalar head the last position is dropped
// (its logits score nothing; a causal model gives the same logits for the others without it).
ModelInput scoring_input(const SequenceTensors& rows, bool want_scalar);

// The model's logits for `input`: forward()'s, or, when `direct` is set and the model has the
// DirectBackward capability, forward_direct's as a leaf that requires grad (then also in *direct).
at::Tensor model_logits(Model& model, const ModelInput& input, at::Tensor* direct);

// After the backward of a loss on the logits of model_logits / score_sequences with `direct`: the
// leaf's gradient through the model's backward_direct (nothing when the leaf is undefined or got no
// gradient). Resets `leaf`.
void finish_direct_backward(Model& model, at::Tensor& leaf);

// A model whose responses are single tokens (SingleTokenResponses, the toy model) takes prompt
// ids from its own domain, not its output vocabulary: each distinct prompt id goes through the
// model once as a one-token row (no gradients), and an id it refuses is std::invalid_argument
// "file:line: field 'prompt_ids': token id N is not accepted by the model: ...", naming the first
// record with it. `validate` runs it so that `run` does not fail on such an id. Other models: nothing
// (check_token_range covers their ids).
void check_prompt_ids_accepted(Model& model, const std::vector<const std::vector<int64_t>*>& prompts,
                               const std::vector<const std::string*>& sources);
template <typename Record>
void check_prompt_ids(Model& model, const std::vector<Record>& records) {
  std::vector<const std::vector<int64_t>*> prompts;
  std::vector<const std::string*> sources;
  for (const auto& r : records) {
    prompts.push_back(&r.prompt);
    sources.push_back(&r.source);
  }
  check_prompt_ids_accepted(model, prompts, sources);
}

}  // namespace prefengine
