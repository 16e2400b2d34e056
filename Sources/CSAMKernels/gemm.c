// A GEMM for nn.Linear shapes whose weight is packed once, at load time, with the bias, a
// residual and GELU applied while each output tile is still in registers:
//   out[i, j] = act(sum over p of x[i, p] * w[j, p] + bias[j] + residual[i, j])
// (the residual optionally scaled per row).
// OpenBLAS repacks the weight on every call (8% of an encode) and its output then needs an
// epilogue pass over memory of its own; here both are gone.
//
// Layout: the weight [n, k] is stored as panels of 32 output columns, each panel k rows of 32
// values (zero past column n). A register tile is `rows` input rows by 32 columns (AVX-512: up to
// 12 rows, two vectors per row) or by 16 columns (AVX2: up to 6 rows, one 16-lane vector = two
// ymm registers per row); every input value is broadcast from memory and multiplied into the
// tile's columns. Every output value is one fused multiply-add chain over p = 0, 1, ..., k-1
// from zero, then + bias, + residual, then GELU: the same operations on both ISAs, so both give
// the same bits.
//
// Blocking: the input rows are walked in blocks of about 128 KB, and the panels in blocks of
// about 192 KB of weights, so a block of inputs and a block of weights stay in L2 while every
// tile of the pair is computed.
#include "gelu16.h"
#include "sam_kernels.h"
#include "vector16.h"

#define PANEL 32

size_t sam_gemm_packed_count(size_t n, size_t k) { return (n + PANEL - 1) / PANEL * PANEL * k; }

void sam_gemm_pack_weight(float *packed, const float *weight, size_t n, size_t k) {
  for (size_t j0 = 0; j0 < n; j0 += PANEL) {
    float *panel = packed + j0 * k;
    for (size_t p = 0; p < k; p++) {
      for (size_t j = 0; j < PANEL; j++) {
        panel[p * PANEL + j] = j0 + j < n ? weight[(j0 + j) * k + p] : 0.0f;
      }
    }
  }
}

void sam_gemm_pack_weight_transposed(float *packed, const float *weight_t, size_t n, size_t k) {
  for (size_t j0 = 0; j0 < n; j0 += PANEL) {
    float *panel = packed + j0 * k;
    const size_t count = n - j0 < PANEL ? n - j0 : PANEL;
    for (size_t p = 0; p < k; p++) {
      memcpy(panel + p * PANEL, weight_t + p * n + j0, count * sizeof(float));
      for (size_t j = count; j < PANEL; j++) panel[p * PANEL + j] = 0.0f;
    }
  }
}

// One register tile: `rows` input rows from `row`, `vectors` x 16 columns from column `column`
// (inside the panel that starts at column `column - column % 32`), written to the rows of `out`
// (`ldo` floats apart; out points at the tile's first row, column 0).
static inline __attribute__((always_inline)) void tile(
    const sam_gemm_args *a, size_t row, size_t column, const int rows, const int vectors, float *out,
    size_t ldo) {
  const size_t k = a->k;
  const float *weights = a->packed + (column - column % PANEL) * k + column % PANEL;
  const float *x = a->x + row * a->ldx;
  vfloat acc[12][2];
  // The residual's rows are read once, after the products: ask for them now, so that their
  // cache misses overlap the multiply-adds instead of following them.
  if (a->residual) {
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
#pragma clang loop unroll(full)
      for (int v = 0; v < vectors; v++) {
        __builtin_prefetch(a->residual + (row + (size_t)r) * a->ldr + column + 16 * (size_t)v);
      }
    }
  }
  // Fully unrolled, so that the accumulators live in registers.
#pragma clang loop unroll(full)
  for (int r = 0; r < rows; r++) {
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; v++) acc[r][v] = SPLAT(0.0f);
  }
  for (size_t p = 0; p < k; p++) {
    vfloat w[2];
#pragma clang loop unroll(full)
    for (int v = 0; v < vectors; v++) w[v] = load16(weights + p * PANEL + 16 * v);
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
      const float value = x[r * a->ldx + p];
      const vfloat broadcast = SPLAT(value);
#pragma clang loop unroll(full)
      for (int v = 0; v < vectors; v++) acc[r][v] = fma16(broadcast, w[v], acc[r][v]);
    }
  }
#pragma clang loop unroll(full)
  for (int v = 0; v < vectors; v++) {
    const size_t first = column + 16 * (size_t)v;
    if (first >= a->n) break;
    const size_t count = a->n - first;
    const vfloat bias = a->bias ? load16_part(a->bias + first, count) : SPLAT(0.0f);
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
      vfloat y = acc[r][v];
      if (a->bias) y = y + bias;
      if (a->residual) {
        const vfloat residual = load16_part(a->residual + (row + (size_t)r) * a->ldr + first, count);
        y = a->row_scale ? fma16(SPLAT(a->row_scale[row + (size_t)r]), residual, y) : y + residual;
      }
      if (a->gelu) y = gelu16(y);
      store16_part(out + (size_t)r * ldo + first, y, count);
    }
  }
}

// A tile of `rows` < 12 rows, with a constant row count for each case, so that each tail tile
// keeps its accumulators in registers too.
static inline __attribute__((always_inline)) void tail_tile(
    const sam_gemm_args *a, size_t row, size_t column, int rows, const int vectors, float *out, size_t ldo) {
  switch (rows) {
    case 1: tile(a, row, column, 1, vectors, out, ldo); break;
    case 2: tile(a, row, column, 2, vectors, out, ldo); break;
    case 3: tile(a, row, column, 3, vectors, out, ldo); break;
    case 4: tile(a, row, column, 4, vectors, out, ldo); break;
    case 5: tile(a, row, column, 5, vectors, out, ldo); break;
    case 6: tile(a, row, column, 6, vectors, out, ldo); break;
    case 7: tile(a, row, column, 7, vectors, out, ldo); break;
    case 8: tile(a, row, column, 8, vectors, out, ldo); break;
    case 9: tile(a, row, column, 9, vectors, out, ldo); break;
    case 10: tile(a, row, column, 10, vectors, out, ldo); break;
    default: tile(a, row, column, 11, vectors, out, ldo); break;
  }
}

// Columns of the weight's blocks: about 192 KB of it, whole panels.
static inline __attribute__((always_inline)) size_t block_columns_for(size_t k) {
  const size_t columns = (49152 / (k > 0 ? k : 1)) / PANEL * PANEL;
  return columns < PANEL ? PANEL : columns;
}

// Rows [first, last) of the output, in tiles of `tile_rows` rows by 16 * `vectors` columns.
static inline __attribute__((always_inline)) void gemm_body(
    const sam_gemm_args *a, size_t first, size_t last, const int tile_rows, const int vectors) {
  const size_t k = a->k > 0 ? a->k : 1;
  size_t block_rows = (32768 / k) / (size_t)tile_rows * (size_t)tile_rows;
  if (block_rows < (size_t)tile_rows) block_rows = (size_t)tile_rows;
  const size_t block_columns = block_columns_for(a->k);
  const size_t step = 16 * (size_t)vectors;
  for (size_t r0 = first; r0 < last; r0 += block_rows) {
    const size_t r1 = r0 + block_rows < last ? r0 + block_rows : last;
    for (size_t c0 = 0; c0 < a->n; c0 += block_columns) {
      const size_t c1 = c0 + block_columns < a->n ? c0 + block_columns : a->n;
      size_t row = r0;
      for (; row + (size_t)tile_rows <= r1; row += (size_t)tile_rows) {
        for (size_t column = c0; column < c1; column += step) {
          tile(a, row, column, tile_rows, vectors, a->out + row * a->ldo, a->ldo);
        }
      }
      const int remaining = (int)(r1 - row);
      for (size_t column = c0; column < c1 && remaining > 0; column += step) {
        tail_tile(a, row, column, remaining, vectors, a->out + row * a->ldo, a->ldo);
      }
    }
  }
}

AVX512_TARGET static void gemm_avx512(const sam_gemm_args *a, size_t first, size_t last) {
  gemm_body(a, first, last, 12, 2);
}

AVX2_TARGET static void gemm_avx2(const sam_gemm_args *a, size_t first, size_t last) {
  gemm_body(a, first, last, 6, 1);
}

size_t sam_gemm_tile_rows(void) { return sam_kernels_lanes() == 16 ? 12 : 6; }

void sam_gemm_packed_rows(const sam_gemm_args *args, size_t first, size_t last) {
  if (first >= last || args->n == 0) return;
  if (sam_kernels_lanes() == 16) {
    gemm_avx512(args, first, last);
  } else {
    gemm_avx2(args, first, last);
  }
}
