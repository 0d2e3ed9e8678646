// The BLAS that LibTorch itself loaded (OpenBLAS on Debian), called directly by the models' CPU
// fast paths: the toy MLP's matrix products and the transformer's one-token decode step. The
// symbols are looked up at run time (dlsym), not linked; a process without them gets null and
// its callers take the ATen operators instead.
//
// gemm() passes its arguments as ATen's cpublas::gemm hands them to BLAS (column-major, with its
// normalize_last_dims: a leading dimension of a single row or column is set to the other size),
// so a product taken here has the bits of the ATen operator that makes the same call
// (tests/direct_backward_test.cpp holds the toy's to at::addmm, addmm_ and mm).
#pragma once

#include <dlfcn.h>

namespace prefengine::cpu_blas {

using Sgemm = void (*)(const char* transa, const char* transb, const int* m, const int* n, const int* k,
                       const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
                       const float* beta, float* c, const int* ldc);
using Sgemv = void (*)(const char* trans, const int* m, const int* n, const float* alpha, const float* a,
                       const int* lda, const float* x, const int* incx, const float* beta, float* y,
                       const int* incy);

inline Sgemm sgemm() {
  static const Sgemm f = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  return f;
}

inline Sgemv sgemv() {
  static const Sgemv f = reinterpret_cast<Sgemv>(dlsym(RTLD_DEFAULT, "sgemv_"));
  return f;
}

// Column-major C[m, n] = op(A) op(B) + beta C (alpha 1). Needs sgemm() non-null.
inline void gemm(char ta, char tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
                 float* c, int ldc) {
  if (n == 1) ldc = m;
  if (ta != 'n') {
    if (m == 1) lda = k;
  } else if (k == 1) {
    lda = m;
  }
  if (tb != 'n') {
    if (k == 1) ldb = n;
  } else if (n == 1) {
    ldb = k;
  }
  const float alpha = 1.0f;
  sgemm()(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}

// Column-major y[m or n] = op(A) x + beta y (alpha 1, unit strides). Needs sgemv() non-null.
inline void gemv(char trans, int m, int n, const float* a, int lda, const float* x, float beta, float* y) {
  const float alpha = 1.0f;
  const int one = 1;
  sgemv()(&trans, &m, &n, &alpha, a, &lda, x, &one, &beta, y, &one);
}

}  // namespace prefengine::cpu_blas
