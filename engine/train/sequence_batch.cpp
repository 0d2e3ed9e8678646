#include "engine/train/sequence_batch.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

#include "prefengine/model.h"

namespace prefengine {

SequenceTensors SequenceTensors::select(const std::vector<int64_t>& index) const {
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
      for (int64_t id : *rows[i].response) {
        ids[i][t] = id;
        mask[i][t] = 1;
        response[i][t++] = 1;
      }
      lengths[i] = static_cast<float>(rows[i].response->size());
    }
    out.row_lengths.push_back(t);
  }
  return out;
}

namespace {

// Elements of the [N, chunk, V] slice scored at once: logsumexp allocates temporaries as large as
// its input (and .to(kFloat) a whole fp32 copy of bf16 logits), so chunking over positions keeps
// the peak at this size instead of [N, T, V]. Each position is independent: the values are the
// same as in one pass.
constexpr int64_t kLogpChunkElements = int64_t{1} << 22;

// [N, T-1] fp32 log p(token t+1 | tokens <= t) from logits [N, T', V], T' >= T-1.
at::Tensor picked_logps(const at::Tensor& logits, const at::Tensor& input_ids) {
  const int64_t length = input_ids.size(1) - 1;
  const int64_t per_position = std::max<int64_t>(1, logits.size(0) * logits.size(2));
  const int64_t chunk = std::max<int64_t>(1, kLogpChunkElements / per_position);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < length; start += chunk) {
    const int64_t len = std::min(chunk, length - start);
    const at::Tensor scores = logits.narrow(1, start, len).to(at::kFloat);
    const at::Tensor targets = input_ids.narrow(1, start + 1, len).unsqueeze(-1);
    parts.push_back(scores.gather(-1, targets).squeeze(-1) - scores.logsumexp(-1));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

}  // namespace

at::Tensor gather_token_logps(const at::Tensor& logits, const at::Tensor& input_ids) {
  const int64_t length = input_ids.size(1);
  if (length < 2) return at::zeros(input_ids.sizes(), logits.options().dtype(at::kFloat));
  at::Tensor picked = picked_logps(logits, input_ids);
  return at::cat({at::zeros({input_ids.size(0), 1}, picked.options()), picked}, 1);
}

SequenceScores score_sequences(Model& model, const SequenceTensors& rows, bool want_logps,
                               bool want_scalar, bool want_token_logps) {
  SequenceScores out;
  ModelInput input;
  input.want_logits = want_logps;
  input.want_scalar = want_scalar;
  const int64_t length = rows.input_ids.size(1);
  if (!want_scalar && length > 1) {
    // logits at the last position score nothing; a causal model gives the same logits for the
    // other positions without it.
    input.input_ids = rows.input_ids.slice(1, 0, length - 1);
    input.attention_mask = rows.attention_mask.slice(1, 0, length - 1);
  } else {
    input.input_ids = rows.input_ids;
    input.attention_mask = rows.attention_mask;
  }
  ModelOutput output = model.forward(input);
  if (want_logps) {
    if (!output.logits.defined()) throw std::runtime_error("the model returned no logits");
    if (want_token_logps) {
      out.token_logps = gather_token_logps(output.logits, rows.input_ids) * rows.response_mask;
      out.logps = out.token_logps.sum(1);
    } else {
      // The same sum without the [N, T] tensor: position t of the logits scores token t+1.
      const int64_t length = rows.input_ids.size(1);
      if (length < 2) {
        out.logps = at::zeros({rows.rows()}, output.logits.options().dtype(at::kFloat));
      } else {
        out.logps = (picked_logps(output.logits, rows.input_ids) * rows.response_mask.slice(1, 1)).sum(1);
      }
    }
  }
  if (want_scalar) {
    if (!output.scalar.defined()) throw std::runtime_error("the model returned no scalar head output");
    at::Tensor last = (rows.attention_mask.sum(1) - 1).clamp_min(0).unsqueeze(1);
    out.scalar = output.scalar.gather(1, last).squeeze(1);
  }
  return out;
}

}  // namespace prefengine
