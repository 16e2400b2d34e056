// Hot elementwise kernels in C, compiled twice (AVX2 + FMA, and AVX-512) and chosen at run time
// by the CPU's features: the same binary runs on AVX2-only machines and uses 16-lane vectors
// where the CPU has them. Both versions run the same operations in the same order (FMA
// included), so they give the same bits.
#ifndef SAM_KERNELS_H
#define SAM_KERNELS_H

#include <stddef.h>

#include "sam_crc32.h"  // included here so that incremental builds see the module grow

#ifdef __cplusplus
extern "C" {
#endif

/// Which vector width the kernels use: 0 = automatic (AVX-512 when the CPU and OS support it),
/// 1 = force the AVX2 version, 2 = force AVX-512 (ignored when unsupported). For tests and
/// benchmarks; returns the width in lanes now in use (8 or 16).
int sam_kernels_set_isa(int choice);

/// Lanes of the vectors in use (8 = AVX2, 16 = AVX-512).
int sam_kernels_lanes(void);

/// out[i] = x[i] * (1 + erf(x[i] / sqrt(2))) / 2 (exact GELU, ~4e-7 relative); out may alias x.
void sam_gelu(float *out, const float *x, size_t count);

/// Output columns [first, last) of one output row of a 3x3 depthwise convolution (zero padding,
/// channels-last), for columns whose three input columns all lie inside the image:
/// out[ox, c] = bias[c] + sum over ky, kx of taps[ky * 3 + kx][c] * row_ky[ox * stride - padding + kx, c],
/// with top, middle, bottom the three input rows (a row of zeros where outside the image).
/// channels must be a multiple of 8; out points at the output row, taps is [9, channels].
void sam_depthwise3x3_inner(
    float *out, const float *top, const float *middle, const float *bottom, const float *taps,
    const float *bias, size_t channels, size_t first, size_t last, size_t stride, size_t padding);

#ifdef __cplusplus
}
#endif

#endif
