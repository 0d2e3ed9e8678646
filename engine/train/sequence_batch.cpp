#include "engine/train/sequence_batch.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <vector>

#include <torch/csrc/autograd/custom_function.h>

#include "engine/metrics/error_line.h"
#include "prefengine/model.h"

namespace prefengine {

SequenceTensors SequenceTensors::select(const std::vector<int64_t>& index, at::Tensor* rows_out) const {
  int64_t used = 1;
  std::vector<int64_t> lengths;
  lengths.reserve(index.size());
  for (int64_t i : index) {
    lengths.push_back(row_lengths[i]);
    used = std::max(used, row_lengths[i]);
  }
  const at::Tensor rows = at::tensor(index, at::kLong);
  SequenceTensors out;
  const int64_t width = std::min(used, input_ids.size(1));
  out.input_ids = input_ids.index_select(0, rows);
  out.attention_mask = attention_mask.index_select(0, rows);
  out.response_mask = response_mask.index_select(0, rows);
  if (width < input_ids.size(1)) {
    out.input_ids = out.input_ids.slice(1, 0, width);
    out.attention_mask = out.attention_mask.slice(1, 0, width);
    out.response_mask = out.response_mask.slice(1, 0, width);
  }
  out.lengths = this->lengths.index_select(0, rows);
  out.row_lengths = std::move(lengths);
  if (rows_out != nullptr) *rows_out = rows;
  return out;
}

SequenceTensors pack_sequences(const std::vector<TokenSequence>& rows) {
  const int64_t n = static_cast<int64_t>(rows.size());
  int64_t width = 1;
  for (const auto& r : rows) {
    width = std::max<int64_t>(width, static_cast<int64_t>(r.prompt->size() + (r.response ? r.response->size() : 0)));
  }
  SequenceTensors out;
  out.input_ids = at::zeros({n, width}, at::kLong);
  out.attention_mask = at::zeros({n, width}, at::kLong);
  out.response_mask = at::zeros({n, width}, at::kFloat);
  out.lengths = at::zeros({n}, at::kFloat);
  auto ids = out.input_ids.accessor<int64_t, 2>();
  auto mask = out.attention_mask.accessor<int64_t, 2>();
  auto response = out.response_mask.accessor<float, 2>();
  auto lengths = out.lengths.accessor<float, 1>();
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = 0;
    for (int64_t id : *rows[i].prompt) {
      ids[i][t] = id;
      mask[i][t++] = 1;
    }
    if (rows[i].response) {
      const std::vector<uint8_t>* weights = rows[i].response_weights;
      const bool weighted = weights != nullptr && !weights->empty();
      float counted = 0;
      for (size_t k = 0; k < rows[i].response->size(); ++k) {
        ids[i][t] = (*rows[i].response)[k];
        mask[i][t] = 1;
        const float w = weighted && k < weights->size() && (*weights)[k] == 0 ? 0.0f : 1.0f;
        response[i][t++] = w;
        counted += w;
      }
      lengths[i] = counted;
    }
    out.row_lengths.push_back(t);
  }
  return out;
}

PackedRows pack_rows(const SequenceTensors& rows, int64_t capacity) {
  const int64_t n = rows.rows();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return rows.row_lengths[static_cast<size_t>(a)] > rows.row_lengths[static_cast<size_t>(b)];
  });
  std::vector<int64_t> fill;                  // tokens in each model row
  std::vector<int64_t> bin(static_cast<size_t>(n)), start(static_cast<size_t>(n));
  for (int64_t i : order) {
    const int64_t length = rows.row_lengths[static_cast<size_t>(i)];
    size_t b = 0;
    while (b < fill.size() && fill[b] + length > capacity) ++b;
    if (b == fill.size()) fill.push_back(0);
    bin[static_cast<size_t>(i)] = static_cast<int64_t>(b);
    start[static_cast<size_t>(i)] = fill[b];
    fill[b] += length;
  }
  const int64_t p = static_cast<int64_t>(fill.size());
  const int64_t width = std::max<int64_t>(1, fill.empty() ? 1 : *std::max_element(fill.begin(), fill.end()));
  const int64_t t = rows.input_ids.size(1);
  PackedRows out;
  out.packed.input_ids = at::zeros({p, width}, at::kLong);
  out.packed.attention_mask = at::zeros({p, width}, at::kLong);
  out.packed.response_mask = at::zeros({p, width}, at::kFloat);
  out.packed.lengths = at::zeros({p}, at::kFloat);
  out.gather_index = at::zeros({n, t}, at::kLong);
  const at::Tensor in_ids = rows.input_ids.to(at::kCPU).contiguous();
  const at::Tensor in_response = rows.response_mask.to(at::kCPU, at::kFloat).contiguous();
  const at::Tensor in_lengths = rows.lengths.to(at::kCPU, at::kFloat).contiguous();
  auto src_ids = in_ids.accessor<int64_t, 2>();
  auto src_response = in_response.accessor<float, 2>();
  auto src_lengths = in_lengths.accessor<float, 1>();
  auto ids = out.packed.input_ids.accessor<int64_t, 2>();
  auto segment = out.packed.attention_mask.accessor<int64_t, 2>();
  auto response = out.packed.response_mask.accessor<float, 2>();
  auto lengths = out.packed.lengths.accessor<float, 1>();
  auto index = out.gather_index.accessor<int64_t, 2>();
  std::vector<int64_t> segments(static_cast<size_t>(p), 0);
  for (int64_t i = 0; i < n; ++i) {  // in row order: segment ids follow the rows' order in a bin
    const int64_t b = bin[static_cast<size_t>(i)];
    const int64_t s = start[static_cast<size_t>(i)];
    const int64_t id = ++segments[static_cast<size_t>(b)];
    for (int64_t k = 0; k < rows.row_lengths[static_cast<size_t>(i)]; ++k) {
      ids[b][s + k] = src_ids[i][k];
      segment[b][s + k] = id;
      response[b][s + k] = k == 0 ? 0.0f : src_response[i][k];
      index[i][k] = b * width + s + k;
    }
    lengths[b] += src_lengths[i];
    out.real_tokens += rows.row_lengths[static_cast<size_t>(i)];
  }
  out.packed.row_lengths = fill;
  return out;
}

namespace {

// Elements of the [N, chunk, V] slice scored at once: log_softmax allocates a temporary as large as
// its input (and .to(kFloat) a whole fp32 copy of bf16 logits), so chunking over positions keeps
// the peak at this size instead of [N, T, V]. Each position is independent: the values are the
// same as in one pass.
constexpr int64_t kLogpChunkElements = int64_t{1} << 22;

int64_t positions_per_chunk(const at::Tensor& logits) {
  const int64_t per_position = std::max<int64_t>(1, logits.size(0) * logits.size(2));
  return std::max<int64_t>(1, kLogpChunkElements / per_position);
}

// log p(token t+1 | tokens <= t) * mask[t+1], summed over t (reduce) or per position. Forward:
// log_softmax + gather per chunk of positions. Backward, from the saved logits and logsumexp:
// dL/dlogits[n, t] = g[n, t] * mask[n, t+1] * (onehot(token t+1) - softmax), written chunk by
// chunk into the gradient. The autograd node (TokenLogps) and the direct path
// (DirectSequenceLogps) both run these two functions: the same kernels, the same values.
at::Tensor token_logps_forward(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask,
                               bool reduce, TokenLogpsSaved& saved) {
  const int64_t length = input_ids.size(1) - 1;
  saved.reduce = reduce;
  saved.logits = logits;
  saved.input_ids = input_ids;
  if (length == 1 && logits.scalar_type() == at::kFloat) {
    // One scored position (single-token responses: the toy model): the same kernels on the same
    // values as the chunked loop below, without its buffers, narrows and copies.
    const at::Tensor scores = logits.select(1, 0);                       // [N, V]
    const at::Tensor targets = input_ids.narrow(1, 1, 1);                // [N, 1]
    at::Tensor token = at::log_softmax(scores, -1).gather(-1, targets);  // [N, 1]
    saved.lse = scores.gather(-1, targets).sub_(token);
    saved.mask = response_mask.narrow(1, 1, 1);
    token.mul_(saved.mask);
    if (reduce) return token.sum(1);
    return at::cat({at::zeros({token.size(0), 1}, token.options()), token}, 1);
  }
  const int64_t chunk = positions_per_chunk(logits);
  at::Tensor token = at::empty({input_ids.size(0), length}, logits.options().dtype(at::kFloat));
  at::Tensor lse = at::empty_like(token);
  for (int64_t start = 0; start < length; start += chunk) {
    const int64_t len = std::min(chunk, length - start);
    const at::Tensor scores = logits.narrow(1, start, len).to(at::kFloat);
    const at::Tensor targets = input_ids.narrow(1, start + 1, len).unsqueeze(-1);
    // log_softmax is one kernel (logsumexp is several): the token's log-prob, and the
    // logsumexp the backward needs as logit - log-prob of the same token.
    const at::Tensor picked = at::log_softmax(scores, -1).gather(-1, targets).squeeze(-1);
    token.narrow(1, start, len).copy_(picked);
    at::Tensor part_lse = lse.narrow(1, start, len);
    at::sub_out(part_lse, scores.gather(-1, targets).squeeze(-1), picked);
  }
  saved.mask = response_mask.slice(1, 1);
  saved.lse = lse;
  token.mul_(saved.mask);
  if (reduce) return token.sum(1);
  return at::cat({at::zeros({token.size(0), 1}, token.options()), token}, 1);
}

at::Tensor token_logps_backward(const TokenLogpsSaved& saved, const at::Tensor& g) {
  const at::Tensor& logits = saved.logits;
  const at::Tensor& input_ids = saved.input_ids;
  const at::Tensor& mask = saved.mask;
  const at::Tensor& lse = saved.lse;
  // g per scored position, [N, T-1]
  const at::Tensor g_token = (saved.reduce ? g.unsqueeze(1) : g.slice(1, 1)) * mask;
  const at::Tensor minus_g_token = -g_token;  // [N, T-1]: folds the sign into the one multiply
  const int64_t length = input_ids.size(1) - 1;
  if (length == 1 && logits.size(1) == 1 && logits.scalar_type() == at::kFloat) {
    // one scored position: the loop below without its narrows (the same kernels, same values)
    at::Tensor grad = at::empty_like(logits);
    at::Tensor part = grad.select(1, 0);
    at::sub_out(part, logits.select(1, 0), lse);
    part.exp_().mul_(minus_g_token);
    part.scatter_add_(-1, input_ids.narrow(1, 1, 1), g_token);
    return grad;
  }
  const int64_t chunk = positions_per_chunk(logits);
  at::Tensor grad = length == logits.size(1) ? at::empty_like(logits) : at::zeros_like(logits);
  for (int64_t start = 0; start < length; start += chunk) {
    const int64_t len = std::min(chunk, length - start);
    const at::Tensor g_part = g_token.narrow(1, start, len).unsqueeze(-1);
    const at::Tensor targets = input_ids.narrow(1, start + 1, len).unsqueeze(-1);
    at::Tensor out = grad.narrow(1, start, len);
    const bool direct = logits.scalar_type() == at::kFloat;
    // -softmax * g, then + g at the target token
    at::Tensor part = direct ? out : at::empty(out.sizes(), out.options().dtype(at::kFloat));
    at::sub_out(part, logits.narrow(1, start, len).to(at::kFloat), lse.narrow(1, start, len).unsqueeze(-1));
    part.exp_().mul_(minus_g_token.narrow(1, start, len).unsqueeze(-1));
    part.scatter_add_(-1, targets, g_part);
    if (!direct) out.copy_(part);
  }
  return grad;
}

// The token log-probs as ONE autograd node: against the same math in autograd ops (narrow, gather,
// logsumexp, sub, mul, sum and their backward nodes) this is one node and no saved fp32 copy.
struct TokenLogps : public torch::autograd::Function<TokenLogps> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                            const at::Tensor& input_ids, const at::Tensor& response_mask, bool reduce) {
    TokenLogpsSaved saved;
    at::Tensor out = token_logps_forward(logits, input_ids, response_mask, reduce, saved);
    ctx->saved_data["reduce"] = reduce;
    ctx->save_for_backward({saved.logits, saved.input_ids, saved.mask, saved.lse});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto tensors = ctx->get_saved_variables();
    TokenLogpsSaved saved;
    saved.logits = tensors[0];
    saved.input_ids = tensors[1];
    saved.mask = tensors[2];
    saved.lse = tensors[3];
    saved.reduce = ctx->saved_data["reduce"].toBool();
    return {token_logps_backward(saved, grad_outputs[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// -sum_v targets[n, v] log softmax(scores[n])[v] per row, as one autograd node:
// dL/dscores[n] = g[n] * (softmax(scores[n]) * sum_v targets[n, v] - targets[n]).
struct SoftTargetCrossEntropy : public torch::autograd::Function<SoftTargetCrossEntropy> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& scores,
                            const at::Tensor& targets) {
    const at::Tensor log_probs = at::log_softmax(scores.to(at::kFloat), -1);
    ctx->save_for_backward({log_probs, targets});
    return (targets * log_probs).sum(1).neg_();
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& targets = saved[1];
    const at::Tensor g = grad_outputs[0].unsqueeze(1);
    at::Tensor grad = saved[0].exp().mul_(targets.sum(1, /*keepdim=*/true)).sub_(targets).mul_(g);
    return {grad, at::Tensor()};
  }
};

at::Tensor float_mask(const at::Tensor& input_ids, const at::Tensor& response_mask) {
  const at::Tensor mask = response_mask.defined() ? response_mask : at::ones(input_ids.sizes(), at::kFloat);
  return mask.scalar_type() == at::kFloat ? mask : mask.to(at::kFloat);
}

at::Tensor token_logps(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask,
                       bool reduce) {
  return TokenLogps::apply(logits, input_ids, float_mask(input_ids, response_mask), reduce);
}

}  // namespace

at::Tensor DirectSequenceLogps::forward(const at::Tensor& logits, const at::Tensor& input_ids,
                                        const at::Tensor& response_mask) {
  if (input_ids.size(1) < 2) throw std::invalid_argument("DirectSequenceLogps: rows without a scored token");
  return token_logps_forward(logits, input_ids, float_mask(input_ids, response_mask), /*reduce=*/true, saved_);
}

at::Tensor DirectSequenceLogps::backward(const at::Tensor& grad_logps) {
  if (!saved_.logits.defined()) throw std::logic_error("DirectSequenceLogps: backward without a forward before it");
  at::Tensor grad = token_logps_backward(saved_, grad_logps);
  saved_ = TokenLogpsSaved();
  return grad;
}

at::Tensor gather_token_logps(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask) {
  const int64_t length = input_ids.size(1);
  if (length < 2) return at::zeros(input_ids.sizes(), logits.options().dtype(at::kFloat));
  return token_logps(logits, input_ids, response_mask, /*reduce=*/false);
}

at::Tensor soft_target_cross_entropy(const at::Tensor& scores, const at::Tensor& targets) {
  return SoftTargetCrossEntropy::apply(scores, targets);
}

at::Tensor sequence_logps(const at::Tensor& logits, const at::Tensor& input_ids, const at::Tensor& response_mask) {
  if (input_ids.size(1) < 2) return at::zeros({input_ids.size(0)}, logits.options().dtype(at::kFloat));
  return token_logps(logits, input_ids, response_mask, /*reduce=*/true);
}

ModelInput scoring_input(const SequenceTensors& rows, bool want_scalar) {
  ModelInput input;
  input.want_scalar = want_scalar;
  const int64_t length = rows.input_ids.size(1);
  if (!want_scalar && length > 1) {
    input.input_ids = rows.input_ids.slice(1, 0, length - 1);
    input.attention_mask = rows.attention_mask.slice(1, 0, length - 1);
  } else {
    input.input_ids = rows.input_ids;
    input.attention_mask = rows.attention_mask;
  }
  return input;
}

at::Tensor model_logits(Model& model, const ModelInput& input, at::Tensor* direct) {
  if (direct != nullptr) {
    *direct = at::Tensor();
    if (auto* fast = dynamic_cast<DirectBackward*>(&model); fast != nullptr && !input.want_scalar && input.cache == nullptr) {
      *direct = fast->forward_direct(input).requires_grad_(true);
      return *direct;
    }
  }
  return model.forward(input).logits;
}

void finish_direct_backward(Model& model, at::Tensor& leaf) {
  if (!leaf.defined()) return;
  const at::Tensor grad = leaf.grad();
  leaf = at::Tensor();
  if (!grad.defined()) return;
  at::NoGradGuard no_grad;
  dynamic_cast<DirectBackward&>(model).backward_direct(grad);
}

SequenceScores score_sequences(Model& model, const SequenceTensors& rows, bool want_logps,
                               bool want_scalar, bool want_token_logps, bool want_logit_sums, at::Tensor* direct) {
  SequenceScores out;
  ModelInput input = scoring_input(rows, want_scalar);
  input.want_logits = want_logps;
  const int64_t length = rows.input_ids.size(1);
  ModelOutput output;
  if (direct != nullptr && want_logps && !want_scalar) {
    output.logits = model_logits(model, input, direct);
  } else {
    if (direct != nullptr) *direct = at::Tensor();
    output = model.forward(input);
  }
  if (want_logps) {
    if (!output.logits.defined()) throw std::runtime_error("the model returned no logits");
    if (want_token_logps) {
      out.token_logps = gather_token_logps(output.logits, rows.input_ids, rows.response_mask);
      out.logps = out.token_logps.sum(1);
    } else {
      // The same sum without the [N, T] tensor: position t of the logits scores token t+1.
      out.logps = sequence_logps(output.logits, rows.input_ids, rows.response_mask);
    }
    if (want_logit_sums) {
      // logits[:, p] scores token p+1: weighted by response_mask[:, p+1].
      at::NoGradGuard no_grad;
      const int64_t positions = std::min(output.logits.size(1), length - 1);
      const at::Tensor means = output.logits.detach().narrow(1, 0, positions).to(at::kDouble).mean(-1);
      out.logit_sums = (means * rows.response_mask.narrow(1, 1, positions).to(at::kDouble)).sum(1);
    }
  }
  if (want_scalar) {
    if (!output.scalar.defined()) throw std::runtime_error("the model returned no scalar head output");
    at::Tensor last = (rows.attention_mask.sum(1) - 1).clamp_min(0).unsqueeze(1);
    out.scalar = output.scalar.gather(1, last).squeeze(1);
  }
  return out;
}

void check_prompt_ids_accepted(Model& model, const std::vector<const std::vector<int64_t>*>& prompts,
                               const std::vector<const std::string*>& sources) {
  if (dynamic_cast<const SingleTokenResponses*>(&model) == nullptr) return;
  std::map<int64_t, size_t> first_record;  // distinct id -> the first record with it
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (int64_t id : *prompts[i]) first_record.emplace(id, i);
  }
  at::NoGradGuard no_grad;
  for (const auto& [id, record] : first_record) {
    ModelInput input;
    input.input_ids = at::full({1, 1}, id, at::kLong);
    if (!model.parameters().empty()) input.input_ids = input.input_ids.to(model.parameters().front().device());
    try {
      (void)model.forward(input);
    } catch (const std::exception& e) {
      throw std::invalid_argument(*sources[record] + ": field 'prompt_ids': token id " + std::to_string(id) +
                                  " is not accepted by the model: " + error_line(e));
    }
  }
}

SequenceScores score_in_chunks(Model& model, const SequenceTensors& packed, bool logps, bool scalar,
                               int64_t max_positions) {
  at::NoGradGuard no_grad;
  const int64_t n = packed.rows();
  SequenceScores out;
  if (n == 0) {
    if (logps) out.logps = at::zeros({0}, at::kFloat);
    if (scalar) out.scalar = at::zeros({0}, at::kFloat);
    return out;
  }
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return packed.row_lengths[static_cast<size_t>(a)] < packed.row_lengths[static_cast<size_t>(b)];
  });
  std::vector<at::Tensor> lp, sc;
  for (size_t start = 0; start < order.size();) {
    std::vector<int64_t> index;
    int64_t longest = 1;
    for (size_t i = start; i < order.size(); ++i) {
      const int64_t width = std::max(longest, packed.row_lengths[static_cast<size_t>(order[i])]);
      if (!index.empty() && width * static_cast<int64_t>(index.size() + 1) > max_positions) break;
      longest = width;
      index.push_back(order[i]);
    }
    start += index.size();
    SequenceScores s = score_sequences(model, packed.select(index), logps, scalar);
    if (logps) lp.push_back(s.logps);
    if (scalar) sc.push_back(s.scalar);
  }
  // Back to the input's order: position order[k] holds the k-th scored row.
  const at::Tensor inverse = at::argsort(at::tensor(order, at::kLong));
  if (logps) out.logps = at::cat(lp).index_select(0, inverse);
  if (scalar) out.scalar = at::cat(sc).index_select(0, inverse);
  return out;
}

}  // namespace prefengine
