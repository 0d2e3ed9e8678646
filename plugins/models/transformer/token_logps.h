#pragma once
// Per-token log-probabilities without a [B, T, V] log_softmax tensor: the log-sum-exp and the
// gathered label logit are computed chunk by chunk over T, so autograd keeps only views of the
// logits and [B, chunk] results.
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace prefengine::plugins::model {

// logits [B, T, V] (any float dtype), labels [B, T] int64 -> [B, T] float32 log p(labels[b, t]).
// Labels outside [0, V) (e.g. -100 for "ignore") give 0. chunk: time steps per chunk (>= 1).
at::Tensor token_logps(const at::Tensor& logits, const at::Tensor& labels, int64_t chunk = 128);

}  // namespace prefengine::plugins::model
