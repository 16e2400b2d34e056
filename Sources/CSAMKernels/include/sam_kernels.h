// Hot elementwise kernels in C, compiled twice (AVX2 + FMA, and AVX-512) and chosen at run time
// by the CPU's features: the same binary runs on AVX2-only machines and uses 16-lane vectors
// where the CPU has them. Both versions run the same operations in the same order (FMA
// included), so they give the same bits.
#ifndef SAM_KERNELS_H
#define SAM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "sam_crc32.h"  // included here so that incremental builds see the module grow
#include "sam_mask_runs.h"
#include "sam_thread_pool.h"

#ifdef __cplusplus
extern "C" {
#endif

/// Which vector width the kernels use: 0 = automatic (AVX-512 when the CPU and OS support it),
/// 1 = force the AVX2 version, 2 = force AVX-512 (ignored when unsupported). For tests and
/// benchmarks; returns the width in lanes now in use (8 or 16).
int sam_kernels_set_isa(int choice);

/// Lanes of the vectors in use (8 = AVX2, 16 = AVX-512).
int sam_kernels_lanes(void);

/// out[i] = x[i] * (1 + erf(x[i] / sqrt(2))) / 2 (exact GELU: within 2.25e-7 relative for
/// x >= -3, 5.5e-9 absolute below); out may alias x.
void sam_gelu(float *out, const float *x, size_t count);

/// Output columns [first, last) of one output row of a 3x3 depthwise convolution (zero padding,
/// channels-last), for columns whose three input columns all lie inside the image:
/// out[ox, c] = bias[c] + sum over ky, kx of taps[ky * 3 + kx][c] * row_ky[ox * stride - padding + kx, c],
/// with top, middle, bottom the three input rows (a row of zeros where outside the image).
/// channels must be a multiple of 8; out points at the output row, taps is [9, channels].
void sam_depthwise3x3_inner(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding);

/// Attention scores for a block of `rows` (1 to 4) query rows:
/// scores[r * padded + j] = sum over p < depth of q[r * depth + p] * kT[p * padded + j] for
/// j < padded (a multiple of 8; kT is the transposed keys, zero in its padding columns).
void sam_attention_scores(
    float *scores, const float *q, const float *kT, size_t rows, size_t depth, size_t padded);

/// Attention output for a block of `rows` (1 to 4) query rows:
/// out[r * value_depth + c] = sum over j < keys of probabilities[r * padded + j] * v[j * value_depth + c]
/// for c < value_depth (a multiple of 8).
void sam_attention_values(
    float *out, const float *probabilities, const float *v, size_t rows, size_t keys, size_t padded,
    size_t value_depth);

/// Floats of scratch `sam_window_attention` needs for a window of `tokens` tokens.
size_t sam_window_attention_scratch(size_t tokens, size_t heads, size_t depth);

/// Windowed multi-head attention over one window of `tokens` tokens (TinyViT): for each token t
/// whose grid row rows[t] >= 0 (a real token; -1 marks a padded one) and each head h, writes depth
/// values to out + rows[t] * ldo + h * depth:
///   sum over j < tokens of softmax_j(q_t . k_j * scale + bias[(h * tokens + t) * tokens + j]) v_j,
/// where token j's q, k and v for head h are depth values each at column (3 h) depth,
/// (3 h + 1) depth and (3 h + 2) depth of grid + rows[j] * ldg (of `padding` for a padded token).
/// depth must be a multiple of 8; scratch holds `sam_window_attention_scratch(...)` floats.
void sam_window_attention(
    float *out, size_t ldo, const float *grid, size_t ldg, const float *padding, const ptrdiff_t *rows,
    const float *bias, size_t tokens, size_t heads, size_t depth, float scale, float *scratch);

/// Floats of a weight [n, k] packed by `sam_gemm_pack_weight`: n rounded up to 32, times k.
size_t sam_gemm_packed_count(size_t n, size_t k);

/// Packs weight [n, k] (row-major, as nn.Linear stores it) into panels of 32 output columns:
/// packed[(j / 32) * 32 * k + p * 32 + j % 32] = weight[j * k + p], zero for j >= n.
void sam_gemm_pack_weight(float *packed, const float *weight, size_t n, size_t k);

/// Packs weight_t [k, n] (the transposed weight, row-major: weight_t[p * n + j] = w[j, p]) in the
/// layout of `sam_gemm_pack_weight`.
void sam_gemm_pack_weight_transposed(float *packed, const float *weight_t, size_t n, size_t k);

/// One product of `sam_gemm_packed_rows`: out[i * ldo + j] =
/// act(sum over p < k of x[i * ldx + p] * w[j, p] + bias[j] + residual[i * ldr + j]) for j < n,
/// with w packed by `sam_gemm_pack_weight`, bias and residual optional (NULL), act = GELU when
/// `gelu` is nonzero (the arithmetic of `sam_gelu`). With `row_scale` (optional, needs a
/// residual) the residual term is row_scale[i] * residual[i * ldr + j], one fused multiply-add
/// onto the sum and bias. out must not overlap x or packed.
typedef struct {
  float *out;
  size_t ldo;
  const float *x;
  size_t ldx;
  const float *packed;
  const float *bias;
  const float *residual;
  size_t ldr;
  int gelu;
  size_t n;
  size_t k;
  const float *row_scale;
} sam_gemm_args;

/// Output rows [first, last) of the product `args` (one thread's share).
void sam_gemm_packed_rows(const sam_gemm_args *args, size_t first, size_t last);

/// Rows of the kernel's register tile (12 with AVX-512, 6 with AVX2): thread shares that are
/// multiples of it leave no partial tiles.
size_t sam_gemm_tile_rows(void);

/// Where `sam_gemm_layer_norm_rows` puts its results, and the norm it applies: the norm's weight
/// and bias [n] and its eps; offset rows (row i at offset + i * ldf) added to the normalized rows
/// into shifted (row i at shifted + i * lds); each row's mean and 1 / sqrt(variance + eps) into
/// mean[i] and inverse[i]. shifted must not overlap the product's out or inputs.
/// Optionally the shifted rows also go through a second packed weight, `probe` (n inputs, probe_n
/// outputs, packed as `sam_gemm_pack_weight` packs): probe_out[i * ldp + j] is what
/// `sam_gemm_packed_rows` gives for x = the shifted rows (no bias, residual or GELU), the same
/// bits, computed while the rows are in cache. shifted may be NULL (the shifted rows are not
/// stored), with or without a probe, if `sam_gemm_layer_norm_fuses(n, k)`.
typedef struct {
  const float *weight;
  const float *bias;
  float eps;
  const float *offset;
  size_t ldf;
  float *shifted;
  size_t lds;
  float *mean;
  float *inverse;
  const float *probe;
  size_t probe_n;
  float *probe_out;
  size_t ldp;
} sam_gemm_norm_args;

/// Whether `sam_gemm_layer_norm_rows` normalizes each tile's rows as soon as they are complete for
/// n output columns of k inputs (else it stores the product in `out` first).
int sam_gemm_layer_norm_fuses(size_t n, size_t k);

/// Rows [first, last) of LayerNorm(the product `args`) (one thread's share): with y_i row i of
/// the product of `sam_gemm_packed_rows` (bias, residual, GELU as `args` asks), mean_i and
/// variance_i over its n values (the biased variance, in two passes as torch computes it),
/// out[i * ldo + j] = (y_i[j] - mean_i) * inverse_i * weight[j] + bias[j] with
/// inverse_i = 1 / sqrt(variance_i + eps), and shifted[i * lds + j] = out[i * ldo + j] +
/// offset[i * ldf + j]. When the weight's n columns fit one column block of the GEMM and at most
/// 512 of them (256 columns of up to 192 inputs), each tile's rows are normalized as soon as they
/// are complete and the product itself is never stored; other shapes store it in `out` first
/// (the same bits). A row's results do not depend on how the rows are shared among threads.
void sam_gemm_layer_norm_rows(
    const sam_gemm_args *args, const sam_gemm_norm_args *norm, size_t first, size_t last);

/// LayerNorm over the channels of each pixel, then GELU (the arithmetic of `sam_gelu`), for
/// `pixels` pixels of `channels` values: out[i * channels + c] =
/// gelu((x[i * channels + c] - mean_i) / sqrt(variance_i + eps) * weight[c] + bias[c]), with the
/// mean and the (biased) variance over pixel i's channels, in two passes as torch computes them.
/// out may alias x.
void sam_layer_norm_gelu(
    float *out, const float *x, const float *weight, const float *bias, size_t pixels, size_t channels,
    float eps);

/// The mask decoder's products for one row of its input grid: each of `width` input pixels x was
/// upscaled 4x into a 4x4 block, `upscaled` [width, dy, dx, dy2, dx2, channels] (2 x 2 x 2 x 2
/// pixels per input pixel, as the two 2x2 stride-2 transposed convolutions give them), and
/// out[m * plane + (2 dy + dy2) * row_stride + 4 x + 2 dx + dx2] =
/// sum over c of upscaled[x, dy, dx, dy2, dx2, c] * vectors[m * channels + c], for m < masks.
void sam_upscaling_products(
    float *out, size_t row_stride, size_t plane, const float *upscaled, const float *vectors, size_t width,
    size_t channels, size_t masks);

/// The coefficient rows of a first stage given as a per-pixel scaled row plus a low-rank product
/// (two LayerNorm'd rank updates, `LowRankFirstStage` in SAMTensor): for each of `rows` rows i,
/// with beta = inverse2[i] and alpha = inverse1[i] * beta, row i of out (r1 + r2 + 4 values) is
///   alpha a1[i, 0..<r1], beta a2[i, 0..<r2], alpha, -alpha mean1[i], beta, -beta mean2[i]
/// and scales[i] = alpha.
void sam_low_rank_coefficients(
    float *out, float *scales, const float *a1, size_t r1, const float *a2, size_t r2, const float *mean1,
    const float *inverse1, const float *mean2, const float *inverse2, size_t rows);

/// One source row resized horizontally (a bilinear resize's first pass):
/// out[j] = first_weight[j] * source[first[j]] + second_weight[j] * source[second[j]] for j < count,
/// both products rounded before the sum (no FMA), as torch computes it. source holds source_count
/// values; first and second are nondecreasing indices below source_count.
void sam_resize_row(
    float *out, const float *source, size_t source_count, const int32_t *first, const int32_t *second,
    const float *first_weight, const float *second_weight, size_t count);

/// out[j] = top_weight * top[j] + bottom_weight * bottom[j] for j < count (no FMA).
void sam_blend_rows(
    float *out, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count);

/// The blend of `sam_blend_rows` thresholded without being stored: mask[j] = 1 where it is
/// > mask_level, else 0; *high and *low = how many are > high_level and > low_level (NaN: none).
void sam_blend_threshold(
    uint8_t *mask, const float *top, const float *bottom, float top_weight, float bottom_weight, size_t count,
    float mask_level, float high_level, float low_level, size_t *high, size_t *low);

/// Column maxima of x [rows, columns] (row stride ld), folded into maxima[columns]:
/// maxima[c] = max(maxima[c], x[r * ld + c] for every r).
void sam_column_max(float *maxima, const float *x, size_t ld, size_t rows, size_t columns);

/// x[r * ld + c] = e^(x[r * ld + c] - maxima[c]) in place (the vector exp of softmax), and
/// sums[c] = the sum of those values over r = 0, 1, ..., rows - 1 in order. Needs x <= maxima.
void sam_column_exp(float *x, size_t ld, size_t rows, size_t columns, const float *maxima, float *sums);

/// out[i * ldo + j] = sum over p = 0, 1, ..., k - 1 of a[p * lda + i] * b[p * ldb + j] (one
/// multiply-add chain in that order) for i < m and first_column <= j < last_column: a's transpose
/// times b, both read in place. Needs k > 0 and first_column, last_column multiples of 16.
void sam_transposed_product(
    float *out, size_t ldo, const float *a, size_t lda, size_t m, const float *b, size_t ldb, size_t k,
    size_t first_column, size_t last_column);

/// Scores of rows [first, last) against `tokens` tokens, head by head, from the rows' values
/// stored transposed in blocks of 16 rows: xt[(r / 16) * block + c * ldxt + r % 16] is row r's
/// value c, for c < heads * depth (block = 16 and ldxt >= rows: the plain transpose). keys [tokens,
/// heads * depth]. out[r * ldo + t * heads + h] = sum over j < depth of xt[(h * depth + j) * ldxt + r]
/// * keys[t * heads * depth + h * depth + j], one multiply-add chain over j in order from zero.
/// Needs depth <= 16 and heads <= 256.
void sam_head_scores(
    float *out, size_t ldo, const float *xt, size_t ldxt, size_t block, size_t first, size_t last, const float *keys,
    size_t tokens, size_t heads, size_t depth);

/// Softmax over t of x[r * 8 * length + t * 8 + s] for each row r < rows and lane s < 8, in
/// place (the image-to-token attention's scores: per image row, `length` tokens x 8 heads). The
/// arithmetic of SAMTensor's `softmaxOverStridedGroups` (maximum, e^(x - maximum), times 1 / sum).
void sam_softmax_lanes8(float *x, size_t rows, size_t length);

#ifdef __cplusplus
}
#endif

#endif
