// GELU for 16 lanes at a time, written once with clang/GCC vector extensions and compiled for two
// targets: with AVX-512 each 16-lane operation is one instruction, with AVX2 two. The arithmetic
// is the one documented at SAMTensor's `gelu` (GELUSoftmax.swift).
#include "sam_kernels.h"
#include "vector16.h"
#include "gelu16.h"

static inline __attribute__((always_inline)) void gelu_body(
    float *out, const float *x, size_t count, const int wide) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) store16(out + i, gelu16(load16(x + i), wide));
  if (i < count) {
    float lanes[16] = {0};
    memcpy(lanes, x + i, (count - i) * sizeof(float));
    store16(lanes, gelu16(load16(lanes), wide));
    memcpy(out + i, lanes, (count - i) * sizeof(float));
  }
}

AVX512_TARGET static void gelu_avx512(float *out, const float *x, size_t count) { gelu_body(out, x, count, 1); }
AVX2_TARGET static void gelu_avx2(float *out, const float *x, size_t count) { gelu_body(out, x, count, 0); }

void sam_gelu(float *out, const float *x, size_t count) {
  if (sam_kernels_lanes() == 16) {
    gelu_avx512(out, x, count);
  } else {
    gelu_avx2(out, x, count);
  }
}
