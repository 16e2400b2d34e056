// The inner part of a 3x3 depthwise convolution in channels-last layout: the output pixels whose
// three input columns all lie inside the image, 16 channels at a time (8 for a remainder) with the
// nine tap vectors and the bias held in registers. The 16- and 8-lane loops do the same operations
// in the same order (those of the Swift kernel this replaced), so every version gives the same bits.
#include "sam_kernels.h"
#include "vector16.h"

static inline __attribute__((always_inline)) void depthwise_body(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding) {
  const size_t c = channels;
  size_t c0 = 0;
  for (; c0 + 16 <= c; c0 += 16) {
    const float *t = taps + c0;
    vfloat w0 = load16(t), w1 = load16(t + c), w2 = load16(t + 2 * c);
    vfloat w3 = load16(t + 3 * c), w4 = load16(t + 4 * c), w5 = load16(t + 5 * c);
    vfloat w6 = load16(t + 6 * c), w7 = load16(t + 7 * c), w8 = load16(t + 8 * c);
    vfloat b = load16(bias + c0);
    for (size_t ox = first; ox < last; ox++) {
      size_t x = (ox * stride - padding) * c + c0;
      // One accumulator per kernel row: three short FMA chains instead of one of nine.
      vfloat a0 = fma16(w0, load16(top + x), b);
      a0 = fma16(w1, load16(top + x + c), a0);
      a0 = fma16(w2, load16(top + x + 2 * c), a0);
      vfloat a1 = w3 * load16(middle + x);
      a1 = fma16(w4, load16(middle + x + c), a1);
      a1 = fma16(w5, load16(middle + x + 2 * c), a1);
      vfloat a2 = w6 * load16(bottom + x);
      a2 = fma16(w7, load16(bottom + x + c), a2);
      a2 = fma16(w8, load16(bottom + x + 2 * c), a2);
      store16(out + ox * c + c0, a0 + a1 + a2);
    }
  }
  for (; c0 + 8 <= c; c0 += 8) {
    const float *t = taps + c0;
    vfloat8 w0 = load8(t), w1 = load8(t + c), w2 = load8(t + 2 * c);
    vfloat8 w3 = load8(t + 3 * c), w4 = load8(t + 4 * c), w5 = load8(t + 5 * c);
    vfloat8 w6 = load8(t + 6 * c), w7 = load8(t + 7 * c), w8 = load8(t + 8 * c);
    vfloat8 b = load8(bias + c0);
    for (size_t ox = first; ox < last; ox++) {
      size_t x = (ox * stride - padding) * c + c0;
      vfloat8 a0 = fma8(w0, load8(top + x), b);
      a0 = fma8(w1, load8(top + x + c), a0);
      a0 = fma8(w2, load8(top + x + 2 * c), a0);
      vfloat8 a1 = w3 * load8(middle + x);
      a1 = fma8(w4, load8(middle + x + c), a1);
      a1 = fma8(w5, load8(middle + x + 2 * c), a1);
      vfloat8 a2 = w6 * load8(bottom + x);
      a2 = fma8(w7, load8(bottom + x + c), a2);
      a2 = fma8(w8, load8(bottom + x + 2 * c), a2);
      store8(out + ox * c + c0, a0 + a1 + a2);
    }
  }
}

AVX512_TARGET static void depthwise_avx512(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding) {
  depthwise_body(out, top, middle, bottom, taps, bias, channels, first, last, stride, padding);
}

AVX2_TARGET static void depthwise_avx2(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding) {
  depthwise_body(out, top, middle, bottom, taps, bias, channels, first, last, stride, padding);
}

void sam_depthwise3x3_inner(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding) {
  if (sam_kernels_lanes() == 16) {
    depthwise_avx512(out, top, middle, bottom, taps, bias, channels, first, last, stride, padding);
  } else {
    depthwise_avx2(out, top, middle, bottom, taps, bias, channels, first, last, stride, padding);
  }
}
