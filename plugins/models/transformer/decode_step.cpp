#include "decode_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "cpu_blas.h"

namespace prefengine::plugins::model::decode {

namespace {

// y[rows, out] = x[rows, in] W^T (+ bias), W [out, in] row-major: the BLAS call ATen's linear
// makes (mm, or addmm with the bias copied in first), except that a single row with 1024 or more
// outputs takes sgemv, as Projection::forward_cached does (OpenBLAS's sgemm is slow there).
void project(const float* x, int64_t rows, int64_t in, const float* w, const float* bias, int64_t out, float* y) {
  if (bias) {
    for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * out, bias, static_cast<size_t>(out) * sizeof(float));
  }
  const float beta = bias ? 1.0f : 0.0f;
  if (rows == 1 && out >= 1024) {
    cpu_blas::gemv('t', static_cast<int>(in), static_cast<int>(out), w, static_cast<int>(in), x, beta, y);
    return;
  }
  cpu_blas::gemm('t', 'n', static_cast<int>(out), static_cast<int>(rows), static_cast<int>(in), w,
                 static_cast<int>(in), x, static_cast<int>(in), beta, y, static_cast<int>(out));
}

// HF's LlamaRMSNorm in float: x * rsqrt(mean(x^2) + eps), rounded, times the gain.
void rms_norm(const float* x, int64_t rows, int64_t n, const float* gain, float eps, float* y) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    double squares = 0;
    for (int64_t i = 0; i < n; ++i) squares += double(xr[i]) * double(xr[i]);
    const float inverse = 1.0f / std::sqrt(static_cast<float>(squares / double(n)) + eps);
    for (int64_t i = 0; i < n; ++i) {
      const float normed = xr[i] * inverse;
      yr[i] = normed * gain[i];
    }
  }
}

// Scratch buffers reused from step to step (one set per thread).
struct Scratch {
  std::vector<float> x, normed, q, rotated, k, v, attended, sublayer, gate, up, scores;
  void size(const Shape& s, int64_t keys) {
    const int64_t b = s.batch;
    x.resize(b * s.hidden);
    normed.resize(b * s.hidden);
    q.resize(b * s.heads * s.head_dim);
    rotated.resize(b * s.heads * s.head_dim);
    k.resize(b * s.kv_heads * s.head_dim);
    v.resize(b * s.kv_heads * s.head_dim);
    attended.resize(b * s.heads * s.head_dim);
    sublayer.resize(b * s.hidden);
    gate.resize(b * s.intermediate);
    up.resize(b * s.intermediate);
    scores.resize(keys);
  }
};

// a . b over n floats, in eight interleaved partial sums (which the compiler vectorises).
float dot(const float* a, const float* b, int64_t n) {
  float partial[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) partial[l] += a[i + l] * b[i + l];
  }
  float sum = ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// Attention of row r's query heads over its s cached keys: softmax(q k^T / sqrt(d) + mask) v, the
// mask added as float's lowest where a key is padding or out of the window (as the operator path's
// additive mask: a fully masked row averages every key, as there). Plain loops, not BLAS: OpenBLAS
// runs a matrix-vector product of 9216 or more elements (144 keys of 64) on every thread, and
// waking them for each head of each row costs more than the product.
void attend(const Shape& sh, const Layer& layer, const Step& step, int64_t r, const float* q, float* out,
            float* scores) {
  const int64_t d = sh.head_dim, s = step.past + 1, rep = sh.heads / sh.kv_heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(double(d)));
  const float lowest = std::numeric_limits<float>::lowest();
  const int64_t query = step.past;
  for (int64_t h = 0; h < sh.heads; ++h) {
    const int64_t g = h / rep;
    const float* keys = layer.keys + (r * sh.kv_heads + g) * step.capacity * d;
    const float* values = layer.values + (r * sh.kv_heads + g) * step.capacity * d;
    float top = lowest;
    for (int64_t j = 0; j < s; ++j) {
      float score = dot(keys + j * d, q + h * d, d) * scale;
      const bool keep = (step.mask == nullptr || step.mask[r * step.capacity + j] != 0) &&
                        (layer.window <= 0 || query - j < layer.window);
      if (!keep) score += lowest;
      scores[j] = score;
      top = std::max(top, score);
    }
    float total = 0;
    for (int64_t j = 0; j < s; ++j) {
      scores[j] = std::exp(scores[j] - top);
      total += scores[j];
    }
    const float inverse = 1.0f / total;
    float* o = out + h * d;
    std::fill(o, o + d, 0.0f);
    for (int64_t j = 0; j < s; ++j) {
      const float p = scores[j] * inverse;
      const float* v = values + j * d;
      for (int64_t i = 0; i < d; ++i) o[i] += p * v[i];
    }
  }
}

}  // namespace

bool available() { return cpu_blas::sgemm() != nullptr && cpu_blas::sgemv() != nullptr; }

void run(const Shape& sh, const std::vector<Layer>& layers, const float* embed, const float* final_norm,
         const float* head, const Step& step, float* logits) {
  thread_local Scratch buf;
  const int64_t b = sh.batch, hidden = sh.hidden, d = sh.head_dim;
  buf.size(sh, step.past + 1);
  float* x = buf.x.data();
  for (int64_t r = 0; r < b; ++r) {
    std::memcpy(x + r * hidden, embed + step.ids[r] * hidden, static_cast<size_t>(hidden) * sizeof(float));
  }
  for (const Layer& layer : layers) {
    // Attention: project, rotate q and k (k and v into the cache), attend, project back.
    rms_norm(x, b, hidden, layer.input_norm, sh.eps, buf.normed.data());
    project(buf.normed.data(), b, hidden, layer.wq, layer.bq, sh.heads * d, buf.q.data());
    project(buf.normed.data(), b, hidden, layer.wk, layer.bk, sh.kv_heads * d, buf.k.data());
    project(buf.normed.data(), b, hidden, layer.wv, layer.bv, sh.kv_heads * d, buf.v.data());
    for (int64_t r = 0; r < b; ++r) {
      const float* c = step.cos + step.positions[r] * d;
      const float* s = step.sin + step.positions[r] * d;
      float* q = buf.rotated.data() + r * sh.heads * d;
      for (int64_t h = 0; h < sh.heads; ++h) rotate(buf.q.data() + (r * sh.heads + h) * d, c, s, d, q + h * d);
      for (int64_t g = 0; g < sh.kv_heads; ++g) {
        const int64_t slot = ((r * sh.kv_heads + g) * step.capacity + step.past) * d;
        rotate(buf.k.data() + (r * sh.kv_heads + g) * d, c, s, d, layer.keys + slot);
        std::memcpy(layer.values + slot, buf.v.data() + (r * sh.kv_heads + g) * d,
                    static_cast<size_t>(d) * sizeof(float));
      }
      attend(sh, layer, step, r, q, buf.attended.data() + r * sh.heads * d, buf.scores.data());
    }
    project(buf.attended.data(), b, sh.heads * d, layer.wo, layer.bo, hidden, buf.sublayer.data());
    for (int64_t i = 0; i < b * hidden; ++i) x[i] = buf.sublayer[i] + x[i];

    // SwiGLU: down(silu(gate(x)) * up(x)).
    rms_norm(x, b, hidden, layer.post_norm, sh.eps, buf.normed.data());
    project(buf.normed.data(), b, hidden, layer.gate, nullptr, sh.intermediate, buf.gate.data());
    project(buf.normed.data(), b, hidden, layer.up, nullptr, sh.intermediate, buf.up.data());
    for (int64_t i = 0; i < b * sh.intermediate; ++i) {
      const float g = buf.gate[i];
      buf.gate[i] = (g / (1.0f + std::exp(-g))) * buf.up[i];
    }
    project(buf.gate.data(), b, sh.intermediate, layer.down, nullptr, hidden, buf.sublayer.data());
    for (int64_t i = 0; i < b * hidden; ++i) x[i] = buf.sublayer[i] + x[i];
  }
  rms_norm(x, b, hidden, final_norm, sh.eps, buf.normed.data());
  project(buf.normed.data(), b, hidden, head, nullptr, sh.vocab, logits);
}

}  // namespace prefengine::plugins::model::decode
