// The transformer's one-token decode step on the CPU (float, no autograd, no LoRA): every layer of
// a step where each row of the batch adds one token to its KV cache, written as loops over raw
// buffers and direct BLAS calls (plugins/models/common/cpu_blas.h) instead of ATen operators.
//
// Why: at batch 1 a decode step of a small model entered ~1,040 ATen operators (bench/README.md,
// "The fused decode step"), each with its dispatch, shape checks and allocation, around matrix
// products of a few microseconds; the operators cost more than the arithmetic. Here a step makes the matrix-vector and matrix products (the same
// BLAS calls ATen's linear makes for these layouts, so the projections have the same bits) and
// does the rest (RMSNorm, rotary, attention's softmax, SwiGLU, residuals) in loops. Those loops
// sum in another order than ATen's vectorised kernels, so the logits agree with the general path
// to rounding (tests/generation_cache_test.cpp: within 1e-5, the same greedy ids), not bit for
// bit; the model option `fused_decode: false` keeps the operator path.
#pragma once

#include <cstdint>
#include <vector>

namespace prefengine::plugins::model::decode {

// One decoder layer's weights (row-major [out, in] projections, HF layout); biases may be null.
struct Layer {
  const float* input_norm;
  const float* post_norm;
  const float *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo;
  const float *gate, *up, *down;
  float* keys;    // the cache [B, kv_heads, capacity, head_dim]
  float* values;  // likewise
  int64_t window; // sliding-window size for this layer; 0 = none
};

struct Shape {
  int64_t batch, hidden, intermediate, heads, kv_heads, head_dim, vocab;
  float eps;  // RMSNorm's epsilon
};

// What the step shares across layers.
struct Step {
  const int64_t* ids;        // [B] the new tokens
  const int64_t* positions;  // [B] their rotary positions
  const float* cos;          // the rotary tables [P, head_dim]
  const float* sin;
  int64_t past;              // tokens cached before this step; the new one goes to index past
  int64_t capacity;          // the cache's capacity (its third size)
  const int64_t* mask;       // the cached mask [B, capacity] including the new token, or null when
                             // no key is masked (every key real and no window reached)
};

// True when the BLAS symbols the step calls were found in the process.
bool available();

// Runs the step: writes each row's new key and value into its layer caches at index `past` and the
// logits [B, vocab] to `logits` (final norm, then `head` [vocab, hidden]).
void run(const Shape& shape, const std::vector<Layer>& layers, const float* embed, const float* final_norm,
         const float* head, const Step& step, float* logits);

// x rotated by the rotary angles (c, s: one row of the tables) in HF's half-split layout, into o
// (d values): x * cos + rotate_half(x) * sin with rotate_half(x) = (-x2, x1), each product rounded
// to float and then summed, as ATen's apply_rotary does element for element.
inline void rotate(const float* x, const float* c, const float* s, int64_t d, float* o) {
  const int64_t half = d / 2;
  for (int64_t j = 0; j < half; ++j) {
    const float direct = x[j] * c[j];
    const float rotated = -x[j + half] * s[j];
    o[j] = direct + rotated;
  }
  for (int64_t j = half; j < d; ++j) {
    const float direct = x[j] * c[j];
    const float rotated = x[j - half] * s[j];
    o[j] = direct + rotated;
  }
}

}  // namespace prefengine::plugins::model::decode
