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
// (`ldo` floats apart; out points at the tile's first row, column 0); `wide` as gelu16's.
static inline __attribute__((always_inline)) void tile(
    const sam_gemm_args *a, size_t row, size_t column, const int rows, const int vectors, float *out,
    size_t ldo, const int wide) {
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
      if (a->gelu) y = gelu16(y, wide);
      store16_part(out + (size_t)r * ldo + first, y, count);
    }
  }
}

// A tile of `rows` < 12 rows, with a constant row count for each case, so that each tail tile
// keeps its accumulators in registers too.
static inline __attribute__((always_inline)) void tail_tile(
    const sam_gemm_args *a, size_t row, size_t column, int rows, const int vectors, float *out, size_t ldo,
    const int wide) {
  switch (rows) {
    case 1: tile(a, row, column, 1, vectors, out, ldo, wide); break;
    case 2: tile(a, row, column, 2, vectors, out, ldo, wide); break;
    case 3: tile(a, row, column, 3, vectors, out, ldo, wide); break;
    case 4: tile(a, row, column, 4, vectors, out, ldo, wide); break;
    case 5: tile(a, row, column, 5, vectors, out, ldo, wide); break;
    case 6: tile(a, row, column, 6, vectors, out, ldo, wide); break;
    case 7: tile(a, row, column, 7, vectors, out, ldo, wide); break;
    case 8: tile(a, row, column, 8, vectors, out, ldo, wide); break;
    case 9: tile(a, row, column, 9, vectors, out, ldo, wide); break;
    case 10: tile(a, row, column, 10, vectors, out, ldo, wide); break;
    default: tile(a, row, column, 11, vectors, out, ldo, wide); break;
  }
}

// A tile of `rows` <= 12 rows from row 0 of a->x.
static inline __attribute__((always_inline)) void tail_or_full_tile(
    const sam_gemm_args *a, size_t column, int rows, const int vectors, float *out, size_t ldo, const int wide) {
  if (rows == 12) {
    tile(a, 0, column, 12, vectors, out, ldo, wide);
  } else {
    tail_tile(a, 0, column, rows, vectors, out, ldo, wide);
  }
}

// Columns of the weight's blocks: about 192 KB of it, whole panels.
static inline __attribute__((always_inline)) size_t block_columns_for(size_t k) {
  const size_t columns = (49152 / (k > 0 ? k : 1)) / PANEL * PANEL;
  return columns < PANEL ? PANEL : columns;
}

// Rows [first, last) of the output, in tiles of `tile_rows` rows by 16 * `vectors` columns.
static inline __attribute__((always_inline)) void gemm_body(
    const sam_gemm_args *a, size_t first, size_t last, const int tile_rows, const int vectors,
    const int wide) {
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
          tile(a, row, column, tile_rows, vectors, a->out + row * a->ldo, a->ldo, wide);
        }
      }
      const int remaining = (int)(r1 - row);
      for (size_t column = c0; column < c1 && remaining > 0; column += step) {
        tail_tile(a, row, column, remaining, vectors, a->out + row * a->ldo, a->ldo, wide);
      }
    }
  }
}

AVX512_TARGET static void gemm_avx512(const sam_gemm_args *a, size_t first, size_t last) {
  // At most 16 columns (the decoder's final attention: 2 tokens x 8 heads): one vector per row,
  // not two of which one is zeros. Each value is the same chain either way.
  if (a->n <= 16) {
    gemm_body(a, first, last, 12, 1, 1);
  } else {
    gemm_body(a, first, last, 12, 2, 1);
  }
}

AVX2_TARGET static void gemm_avx2(const sam_gemm_args *a, size_t first, size_t last) {
  gemm_body(a, first, last, 6, 1, 0);
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

// -- Rows normalized as soon as they are complete --------------------------------------------
//
// LayerNorm of each output row, and the normalized row plus an offset (the mask decoder's
// attention output projection with its residual, then the norm). When the weight is one column
// block (all n columns, as for 256 columns of 56 inputs), each register tile's rows are complete
// once the tile has been through every panel: they go to a scratch of tile rows x n in L1 and are
// normalized from there, so the product itself never reaches memory. Otherwise the block's product
// is written to `out` by gemm_body and normalized in place; both ways give the same bits, since
// every value of the product and of the norm is computed by the same operations.

// Widest row the scratch holds (12 rows of it: 24 KB on the stack).
#define NORM_SCRATCH_COLUMNS 512

// LayerNorm of `rows` (at most 16) complete rows of the product, output rows row, row + 1, ...,
// held at src (`ld` floats apart; src may be the output rows themselves). The statistics are
// those of SAMTensor's layerNormRowStatistics, in 16 lanes: a rough mean, then the deviations
// from it and their squares, whose sum corrects the mean's rounding (no E[x^2] - mean^2
// cancellation). A row's sums are its 16 lanes folded by `sum_lanes_of_each`, the same
// operations for every row however many share the fold.
// The shifted rows go to `shifted` (`lds` floats apart: norm->shifted's rows, or src itself when
// they are wanted only in cache, for a probe) and, when `also_stored`, to norm->shifted's rows too.
static inline __attribute__((always_inline)) void normalize_rows(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t row, size_t rows, const float *src,
    size_t ld, const size_t n, float *shifted, const size_t lds, const int also_stored) {
  const float count = (float)n;
  // Rows past `rows` add up to zeros that are never used.
  vfloat sums[16], deviations[16], squares[16];
  for (size_t j = 0; j < 16; j++) sums[j] = deviations[j] = squares[j] = SPLAT(0.0f);
  for (size_t j = 0; j < rows; j++) {
    for (size_t c = 0; c < n; c += 16) sums[j] += load16_part(src + j * ld + c, n - c);
  }
  float rough[16];
  store16(rough, sum_lanes_of_each(sums) / count);
  for (size_t j = 0; j < rows; j++) {
    for (size_t c = 0; c < n; c += 16) {
      const vint valid = lanes_below(n - c);
      const vfloat d = select16(valid, load16_part(src + j * ld + c, n - c) - rough[j], SPLAT(0.0f));
      deviations[j] += d;
      squares[j] = fma16(d, d, squares[j]);
    }
  }
  const vfloat correction = sum_lanes_of_each(deviations) / count;
  vfloat variance = fma16(-correction, correction, sum_lanes_of_each(squares) / count);
  variance = select16(variance < SPLAT(0.0f), SPLAT(0.0f), variance);
  float means[16], inverses[16];
  store16(means, load16(rough) + correction);
  store16(inverses, SPLAT(1.0f) / __builtin_elementwise_sqrt(variance + norm->eps));
  memcpy(norm->mean + row, means, rows * sizeof(float));
  memcpy(norm->inverse + row, inverses, rows * sizeof(float));
  // Row by row, so that each output row is written in order. Every read of a row's values comes
  // before the write to the same columns of `out` (src may be out). The pointers are locals: a
  // store through a float pointer could otherwise change the fields of *a and *norm, and they
  // would be loaded again for every vector.
  const float *weight = norm->weight, *bias = norm->bias, *offset = norm->offset + row * norm->ldf;
  float *out = a->out + row * a->ldo, *stored = also_stored ? norm->shifted + row * norm->lds : NULL;
  const size_t ldo = a->ldo, ldf = norm->ldf, ld_stored = norm->lds;
  for (size_t j = 0; j < rows; j++) {
    const float mean = means[j], inverse = inverses[j];
    for (size_t c = 0; c < n; c += 16) {
      const size_t left = n - c;
      const vfloat normalized = (load16_part(src + j * ld + c, left) - mean) * inverse;
      const vfloat y = fma16(normalized, load16_part(weight + c, left), load16_part(bias + c, left));
      const vfloat with_offset = y + load16_part(offset + j * ldf + c, left);
      store16_part(out + j * ldo + c, y, left);
      store16_part(shifted + j * lds + c, with_offset, left);
      if (also_stored) store16_part(stored + j * ld_stored + c, with_offset, left);
    }
  }
}

// The probe's product (norm->probe) of `rows` shifted rows at x (`ldx` floats apart), output rows
// row, row + 1, ...: the tiles `sam_gemm_packed_rows` computes, one vector wide for at most 16
// columns as gemm_avx512 does (each value is the same chain either way).
static inline __attribute__((always_inline)) void probe_rows(
    const sam_gemm_norm_args *norm, size_t row, int rows, const float *x, size_t ldx, size_t k,
    const int vectors, const int wide) {
  sam_gemm_args p;
  memset(&p, 0, sizeof p);
  (p.x = x, p.ldx = ldx, p.packed = norm->probe, p.n = norm->probe_n, p.k = k);
  float *out = norm->probe_out + row * norm->ldp;
  if (norm->probe_n <= 16) {
    tail_or_full_tile(&p, 0, rows, 1, out, norm->ldp, wide);
  } else {
    for (size_t column = 0; column < p.n; column += 16 * (size_t)vectors) {
      tail_or_full_tile(&p, column, rows, vectors, out, norm->ldp, wide);
    }
  }
}

// Rows [first, last): each tile's rows through every panel into the scratch, then normalized.
static inline __attribute__((always_inline)) void gemm_norm_fused_body(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t first, size_t last, const int tile_rows,
    const int vectors, const size_t n, const int wide) {
  float scratch[12 * NORM_SCRATCH_COLUMNS] __attribute__((aligned(64)));
  const size_t step = 16 * (size_t)vectors;
  // With a probe the shifted rows replace the product in the scratch, and the probe reads them
  // there; so do they without a probe when they are not wanted (norm->shifted NULL).
  const int probe = norm->probe != NULL;
  const int in_scratch = probe || norm->shifted == NULL;
  float *shifted = in_scratch ? scratch : norm->shifted;
  const size_t lds = in_scratch ? n : norm->lds;
  const int also_stored = in_scratch && norm->shifted != NULL;
  size_t row = first;
  for (; row + (size_t)tile_rows <= last; row += (size_t)tile_rows) {
    for (size_t column = 0; column < n; column += step) tile(a, row, column, tile_rows, vectors, scratch, n, wide);
    normalize_rows(
        a, norm, row, (size_t)tile_rows, scratch, n, n, in_scratch ? shifted : shifted + row * lds, lds, also_stored);
    if (probe) probe_rows(norm, row, tile_rows, scratch, n, n, vectors, wide);
  }
  const int remaining = (int)(last - row);
  if (remaining > 0) {
    for (size_t column = 0; column < n; column += step) {
      tail_tile(a, row, column, remaining, vectors, scratch, n, wide);
    }
    normalize_rows(
        a, norm, row, (size_t)remaining, scratch, n, n, in_scratch ? shifted : shifted + row * lds, lds, also_stored);
    if (probe) probe_rows(norm, row, remaining, scratch, n, n, vectors, wide);
  }
}

// Rows [first, last) for any n: the product of a block of rows into `out`, then its rows
// normalized in place, 16 at a time, while the block is in L2.
static inline __attribute__((always_inline)) void gemm_norm_blocked_body(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t first, size_t last, const int tile_rows,
    const int vectors, const int wide) {
  size_t block_rows = 32768 / (a->n + a->k) / (size_t)tile_rows * (size_t)tile_rows;
  if (block_rows < (size_t)tile_rows) block_rows = (size_t)tile_rows;
  for (size_t r0 = first; r0 < last; r0 += block_rows) {
    const size_t r1 = r0 + block_rows < last ? r0 + block_rows : last;
    gemm_body(a, r0, r1, tile_rows, vectors, wide);
    for (size_t row = r0; row < r1; row += 16) {
      const size_t rows = r1 - row < 16 ? r1 - row : 16;
      normalize_rows(
          a, norm, row, rows, a->out + row * a->ldo, a->ldo, a->n, norm->shifted + row * norm->lds, norm->lds, 0);
    }
    // The probe reads the stored shifted rows of the block, still in L2 (shifted is required here).
    for (size_t row = r0; norm->probe && row < r1; row += (size_t)tile_rows) {
      const int rows = r1 - row < (size_t)tile_rows ? (int)(r1 - row) : tile_rows;
      probe_rows(norm, row, rows, norm->shifted + row * norm->lds, norm->lds, a->n, vectors, wide);
    }
  }
}

int sam_gemm_layer_norm_fuses(size_t n, size_t k) { return n <= NORM_SCRATCH_COLUMNS && n <= block_columns_for(k); }

static inline __attribute__((always_inline)) void gemm_norm_body(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t first, size_t last, const int tile_rows,
    const int vectors, const int wide) {
  // The decoder's 256 columns as a constant, so that the loops over a row unroll.
  if (a->n == 256 && a->n <= block_columns_for(a->k)) {
    gemm_norm_fused_body(a, norm, first, last, tile_rows, vectors, 256, wide);
  } else if (sam_gemm_layer_norm_fuses(a->n, a->k)) {
    gemm_norm_fused_body(a, norm, first, last, tile_rows, vectors, a->n, wide);
  } else {
    gemm_norm_blocked_body(a, norm, first, last, tile_rows, vectors, wide);
  }
}

AVX512_TARGET static void gemm_norm_avx512(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t first, size_t last) {
  gemm_norm_body(a, norm, first, last, 12, 2, 1);
}

AVX2_TARGET static void gemm_norm_avx2(
    const sam_gemm_args *a, const sam_gemm_norm_args *norm, size_t first, size_t last) {
  gemm_norm_body(a, norm, first, last, 6, 1, 0);
}

void sam_gemm_layer_norm_rows(
    const sam_gemm_args *args, const sam_gemm_norm_args *norm, size_t first, size_t last) {
  if (first >= last || args->n == 0) return;
  if (sam_kernels_lanes() == 16) {
    gemm_norm_avx512(args, norm, first, last);
  } else {
    gemm_norm_avx2(args, norm, first, last);
  }
}
