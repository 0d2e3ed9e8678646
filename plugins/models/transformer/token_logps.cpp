#include "token_logps.h"

#include <stdexcept>
#include <vector>

#include <ATen/ATen.h>

namespace prefengine::plugins::model {

at::Tensor token_logps(const at::Tensor& logits, const at::Tensor& labels, int64_t chunk) {
  if (logits.dim() != 3 || labels.dim() != 2 || logits.size(0) != labels.size(0) ||
      logits.size(1) != labels.size(1)) {
    throw std::invalid_argument("token_logps: expected logits [B, T, V] and labels [B, T]");
  }
  if (chunk < 1) throw std::invalid_argument("token_logps: chunk must be >= 1");
  const int64_t t = logits.size(1);
  const int64_t v = logits.size(2);
  const at::Tensor index = labels.to(logits.device(), at::kLong);
  const at::Tensor valid = index.ge(0) & index.lt(v);
  const at::Tensor safe = index.clamp(0, v - 1);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < t; start += chunk) {
    const int64_t len = std::min(chunk, t - start);
    at::Tensor part = logits.narrow(1, start, len);
    if (part.scalar_type() != at::kFloat) part = part.to(at::kFloat);
    const at::Tensor picked = part.gather(-1, safe.narrow(1, start, len).unsqueeze(-1)).squeeze(-1);
    parts.push_back(picked - part.logsumexp(-1));
  }
  at::Tensor out = parts.size() == 1 ? parts[0] : at::cat(parts, 1);
  return out.masked_fill(valid.logical_not(), 0.0);
}

}  // namespace prefengine::plugins::model
