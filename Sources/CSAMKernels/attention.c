// The two products of the fused attention kernel (SAMTensor/AttentionKernel.swift) for blocks of
// up to 4 query rows: scores = q k^T and out = probabilities v. With AVX-512 a 4-row block covers
// 32 columns in 8 zmm accumulators; with AVX2 16 columns in 8 ymm ones, as the Swift loops did.
// Every output value is one FMA chain in the same order (p, or key j, ascending, from zero) in all
// versions, so they give the same bits as each other and as the Swift loops they replace.
#include "sam_kernels.h"
#include "vector16.h"

#define ZERO16 SPLAT(0.0f)

// scores[r, j0 + 0..<16 * blocks] for 4 rows (blocks = 1 or 2 vectors of 16).
#define SCORE_ROWS4(blocks)                                                                      \
  do {                                                                                           \
    vfloat a[4][blocks];                                                                         \
    for (int r = 0; r < 4; r++)                                                                  \
      for (int b = 0; b < blocks; b++) a[r][b] = ZERO16;                                         \
    for (size_t p = 0; p < depth; p++) {                                                         \
      const float *k = kT + p * padded + j0;                                                     \
      vfloat kv[blocks];                                                                         \
      for (int b = 0; b < blocks; b++) kv[b] = load16(k + 16 * b);                               \
      for (int r = 0; r < 4; r++) {                                                              \
        vfloat w = SPLAT(q[r * depth + p]);                                                      \
        for (int b = 0; b < blocks; b++) a[r][b] = fma16(w, kv[b], a[r][b]);                     \
      }                                                                                          \
    }                                                                                            \
    for (int r = 0; r < 4; r++)                                                                  \
      for (int b = 0; b < blocks; b++) store16(scores + r * padded + j0 + 16 * b, a[r][b]);     \
  } while (0)

static inline __attribute__((always_inline)) void scores_body(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded,
    int wide) {
  size_t j0 = 0;
  if (rows == 4) {
    if (wide) {
      for (; j0 + 32 <= padded; j0 += 32) SCORE_ROWS4(2);
    }
    for (; j0 + 16 <= padded; j0 += 16) SCORE_ROWS4(1);
    // An 8-column tail as 4 independent chains (one chain per row at a time would wait on the FMA
    // latency: 49 keys pad to 56 = 32 + 16 + 8).
    for (; j0 + 8 <= padded; j0 += 8) {
      vfloat8 a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
      for (size_t p = 0; p < depth; p++) {
        vfloat8 k = load8(kT + p * padded + j0);
        float w0 = q[p], w1 = q[depth + p], w2 = q[2 * depth + p], w3 = q[3 * depth + p];
        a0 = fma8((vfloat8){w0, w0, w0, w0, w0, w0, w0, w0}, k, a0);
        a1 = fma8((vfloat8){w1, w1, w1, w1, w1, w1, w1, w1}, k, a1);
        a2 = fma8((vfloat8){w2, w2, w2, w2, w2, w2, w2, w2}, k, a2);
        a3 = fma8((vfloat8){w3, w3, w3, w3, w3, w3, w3, w3}, k, a3);
      }
      store8(scores + j0, a0);
      store8(scores + padded + j0, a1);
      store8(scores + 2 * padded + j0, a2);
      store8(scores + 3 * padded + j0, a3);
    }
  }
  // The rest (or every column of a block of fewer rows), 8 columns at a time.
  for (size_t r = 0; r < rows; r++) {
    size_t first = rows == 4 ? j0 : 0;
    for (size_t j = first; j + 8 <= padded; j += 8) {
      vfloat8 a = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t p = 0; p < depth; p++) {
        float w = q[r * depth + p];
        vfloat8 wv = {w, w, w, w, w, w, w, w};
        a = fma8(wv, load8(kT + p * padded + j), a);
      }
      store8(scores + r * padded + j, a);
    }
  }
}

// out[r, c0 + 0..<16 * blocks] for 4 rows.
#define VALUE_ROWS4(blocks)                                                                      \
  do {                                                                                           \
    vfloat a[4][blocks];                                                                         \
    for (int r = 0; r < 4; r++)                                                                  \
      for (int b = 0; b < blocks; b++) a[r][b] = ZERO16;                                         \
    for (size_t j = 0; j < keys; j++) {                                                          \
      const float *vr = v + j * value_depth + c0;                                                \
      vfloat vv[blocks];                                                                         \
      for (int b = 0; b < blocks; b++) vv[b] = load16(vr + 16 * b);                              \
      for (int r = 0; r < 4; r++) {                                                              \
        vfloat w = SPLAT(probabilities[r * padded + j]);                                         \
        for (int b = 0; b < blocks; b++) a[r][b] = fma16(w, vv[b], a[r][b]);                     \
      }                                                                                          \
    }                                                                                            \
    for (int r = 0; r < 4; r++)                                                                  \
      for (int b = 0; b < blocks; b++) store16(out + r * value_depth + c0 + 16 * b, a[r][b]);   \
  } while (0)

static inline __attribute__((always_inline)) void values_body(
    float *out, const float *probabilities, const float *v, size_t rows, size_t keys, size_t padded,
    size_t value_depth, int wide) {
  size_t c0 = 0;
  if (rows == 4) {
    if (wide) {
      for (; c0 + 32 <= value_depth; c0 += 32) VALUE_ROWS4(2);
    }
    for (; c0 + 16 <= value_depth; c0 += 16) VALUE_ROWS4(1);
    for (; c0 + 8 <= value_depth; c0 += 8) {
      vfloat8 a0 = {0, 0, 0, 0, 0, 0, 0, 0}, a1 = a0, a2 = a0, a3 = a0;
      for (size_t j = 0; j < keys; j++) {
        vfloat8 vv = load8(v + j * value_depth + c0);
        float w0 = probabilities[j], w1 = probabilities[padded + j];
        float w2 = probabilities[2 * padded + j], w3 = probabilities[3 * padded + j];
        a0 = fma8((vfloat8){w0, w0, w0, w0, w0, w0, w0, w0}, vv, a0);
        a1 = fma8((vfloat8){w1, w1, w1, w1, w1, w1, w1, w1}, vv, a1);
        a2 = fma8((vfloat8){w2, w2, w2, w2, w2, w2, w2, w2}, vv, a2);
        a3 = fma8((vfloat8){w3, w3, w3, w3, w3, w3, w3, w3}, vv, a3);
      }
      store8(out + c0, a0);
      store8(out + value_depth + c0, a1);
      store8(out + 2 * value_depth + c0, a2);
      store8(out + 3 * value_depth + c0, a3);
    }
  }
  for (size_t r = 0; r < rows; r++) {
    size_t first = rows == 4 ? c0 : 0;
    for (size_t c = first; c + 8 <= value_depth; c += 8) {
      vfloat8 a = {0, 0, 0, 0, 0, 0, 0, 0};
      for (size_t j = 0; j < keys; j++) {
        float w = probabilities[r * padded + j];
        vfloat8 wv = {w, w, w, w, w, w, w, w};
        a = fma8(wv, load8(v + j * value_depth + c), a);
      }
      store8(out + r * value_depth + c, a);
    }
  }
}

AVX512_TARGET static void scores_avx512(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded) {
  scores_body(scores, q, kT, rows, depth, padded, 1);
}

AVX2_TARGET static void scores_avx2(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded) {
  scores_body(scores, q, kT, rows, depth, padded, 0);
}

AVX512_TARGET static void values_avx512(
    float *out, const float *probabilities, const float *v, size_t rows, size_t keys, size_t padded,
    size_t value_depth) {
  values_body(out, probabilities, v, rows, keys, padded, value_depth, 1);
}

AVX2_TARGET static void values_avx2(
    float *out, const float *probabilities, const float *v, size_t rows, size_t keys, size_t padded,
    size_t value_depth) {
  values_body(out, probabilities, v, rows, keys, padded, value_depth, 0);
}

void sam_attention_scores(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded) {
  if (sam_kernels_lanes() == 16) {
    scores_avx512(scores, q, kT, rows, depth, padded);
  } else {
    scores_avx2(scores, q, kT, rows, depth, padded);
  }
}

void sam_attention_values(
    float *out, const float *probabilities, const float *v, size_t rows, size_t keys, size_t padded,
    size_t value_depth) {
  if (sam_kernels_lanes() == 16) {
    values_avx512(out, probabilities, v, rows, keys, padded, value_depth);
  } else {
    values_avx2(out, probabilities, v, rows, keys, padded, value_depth);
  }
}
