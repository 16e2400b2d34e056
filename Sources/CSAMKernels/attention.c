// The two products of the fused attention kernel (SAMTensor/AttentionKernel.swift) for blocks of
// up to 4 query rows: scores = q k^T and out = probabilities v (and, at the end of this file,
// TinyViT's windowed attention built on them). With AVX-512 a 4-row block covers 32 columns in
// 8 zmm accumulators; with AVX2 16 columns in 8 ymm ones, as the Swift loops did.
// Every output value is one FMA chain in the same order (p, or key j, ascending, from zero) in all
// versions, so they give the same bits as each other and as the Swift loops they replace.
#include "gelu16.h"  // exp_nonpositive16
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

// ---- One window of TinyViT's windowed attention, all heads, from the qkv rows of the grid ----
// Gathers the window's queries, keys (transposed) and values per head in one pass over its rows,
// then runs the real tokens' queries in blocks of 4 through scores, scale + bias + softmax and
// values, and writes each output row to its grid position. Padded tokens take part as keys but
// are not computed as queries (the reference crops their outputs away). The same operations in
// the same order for both ISAs, so both give the same bits.

static inline __attribute__((always_inline)) vfloat max16(vfloat a, vfloat b) {
  return select16(a > b, a, b);
}

// row[j] = softmax over j < count of (row[j] * scale + bias[j]), 16 lanes at a time; the last
// partial vector is padded with -infinity (its exp is 0).
static inline __attribute__((always_inline)) void scaled_softmax_row(
    float *row, const float *bias, size_t count, float scale) {
  const vfloat minus_infinity = SPLAT(-__builtin_inff());
  vfloat maxima = minus_infinity;
  size_t j = 0;
  for (; j + 16 <= count; j += 16) {
    vfloat s = fma16(load16(row + j), SPLAT(scale), load16(bias + j));
    store16(row + j, s);
    maxima = max16(maxima, s);
  }
  const size_t tail = count - j;
  float lanes[16];
  if (tail > 0) {
    for (size_t i = 0; i < 16; i++) {
      lanes[i] = i < tail ? __builtin_fmaf(row[j + i], scale, bias[j + i]) : -__builtin_inff();
    }
    maxima = max16(maxima, load16(lanes));
  }
  float maximum = maxima[0];
  for (int i = 1; i < 16; i++) maximum = maxima[i] > maximum ? maxima[i] : maximum;
  const vfloat shift = SPLAT(maximum);
  vfloat sums = SPLAT(0.0f);
  for (j = 0; j + 16 <= count; j += 16) {
    vfloat e = exp_nonpositive16(load16(row + j) - shift);
    store16(row + j, e);
    sums += e;
  }
  if (tail > 0) {
    vfloat e = exp_nonpositive16(load16(lanes) - shift);
    sums += e;
    store16(lanes, e);
    memcpy(row + j, lanes, tail * sizeof(float));
  }
  float total = 0;
  for (int i = 0; i < 16; i++) total += sums[i];
  const vfloat inverse = SPLAT(1.0f / total);
  for (j = 0; j + 16 <= count; j += 16) store16(row + j, load16(row + j) * inverse);
  for (; j < count; j++) row[j] *= 1.0f / total;
}

// Copies count floats (a multiple of 8), inline: the rows here are 16 or 32 floats, too short
// for a call to memcpy.
static inline __attribute__((always_inline)) void copy_floats(float *out, const float *in, size_t count) {
  size_t i = 0;
  for (; i + 16 <= count; i += 16) store16(out + i, load16(in + i));
  for (; i + 8 <= count; i += 8) store8(out + i, load8(in + i));
}

// Keys rounded up to whole 16-lane vectors (the score kernel below has no 8-column tail).
static size_t window_padded_keys(size_t tokens) { return (tokens + 15) / 16 * 16; }

// scores = q k^T for a block of `rows` query rows, as `scores_body`, with up to 4 vectors of 16
// columns per step where the rows are 4 and registers allow (AVX-512: 16 accumulators), so that
// TinyViT's 49 (padded to 64) keys are one step instead of three with 4 accumulators.
static inline __attribute__((always_inline)) void window_scores(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded, int wide) {
  if (rows < 4) {
    scores_body(scores, q, kT, rows, depth, padded, wide);
    return;
  }
  size_t j0 = 0;
  if (wide) {
    for (; j0 + 64 <= padded; j0 += 64) SCORE_ROWS4(4);
    for (; j0 + 32 <= padded; j0 += 32) SCORE_ROWS4(2);
  }
  for (; j0 + 16 <= padded; j0 += 16) SCORE_ROWS4(1);
}

size_t sam_window_attention_scratch(size_t tokens, size_t heads, size_t depth) {
  const size_t padded = window_padded_keys(tokens);
  // per head: queries, keys transposed, values; then a block's 4 output rows and 4 score rows
  return heads * (tokens * depth + depth * padded + tokens * depth) + 4 * depth + 4 * padded;
}

static inline __attribute__((always_inline)) void window_body(
    float *out, size_t ldo, const float *grid, size_t ldg, const float *padding, const ptrdiff_t *rows,
    const float *bias, size_t tokens, size_t heads, size_t depth, float scale, float *scratch, int wide) {
  const size_t padded = window_padded_keys(tokens);
  const size_t head_floats = tokens * depth + depth * padded + tokens * depth;
  float *outputs = scratch + heads * head_floats;  // [4, depth]
  float *scores = outputs + 4 * depth;             // [4, padded]
  // One pass over the window's qkv rows, each read from start to end (the rows are far apart in
  // the grid; reading them head by head would wait on memory once per head), the next two rows
  // fetched meanwhile (measured: attention 10-15% faster).
  for (size_t t = 0; t < tokens; t++) {
    const float *row = rows[t] >= 0 ? grid + (size_t)rows[t] * ldg : padding;
    for (size_t ahead = t + 1; ahead <= t + 2 && ahead < tokens; ahead++) {
      if (rows[ahead] < 0) continue;
      const char *bytes = (const char *)(grid + (size_t)rows[ahead] * ldg);
      for (size_t b = 0; b < ldg * sizeof(float); b += 64) __builtin_prefetch(bytes + b);
    }
    for (size_t h = 0; h < heads; h++) {
      const float *source = row + h * 3 * depth;
      float *queries = scratch + h * head_floats;  // [tokens, depth]
      float *keys = queries + tokens * depth;      // [depth, padded], zero past `tokens`
      float *values = keys + depth * padded;       // [tokens, depth]
      copy_floats(queries + t * depth, source, depth);
      // Scalar stores: vectorized, this loop becomes a scatter, several times slower.
#pragma clang loop vectorize(disable)
      for (size_t p = 0; p < depth; p++) keys[p * padded + t] = source[depth + p];
      copy_floats(values + t * depth, source + 2 * depth, depth);
    }
  }
  for (size_t h = 0; h < heads; h++) {
    const float *queries = scratch + h * head_floats;
    float *keys = scratch + h * head_floats + tokens * depth;
    const float *values = keys + depth * padded;
    const float *head_bias = bias + h * tokens * tokens;
    for (size_t p = 0; p < depth; p++) {
      for (size_t t = tokens; t < padded; t++) keys[p * padded + t] = 0;
    }
    // The real tokens' queries, in blocks of up to 4 (`block` holds their window positions).
    size_t block[4];
    size_t count = 0;
    for (size_t t = 0; t < tokens; t++) {
      if (rows[t] >= 0) block[count++] = t;
      if (count == 0 || (count < 4 && t + 1 < tokens)) continue;
      // The kernels read `count` consecutive query rows: move the block's rows together.
      float *first = scratch + h * head_floats + block[0] * depth;
      for (size_t r = 1; r < count; r++) copy_floats(first + r * depth, queries + block[r] * depth, depth);
      window_scores(scores, first, keys, count, depth, padded, wide);
      for (size_t r = 0; r < count; r++) {
        scaled_softmax_row(scores + r * padded, head_bias + block[r] * tokens, tokens, scale);
      }
      values_body(outputs, scores, values, count, tokens, padded, depth, wide);
      for (size_t r = 0; r < count; r++) {
        copy_floats(out + (size_t)rows[block[r]] * ldo + h * depth, outputs + r * depth, depth);
      }
      count = 0;
    }
  }
}

AVX512_TARGET static void window_avx512(
    float *out, size_t ldo, const float *grid, size_t ldg, const float *padding, const ptrdiff_t *rows,
    const float *bias, size_t tokens, size_t heads, size_t depth, float scale, float *scratch) {
  window_body(out, ldo, grid, ldg, padding, rows, bias, tokens, heads, depth, scale, scratch, 1);
}

AVX2_TARGET static void window_avx2(
    float *out, size_t ldo, const float *grid, size_t ldg, const float *padding, const ptrdiff_t *rows,
    const float *bias, size_t tokens, size_t heads, size_t depth, float scale, float *scratch) {
  window_body(out, ldo, grid, ldg, padding, rows, bias, tokens, heads, depth, scale, scratch, 0);
}

void sam_window_attention(
    float *out, size_t ldo, const float *grid, size_t ldg, const float *padding, const ptrdiff_t *rows,
    const float *bias, size_t tokens, size_t heads, size_t depth, float scale, float *scratch) {
  if (sam_kernels_lanes() == 16) {
    window_avx512(out, ldo, grid, ldg, padding, rows, bias, tokens, heads, depth, scale, scratch);
  } else {
    window_avx2(out, ldo, grid, ldg, padding, rows, bias, tokens, heads, depth, scale, scratch);
  }
}
