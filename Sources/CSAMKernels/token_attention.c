// Kernels of the mask decoder's cross-attentions between a few prompt tokens and the 4096 image
// rows, which keep the scores as the image rows see them: [rows, heads x tokens].
// - Tokens attending to the image (token-to-image): the scores come from the packed GEMM reading
//   the image rows in place; the softmax runs down each column (`sam_column_max`,
//   `sam_column_exp`) and the probabilities' transpose multiplies the image values, read in place
//   too (`sam_transposed_product`). OpenBLAS copied the 4 MB of image rows on both products of
//   every call.
// - The image attending to the tokens (image-to-token): a softmax over the tokens for each of 8
//   heads, two image rows per 16-lane vector (`sam_softmax_lanes8`).
//
// Every value is computed by the same operations in the same order with AVX-512 and AVX2 (16-lane
// vectors of vector16.h), so both give the same bits.
#include "gelu16.h"  // exp_nonpositive16
#include "sam_kernels.h"
#include "vector16.h"

static inline __attribute__((always_inline)) void column_max_body(
    float *maxima, const float *x, size_t ld, size_t rows, size_t columns) {
  for (size_t c = 0; c < columns; c += 16) {
    const size_t count = columns - c;
    vfloat m = load16_part(maxima + c, count);
    for (size_t r = 0; r < rows; r++) {
      const vfloat v = load16_part(x + r * ld + c, count);
      m = select16(v > m, v, m);
    }
    store16_part(maxima + c, m, count);
  }
}

static inline __attribute__((always_inline)) void column_exp_body(
    float *x, size_t ld, size_t rows, size_t columns, const float *maxima, float *sums) {
  for (size_t c = 0; c < columns; c += 16) {
    const size_t count = columns - c;
    const vfloat m = load16_part(maxima + c, count);
    vfloat s = SPLAT(0.0f);
    for (size_t r = 0; r < rows; r++) {
      const vfloat e = exp_nonpositive16(load16_part(x + r * ld + c, count) - m);
      s = s + e;
      store16_part(x + r * ld + c, e, count);
    }
    store16_part(sums + c, s, count);
  }
}

// out[i, column + 0..<16 * vectors] for `tile_rows` rows i from `row`, over p in [p0, p1), added
// onto what out holds unless p0 == 0.
static inline __attribute__((always_inline)) void product_tile(
    float *out, size_t ldo, const float *a, size_t lda, const float *b, size_t ldb, size_t row,
    size_t column, size_t p0, size_t p1, const int tile_rows, const int vectors) {
  vfloat acc[12][2];
#pragma clang loop unroll(full)
  for (int r = 0; r < tile_rows; r++) {
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; v++) {
      acc[r][v] = p0 == 0 ? SPLAT(0.0f) : load16(out + (row + (size_t)r) * ldo + column + 16 * (size_t)v);
    }
  }
  for (size_t p = p0; p < p1; p++) {
    vfloat w[2];
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; v++) w[v] = load16(b + p * ldb + column + 16 * (size_t)v);
    const float *ap = a + p * lda + row;
#pragma clang loop unroll(full)
    for (int r = 0; r < tile_rows; r++) {
      const vfloat broadcast = SPLAT(ap[r]);
#pragma clang loop unroll(full)
      for (int v = 0; v < vectors; v++) acc[r][v] = fma16(broadcast, w[v], acc[r][v]);
    }
  }
#pragma clang loop unroll(full)
  for (int r = 0; r < tile_rows; r++) {
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; v++) store16(out + (row + (size_t)r) * ldo + column + 16 * (size_t)v, acc[r][v]);
  }
}

// The tiles of one column block for every row, `vectors` x 16 columns wide.
static inline __attribute__((always_inline)) void product_columns(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb,
    size_t column, size_t p0, size_t p1, const int tile_rows, const int vectors) {
  size_t row = 0;
  for (; row + (size_t)tile_rows <= m; row += (size_t)tile_rows) {
    product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, tile_rows, vectors);
  }
  // The last rows, with a constant row count so that the accumulators stay in registers.
  switch (m - row) {
    case 0: break;
    case 1: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 1, vectors); break;
    case 2: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 2, vectors); break;
    case 3: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 3, vectors); break;
    case 4: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 4, vectors); break;
    case 5: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 5, vectors); break;
    case 6: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 6, vectors); break;
    case 7: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 7, vectors); break;
    case 8: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 8, vectors); break;
    case 9: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 9, vectors); break;
    case 10: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 10, vectors); break;
    default: product_tile(out, ldo, a, lda, b, ldb, row, column, p0, p1, 11, vectors); break;
  }
}

// Blocks of 256 values of p, so that a block of b's rows ([256, n]: 256 KB at n = 256) stays in
// L2 while every tile of the output is computed on it.
#define P_BLOCK 256

static inline __attribute__((always_inline)) void product_body(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb, size_t k,
    size_t first_column, size_t last_column, const int tile_rows, const int vectors) {
  const size_t step = 16 * (size_t)vectors;
  for (size_t p0 = 0; p0 < k; p0 += P_BLOCK) {
    const size_t p1 = p0 + P_BLOCK < k ? p0 + P_BLOCK : k;
    size_t column = first_column;
    for (; column + step <= last_column; column += step) {
      product_columns(out, ldo, a, lda, m, b, ldb, column, p0, p1, tile_rows, vectors);
    }
    if (column < last_column) product_columns(out, ldo, a, lda, m, b, ldb, column, p0, p1, tile_rows, 1);
  }
}

AVX512_TARGET static void column_max_avx512(float *maxima, const float *x, size_t ld, size_t rows, size_t columns) {
  column_max_body(maxima, x, ld, rows, columns);
}
AVX2_TARGET static void column_max_avx2(float *maxima, const float *x, size_t ld, size_t rows, size_t columns) {
  column_max_body(maxima, x, ld, rows, columns);
}

void sam_column_max(float *maxima, const float *x, size_t ld, size_t rows, size_t columns) {
  if (sam_kernels_lanes() == 16) {
    column_max_avx512(maxima, x, ld, rows, columns);
  } else {
    column_max_avx2(maxima, x, ld, rows, columns);
  }
}

AVX512_TARGET static void column_exp_avx512(
    float *x, size_t ld, size_t rows, size_t columns, const float *maxima, float *sums) {
  column_exp_body(x, ld, rows, columns, maxima, sums);
}
AVX2_TARGET static void column_exp_avx2(
    float *x, size_t ld, size_t rows, size_t columns, const float *maxima, float *sums) {
  column_exp_body(x, ld, rows, columns, maxima, sums);
}

void sam_column_exp(float *x, size_t ld, size_t rows, size_t columns, const float *maxima, float *sums) {
  if (sam_kernels_lanes() == 16) {
    column_exp_avx512(x, ld, rows, columns, maxima, sums);
  } else {
    column_exp_avx2(x, ld, rows, columns, maxima, sums);
  }
}

AVX512_TARGET static void product_avx512(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb, size_t k,
    size_t first_column, size_t last_column) {
  product_body(out, ldo, a, lda, m, b, ldb, k, first_column, last_column, 12, 2);
}
AVX2_TARGET static void product_avx2(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb, size_t k,
    size_t first_column, size_t last_column) {
  product_body(out, ldo, a, lda, m, b, ldb, k, first_column, last_column, 6, 1);
}

void sam_transposed_product(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb, size_t k,
    size_t first_column, size_t last_column) {
  if (m == 0 || first_column >= last_column || k == 0) return;
  if (sam_kernels_lanes() == 16) {
    product_avx512(out, ldo, a, lda, m, b, ldb, k, first_column, last_column);
  } else {
    product_avx2(out, ldo, a, lda, m, b, ldb, k, first_column, last_column);
  }
}

// The 16 x 16 matrix whose row i is v[i], transposed in place (sam_head_scores' row stores). The
// four stages differ only in their constant lane indices, which __builtin_shufflevector needs
// spelled out.
static inline __attribute__((always_inline)) void transpose16x16(vfloat v[16]) {
  // Swapping the off-diagonal blocks of 8, 4, 2 and 1 lanes.
  for (int i = 0; i < 16; i++) {
    if (i & 8) continue;
    const vfloat p = v[i], q = v[i + 8];
    v[i] = __builtin_shufflevector(p, q, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
    v[i + 8] = __builtin_shufflevector(p, q, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  for (int i = 0; i < 16; i++) {
    if (i & 4) continue;
    const vfloat p = v[i], q = v[i + 4];
    v[i] = __builtin_shufflevector(p, q, 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
    v[i + 4] = __builtin_shufflevector(p, q, 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
  }
  for (int i = 0; i < 16; i++) {
    if (i & 2) continue;
    const vfloat p = v[i], q = v[i + 2];
    v[i] = __builtin_shufflevector(p, q, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
    v[i + 2] = __builtin_shufflevector(p, q, 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
  }
  for (int i = 0; i < 16; i++) {
    if (i & 1) continue;
    const vfloat p = v[i], q = v[i + 1];
    v[i] = __builtin_shufflevector(p, q, 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
    v[i + 1] = __builtin_shufflevector(p, q, 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
  }
}

// Head h's scores of `n` (1 to 4) tokens from t0 against the 16 rows' values x[j], one chain each.
static inline __attribute__((always_inline)) void head_scores_tokens(
    vfloat *buffer, const vfloat *x, const float *keys, size_t t0, const int n, size_t width, size_t heads,
    size_t h, const size_t depth) {
  vfloat acc[4];
  const float *k[4];
#pragma clang loop unroll(full)
  for (int i = 0; i < n; i++) {
    acc[i] = SPLAT(0.0f);
    k[i] = keys + (t0 + (size_t)i) * width + h * depth;
  }
  for (size_t j = 0; j < depth; j++) {
#pragma clang loop unroll(full)
    for (int i = 0; i < n; i++) acc[i] = fma16(SPLAT(k[i][j]), x[j], acc[i]);
  }
#pragma clang loop unroll(full)
  for (int i = 0; i < n; i++) buffer[(t0 + (size_t)i) * heads + h] = acc[i];
}

// One block of 16 rows from r0 (`count` real; `whole` when all 16 are): each head's values are
// loaded once and scored against every token into a column buffer (column t * heads + h: the 16
// rows' scores), then the buffer is transposed 16 columns at a time and stored by rows.
static inline __attribute__((always_inline)) void head_scores_block(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t r0, size_t count, const float *keys,
    size_t tokens, size_t heads, const size_t depth, vfloat *buffer, const int whole) {
  const size_t width = heads * depth, columns = tokens * heads;
  for (size_t h = 0; h < heads; h++) {
    vfloat x[16];
    for (size_t j = 0; j < depth; j++) {
      const float *from = xt + (r0 / 16) * block + (h * depth + j) * ldxt + r0 % 16;
      x[j] = whole ? load16(from) : load16_part(from, count);
    }
    // Four tokens at a time: four independent multiply-add chains instead of one waiting on
    // each FMA's latency (each chain is still over j in order from zero: the same bits).
    size_t t = 0;
    for (; t + 4 <= tokens; t += 4) head_scores_tokens(buffer, x, keys, t, 4, width, heads, h, depth);
    switch (tokens - t) {
      case 3: head_scores_tokens(buffer, x, keys, t, 3, width, heads, h, depth); break;
      case 2: head_scores_tokens(buffer, x, keys, t, 2, width, heads, h, depth); break;
      case 1: head_scores_tokens(buffer, x, keys, t, 1, width, heads, h, depth); break;
      default: break;
    }
  }
  for (size_t c0 = 0; c0 < columns; c0 += 16) {
    const size_t group = columns - c0 < 16 ? columns - c0 : 16;
    vfloat v[16];
#pragma clang loop unroll(full)
    for (int c = 0; c < 16; c++) v[c] = (size_t)c < group ? buffer[c0 + (size_t)c] : SPLAT(0.0f);
    transpose16x16(v);
    for (size_t i = 0; i < count; i++) store16_part(out + (r0 + i) * ldo + c0, v[i], group);
  }
}

// The column buffer holds at most this many columns (tokens x heads); wider blocks are scored in
// slices of tokens.
#define HEAD_SCORE_COLUMNS 256

static inline __attribute__((always_inline)) void head_scores_body(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, const size_t depth) {
  vfloat buffer[HEAD_SCORE_COLUMNS];
  // Tokens per slice: whole tokens whose columns fit the buffer, a multiple of 16 columns apart.
  size_t slice = HEAD_SCORE_COLUMNS / heads;
  while (slice > 1 && (slice * heads) % 16 != 0) slice--;
  for (size_t r0 = first; r0 < last; r0 += 16) {
    const size_t count = last - r0 < 16 ? last - r0 : 16;
    for (size_t t0 = 0; t0 < tokens; t0 += slice) {
      const size_t n = tokens - t0 < slice ? tokens - t0 : slice;
      float *o = out + t0 * heads;
      const float *k = keys + t0 * heads * depth;
      if (count == 16) {
        head_scores_block(o, ldo, xt, ldxt, block, r0, count, k, n, heads, depth, buffer, 1);
      } else {
        head_scores_block(o, ldo, xt, ldxt, block, r0, count, k, n, heads, depth, buffer, 0);
      }
    }
  }
}

// The decoder's 16 values per head as a constant, so that the chains unroll.
static inline __attribute__((always_inline)) void head_scores_any(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, size_t depth) {
  if (depth == 16) {
    head_scores_body(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, 16);
  } else {
    head_scores_body(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, depth);
  }
}

AVX512_TARGET static void head_scores_avx512(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, size_t depth) {
  head_scores_any(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, depth);
}
AVX2_TARGET static void head_scores_avx2(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, size_t depth) {
  head_scores_any(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, depth);
}

void sam_head_scores(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, size_t depth) {
  if (first >= last || depth == 0 || depth > 16 || heads == 0 || heads > HEAD_SCORE_COLUMNS) return;
  if (sam_kernels_lanes() == 16) {
    head_scores_avx512(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, depth);
  } else {
    head_scores_avx2(out, ldo, xt, ldxt, block, first, last, keys, tokens, heads, depth);
  }
}

// Two rows' 8 lanes as one 16-lane vector, and back.
static inline __attribute__((always_inline)) vfloat load_halves(const float *low, const float *high) {
  float lanes[16];
  memcpy(lanes, low, 8 * sizeof(float));
  memcpy(lanes + 8, high, 8 * sizeof(float));
  return load16(lanes);
}

static inline __attribute__((always_inline)) void store_halves(float *low, float *high, vfloat v) {
  float lanes[16];
  store16(lanes, v);
  memcpy(low, lanes, 8 * sizeof(float));
  memcpy(high, lanes + 8, 8 * sizeof(float));
}

// Rows r and `other` (= r + 1, or r again for a last odd row) in the two halves of each vector.
static inline __attribute__((always_inline)) void softmax_lanes8_body(float *x, size_t rows, size_t length) {
  const size_t width = 8 * length;
  for (size_t r = 0; r < rows; r += 2) {
    float *a = x + r * width;
    float *b = r + 1 < rows ? a + width : a;
    vfloat m = load_halves(a, b);
    for (size_t t = 1; t < length; t++) {
      const vfloat v = load_halves(a + 8 * t, b + 8 * t);
      m = select16(v > m, v, m);
    }
    vfloat sum = SPLAT(0.0f);
    for (size_t t = 0; t < length; t++) {
      const vfloat e = exp_nonpositive16(load_halves(a + 8 * t, b + 8 * t) - m);
      sum = sum + e;
      store_halves(a + 8 * t, b + 8 * t, e);
    }
    const vfloat inverse = SPLAT(1.0f) / sum;
    for (size_t t = 0; t < length; t++) {
      store_halves(a + 8 * t, b + 8 * t, load_halves(a + 8 * t, b + 8 * t) * inverse);
    }
  }
}

AVX512_TARGET static void softmax_lanes8_avx512(float *x, size_t rows, size_t length) {
  softmax_lanes8_body(x, rows, length);
}
AVX2_TARGET static void softmax_lanes8_avx2(float *x, size_t rows, size_t length) {
  softmax_lanes8_body(x, rows, length);
}

void sam_softmax_lanes8(float *x, size_t rows, size_t length) {
  if (length == 0) return;
  if (sam_kernels_lanes() == 16) {
    softmax_lanes8_avx512(x, rows, length);
  } else {
    softmax_lanes8_avx2(x, rows, length);
  }
}
