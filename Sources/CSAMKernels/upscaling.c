// The steps of the mask decoder's output upscaling that are not GEMMs (those run on the
// packed GEMM, gemm.c): the coefficient rows of a first stage given in low-rank form, LayerNorm
// over each pixel's channels followed by GELU, and the dot products of every upscaled pixel with
// the hypernetwork vectors, written straight into the output planes. Written once with 16-lane vectors and compiled for AVX-512 and for AVX2; both
// versions run the same operations in the same order, so they give the same bits.
#include "gelu16.h"
#include "sam_kernels.h"
#include "vector16.h"

// -- Low-rank coefficients ---------------------------------------------------------------------

// A row's two scaled rank blocks, 16 lanes at a time; the four constant columns as scalars.
static inline __attribute__((always_inline)) void low_rank_coefficients_body(
    float *out, float *scales, const float *a1, size_t r1, const float *a2, size_t r2, const float *mean1,
    const float *inverse1, const float *mean2, const float *inverse2, size_t rows) {
  const size_t width = r1 + r2 + 4;
  for (size_t i = 0; i < rows; i++) {
    const float beta = inverse2[i], alpha = inverse1[i] * beta;
    float *row = out + i * width;
    const float *first = a1 + i * r1, *second = a2 + i * r2;
    for (size_t j = 0; j < r1; j += 16) {
      store16_part(row + j, load16_part(first + j, r1 - j) * alpha, r1 - j);
    }
    for (size_t j = 0; j < r2; j += 16) {
      store16_part(row + r1 + j, load16_part(second + j, r2 - j) * beta, r2 - j);
    }
    row[r1 + r2] = alpha;
    row[r1 + r2 + 1] = -(alpha * mean1[i]);
    row[r1 + r2 + 2] = beta;
    row[r1 + r2 + 3] = -(beta * mean2[i]);
    scales[i] = alpha;
  }
}

AVX512_TARGET static void low_rank_coefficients_avx512(
    float *out, float *scales, const float *a1, size_t r1, const float *a2, size_t r2, const float *mean1,
    const float *inverse1, const float *mean2, const float *inverse2, size_t rows) {
  low_rank_coefficients_body(out, scales, a1, r1, a2, r2, mean1, inverse1, mean2, inverse2, rows);
}

AVX2_TARGET static void low_rank_coefficients_avx2(
    float *out, float *scales, const float *a1, size_t r1, const float *a2, size_t r2, const float *mean1,
    const float *inverse1, const float *mean2, const float *inverse2, size_t rows) {
  low_rank_coefficients_body(out, scales, a1, r1, a2, r2, mean1, inverse1, mean2, inverse2, rows);
}

void sam_low_rank_coefficients(
    float *out, float *scales, const float *a1, size_t r1, const float *a2, size_t r2, const float *mean1,
    const float *inverse1, const float *mean2, const float *inverse2, size_t rows) {
  if (sam_kernels_lanes() == 16) {
    low_rank_coefficients_avx512(out, scales, a1, r1, a2, r2, mean1, inverse1, mean2, inverse2, rows);
  } else {
    low_rank_coefficients_avx2(out, scales, a1, r1, a2, r2, mean1, inverse1, mean2, inverse2, rows);
  }
}

// -- LayerNorm + GELU -------------------------------------------------------------------------

// Pixels in groups of 16: the sums over each pixel's channels fold into one vector of 16 sums
// (`sum_lanes_of_each`), so the means and the inverse standard deviations of a group come out of
// a few vector operations instead of a serial chain of scalar ones per pixel.
static inline __attribute__((always_inline)) void layer_norm_gelu_body(
    float *out, const float *x, const float *weight, const float *bias, size_t pixels, size_t channels,
    float eps, const int wide) {
  const float n = (float)channels;
  for (size_t i0 = 0; i0 < pixels; i0 += 16) {
    const size_t group = pixels - i0 < 16 ? pixels - i0 : 16;
    const float *rows = x + i0 * channels;
    vfloat partial[16];
    // torch's two passes: the mean, then the mean square deviation from it.
    // Pixels past the end of the last group add up to zeros that are never stored.
    for (size_t j = 0; j < 16; j++) {
      vfloat sums = SPLAT(0.0f);
      if (j < group) {
        for (size_t c = 0; c < channels; c += 16) {
          sums += load16_part(rows + j * channels + c, channels - c);
        }
      }
      partial[j] = sums;
    }
    float means[16];
    store16(means, sum_lanes_of_each(partial) / n);
    for (size_t j = 0; j < 16; j++) {
      vfloat squares = SPLAT(0.0f);
      if (j < group) {
        for (size_t c = 0; c < channels; c += 16) {
          const vint valid = lanes_below(channels - c);
          vfloat d = load16_part(rows + j * channels + c, channels - c) - means[j];
          d = select16(valid, d, SPLAT(0.0f));
          squares = fma16(d, d, squares);
        }
      }
      partial[j] = squares;
    }
    float inverses[16];
    store16(inverses, SPLAT(1.0f) / __builtin_elementwise_sqrt(sum_lanes_of_each(partial) / n + eps));
    for (size_t j = 0; j < group; j++) {
      for (size_t c = 0; c < channels; c += 16) {
        const size_t count = channels - c;
        vfloat normalized = (load16_part(rows + j * channels + c, count) - means[j]) * inverses[j];
        vfloat y = fma16(normalized, load16_part(weight + c, count), load16_part(bias + c, count));
        store16_part(out + (i0 + j) * channels + c, gelu16(y, wide), count);
      }
    }
  }
}

// The model's 64 channels as a constant, so that the channel loops unroll.
AVX512_TARGET static void layer_norm_gelu_avx512(
    float *out, const float *x, const float *weight, const float *bias, size_t pixels, size_t channels,
    float eps) {
  if (channels == 64) {
    layer_norm_gelu_body(out, x, weight, bias, pixels, 64, eps, 1);
  } else {
    layer_norm_gelu_body(out, x, weight, bias, pixels, channels, eps, 1);
  }
}

AVX2_TARGET static void layer_norm_gelu_avx2(
    float *out, const float *x, const float *weight, const float *bias, size_t pixels, size_t channels,
    float eps) {
  if (channels == 64) {
    layer_norm_gelu_body(out, x, weight, bias, pixels, 64, eps, 0);
  } else {
    layer_norm_gelu_body(out, x, weight, bias, pixels, channels, eps, 0);
  }
}

void sam_layer_norm_gelu(
    float *out, const float *x, const float *weight, const float *bias, size_t pixels, size_t channels,
    float eps) {
  if (pixels == 0 || channels == 0) return;
  if (sam_kernels_lanes() == 16) {
    layer_norm_gelu_avx512(out, x, weight, bias, pixels, channels, eps);
  } else {
    layer_norm_gelu_avx2(out, x, weight, bias, pixels, channels, eps);
  }
}

// -- Products with the hypernetwork vectors --------------------------------------------------

// Each input pixel's 16 upscaled pixels form a 4x4 block of the output; lane j of a block's
// products is its pixel (row j / 4, column j % 4), whose values sit in `upscaled` at
// (dy, dx, dy2, dx2) with row = 2 dy + dy2 and column = 2 dx + dx2.
static inline __attribute__((always_inline)) void products_body(
    float *out, size_t row_stride, size_t plane, const float *upscaled, const float *vectors, size_t width,
    size_t channels, size_t masks) {
  for (size_t m = 0; m < masks; m++) {
    const float *vector = vectors + m * channels;
    float *target = out + m * plane;
    for (size_t x = 0; x < width; x++) {
      const float *block = upscaled + x * 16 * channels;
      vfloat partial[16];
      for (int j = 0; j < 16; j++) {
        const int dy = j >> 3, dy2 = (j >> 2) & 1, dx = (j >> 1) & 1, dx2 = j & 1;
        const float *pixel = block + (size_t)(((dy * 2 + dx) * 2 + dy2) * 2 + dx2) * channels;
        vfloat acc = SPLAT(0.0f);
        for (size_t c = 0; c < channels; c += 16) {
          acc = fma16(load16_part(pixel + c, channels - c), load16_part(vector + c, channels - c), acc);
        }
        partial[j] = acc;
      }
      float products[16];
      store16(products, sum_lanes_of_each(partial));
      for (int row = 0; row < 4; row++) {
        memcpy(target + row * row_stride + 4 * x, products + 4 * row, 4 * sizeof(float));
      }
    }
  }
}

// The model's 32 channels as a constant, so that the channel loop unrolls into two FMAs.
AVX512_TARGET static void products_avx512(
    float *out, size_t row_stride, size_t plane, const float *upscaled, const float *vectors, size_t width,
    size_t channels, size_t masks) {
  if (channels == 32) {
    products_body(out, row_stride, plane, upscaled, vectors, width, 32, masks);
  } else {
    products_body(out, row_stride, plane, upscaled, vectors, width, channels, masks);
  }
}

AVX2_TARGET static void products_avx2(
    float *out, size_t row_stride, size_t plane, const float *upscaled, const float *vectors, size_t width,
    size_t channels, size_t masks) {
  if (channels == 32) {
    products_body(out, row_stride, plane, upscaled, vectors, width, 32, masks);
  } else {
    products_body(out, row_stride, plane, upscaled, vectors, width, channels, masks);
  }
}

void sam_upscaling_products(
    float *out, size_t row_stride, size_t plane, const float *upscaled, const float *vectors, size_t width,
    size_t channels, size_t masks) {
  if (sam_kernels_lanes() == 16) {
    products_avx512(out, row_stride, plane, upscaled, vectors, width, channels, masks);
  } else {
    products_avx2(out, row_stride, plane, upscaled, vectors, width, channels, masks);
  }
}
