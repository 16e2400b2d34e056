// The inner loops of SAMTensor's bilinear resize (Resize.swift, ThresholdedResize.swift): one
// source row resized horizontally, two such rows blended, and the blend thresholded into mask
// bytes with the stability score's counts. Compiled for AVX-512 and for AVX2 and chosen at run
// time; every value is two rounded products and one rounded sum, w0 * a + w1 * b, as the Swift
// loops they replace computed it (and torch's kernel), so every version gives the same bits.
#include "sam_kernels.h"
#include "vector16.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// w0 * a + w1 * b must not become an FMA: that rounds once where torch and the Swift reference
// round the product first, and moves masks at the threshold.
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)

// -- One row resized horizontally ---------------------------------------------------------------

#if defined(__x86_64__)

// 16 outputs. Upscaling and downscaling by up to ~2x take their 32 neighbours from at most 32
// consecutive source values: two loads and two-source permutes. Measured on rows of 1024 -> 2048,
// 1920 and 640 and 256 -> 1024 (Zen4, CPU time): 0.10-0.15 ns per output, against 0.64-0.88 with
// gathers (AVX2: 0.18-0.28 against 0.51-0.74). Wider spans gather.
AVX512_TARGET static inline __attribute__((always_inline)) void resize16_avx512(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight) {
  const __m512i i0 = _mm512_loadu_si512(first), i1 = _mm512_loadu_si512(second);
  const int32_t base = first[0];
  __m512 a, b;
  if (second[15] - base < 32) {
    const __m512i offset = _mm512_set1_epi32(base);
    const size_t available = source_count - (size_t)base;
    const float *p = source + base;
    __m512 low, high;
    if (available >= 32) {
      low = _mm512_loadu_ps(p);
      high = _mm512_loadu_ps(p + 16);
    } else if (available >= 16) {
      low = _mm512_loadu_ps(p);
      high = _mm512_maskz_loadu_ps((__mmask16)((1u << (available - 16)) - 1), p + 16);
    } else {
      low = _mm512_maskz_loadu_ps((__mmask16)((1u << available) - 1), p);
      high = _mm512_setzero_ps();
    }
    a = _mm512_permutex2var_ps(low, _mm512_sub_epi32(i0, offset), high);
    b = _mm512_permutex2var_ps(low, _mm512_sub_epi32(i1, offset), high);
  } else {
    a = _mm512_i32gather_ps(i0, source, 4);
    b = _mm512_i32gather_ps(i1, source, 4);
  }
  const __m512 w0 = _mm512_loadu_ps(first_weight), w1 = _mm512_loadu_ps(second_weight);
  _mm512_storeu_ps(out, _mm512_add_ps(_mm512_mul_ps(w0, a), _mm512_mul_ps(w1, b)));
}

// 8 outputs, from at most 16 consecutive source values (two one-source permutes and a blend on
// bit 3 of the index) or gathered.
AVX2_TARGET static inline __attribute__((always_inline)) void resize8_avx2(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight) {
  const __m256i i0 = _mm256_loadu_si256((const __m256i *)first);
  const __m256i i1 = _mm256_loadu_si256((const __m256i *)second);
  const int32_t base = first[0];
  __m256 a, b;
  if (second[7] - base < 16) {
    const __m256i offset = _mm256_set1_epi32(base);
    const size_t available = source_count - (size_t)base;
    const float *p = source + base;
    __m256 low, high;
    if (available >= 16) {
      low = _mm256_loadu_ps(p);
      high = _mm256_loadu_ps(p + 8);
    } else {
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      const __m256i count = _mm256_set1_epi32((int32_t)available);
      low = _mm256_maskload_ps(p, _mm256_cmpgt_epi32(count, lane));
      high = _mm256_maskload_ps(p + 8, _mm256_cmpgt_epi32(count, _mm256_add_epi32(lane, _mm256_set1_epi32(8))));
    }
    const __m256i r0 = _mm256_sub_epi32(i0, offset), r1 = _mm256_sub_epi32(i1, offset);
    a = _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(low, r0), _mm256_permutevar8x32_ps(high, r0),
        _mm256_castsi256_ps(_mm256_slli_epi32(r0, 28)));
    b = _mm256_blendv_ps(
        _mm256_permutevar8x32_ps(low, r1), _mm256_permutevar8x32_ps(high, r1),
        _mm256_castsi256_ps(_mm256_slli_epi32(r1, 28)));
  } else {
    a = _mm256_i32gather_ps(source, i0, 4);
    b = _mm256_i32gather_ps(source, i1, 4);
  }
  const __m256 w0 = _mm256_loadu_ps(first_weight), w1 = _mm256_loadu_ps(second_weight);
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_mul_ps(w0, a), _mm256_mul_ps(w1, b)));
}

// The last count < lanes outputs: the taps padded with the last one, resized into a local row.
#define RESIZE_TAIL(kernel, lanes)                                                              \
  do {                                                                                          \
    int32_t f[lanes], s[lanes];                                                                 \
    float fw[lanes], sw[lanes], o[lanes];                                                       \
    for (size_t k = 0; k < (lanes); k++) {                                                      \
      const size_t t = k < count ? k : count - 1;                                               \
      f[k] = first[t];                                                                          \
      s[k] = second[t];                                                                         \
      fw[k] = first_weight[t];                                                                  \
      sw[k] = second_weight[t];                                                                 \
    }                                                                                           \
    kernel(o, source, source_count, f, s, fw, sw);                                              \
    memcpy(out, o, count * sizeof(float));                                                      \
  } while (0)

AVX512_TARGET static void resize_row_avx512(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight, size_t count) {
  size_t j = 0;
  for (; j + 16 <= count; j += 16) {
    resize16_avx512(
        out + j, source, source_count, first + j, second + j, first_weight + j, second_weight + j);
  }
  if (j < count) {
    out += j, first += j, second += j, first_weight += j, second_weight += j, count -= j;
    RESIZE_TAIL(resize16_avx512, 16);
  }
}

AVX2_TARGET static void resize_row_avx2(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight, size_t count) {
  size_t j = 0;
  for (; j + 8 <= count; j += 8) {
    resize8_avx2(out + j, source, source_count, first + j, second + j, first_weight + j, second_weight + j);
  }
  if (j < count) {
    out += j, first += j, second += j, first_weight += j, second_weight += j, count -= j;
    RESIZE_TAIL(resize8_avx2, 8);
  }
}

#endif

void sam_resize_row(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight, size_t count) {
  if (count == 0) return;
#if defined(__x86_64__)
  if (sam_kernels_lanes() == 16) {
    resize_row_avx512(out, source, source_count, first, second, first_weight, second_weight, count);
  } else {
    resize_row_avx2(out, source, source_count, first, second, first_weight, second_weight, count);
  }
#else
  (void)source_count;
  for (size_t j = 0; j < count; j++) {
    out[j] = first_weight[j] * source[first[j]] + second_weight[j] * source[second[j]];
  }
#endif
}

// -- Two rows blended ---------------------------------------------------------------------------

static inline __attribute__((always_inline)) void blend_body(
    float *out, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count) {
  const vfloat tw = SPLAT(top_weight), bw = SPLAT(bottom_weight);
  size_t j = 0;
  for (; j + 16 <= count; j += 16) store16(out + j, tw * load16(top + j) + bw * load16(bottom + j));
  for (; j < count; j++) out[j] = top_weight * top[j] + bottom_weight * bottom[j];
}

AVX512_TARGET static void blend_avx512(
    float *out, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count) {
  blend_body(out, top, bottom, top_weight, bottom_weight, count);
}

AVX2_TARGET static void blend_avx2(
    float *out, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count) {
  blend_body(out, top, bottom, top_weight, bottom_weight, count);
}

void sam_blend_rows(
    float *out, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count) {
  if (sam_kernels_lanes() == 16) {
    blend_avx512(out, top, bottom, top_weight, bottom_weight, count);
  } else {
    blend_avx2(out, top, bottom, top_weight, bottom_weight, count);
  }
}

// -- Blended and thresholded --------------------------------------------------------------------

typedef uint8_t vbyte __attribute__((vector_size(16)));

// Lane counters (a comparison's lanes are -1 where true, subtracted), and the mask bytes narrowed
// from the comparison's lanes. NaN compares false (ordered comparisons), as in Swift.
static inline __attribute__((always_inline)) void blend_threshold_body(
    uint8_t *mask, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count,
    float mask_level, float high_level, float low_level, size_t *high, size_t *low) {
  const vfloat tw = SPLAT(top_weight), bw = SPLAT(bottom_weight);
  const vfloat m = SPLAT(mask_level), h = SPLAT(high_level), l = SPLAT(low_level);
  vint high_lanes = {0}, low_lanes = {0};
  size_t j = 0;
  for (; j + 16 <= count; j += 16) {
    const vfloat v = tw * load16(top + j) + bw * load16(bottom + j);
    const vbyte bits = __builtin_convertvector((v > m) & 1, vbyte);
    memcpy(mask + j, &bits, sizeof bits);
    high_lanes -= (v > h);
    low_lanes -= (v > l);
  }
  size_t high_count = 0, low_count = 0;
  for (int k = 0; k < 16; k++) {
    high_count += (size_t)high_lanes[k];
    low_count += (size_t)low_lanes[k];
  }
  for (; j < count; j++) {
    const float v = top_weight * top[j] + bottom_weight * bottom[j];
    mask[j] = v > mask_level ? 1 : 0;
    high_count += v > high_level ? 1 : 0;
    low_count += v > low_level ? 1 : 0;
  }
  *high = high_count;
  *low = low_count;
}

AVX512_TARGET static void blend_threshold_avx512(
    uint8_t *mask, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count,
    float mask_level, float high_level, float low_level, size_t *high, size_t *low) {
  blend_threshold_body(
      mask, top, bottom, top_weight, bottom_weight, count, mask_level, high_level, low_level, high, low);
}

AVX2_TARGET static void blend_threshold_avx2(
    uint8_t *mask, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count,
    float mask_level, float high_level, float low_level, size_t *high, size_t *low) {
  blend_threshold_body(
      mask, top, bottom, top_weight, bottom_weight, count, mask_level, high_level, low_level, high, low);
}

void sam_blend_threshold(
    uint8_t *mask, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count,
    float mask_level, float high_level, float low_level, size_t *high, size_t *low) {
  if (sam_kernels_lanes() == 16) {
    blend_threshold_avx512(
        mask, top, bottom, top_weight, bottom_weight, count, mask_level, high_level, low_level, high, low);
  } else {
    blend_threshold_avx2(
        mask, top, bottom, top_weight, bottom_weight, count, mask_level, high_level, low_level, high, low);
  }
}
