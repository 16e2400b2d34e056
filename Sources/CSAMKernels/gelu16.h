// GELU on one 16-lane vector, shared by the elementwise kernel (gelu.c), the GEMM's fused
// epilogue (gemm.c) and the decoder's LayerNorm + GELU (upscaling.c), so all give the same bits;
// the arithmetic is described at `gelu16` and at SAMTensor's `gelu` (GELUSoftmax.swift). Also the
// vector exp of the attention's softmax (attention.c).
#ifndef SAM_GELU16_H
#define SAM_GELU16_H

#include "vector16.h"

// e^x for x <= 0: 2^n * p(r), n = round(x / ln 2), degree-7 Taylor polynomial; 0 below -87.33.
static inline __attribute__((always_inline)) vfloat exp_nonpositive16(vfloat x) {
  const vfloat magic = SPLAT(12582912.0f);
  vfloat shifted = fma16(x, SPLAT(1.44269504f), magic);
  vfloat n = shifted - magic;
  vfloat r = fma16(n, SPLAT(-0.693145751953125f), x);
  r = fma16(n, SPLAT(-1.428606765330187e-6f), r);
  vfloat p = SPLAT(1.0f / 5040);
  p = fma16(p, r, SPLAT(1.0f / 720));
  p = fma16(p, r, SPLAT(1.0f / 120));
  p = fma16(p, r, SPLAT(1.0f / 24));
  p = fma16(p, r, SPLAT(1.0f / 6));
  p = fma16(p, r, SPLAT(0.5f));
  p = fma16(p, r, SPLAT(1.0f));
  p = fma16(p, r, SPLAT(1.0f));
  vint exponent = ((vint)shifted - 0x4B400000 + 127) << 23;
  vfloat result = p * (vfloat)exponent;
  return select16(x < SPLAT(-87.33f), SPLAT(0.0f), result);
}

// GELU(x) = x Phi(x), Phi the standard normal CDF, written as max(x, 0) - S(|x|) with
// S(a) = a Phi(-a): for x >= 0, x Phi(x) = x - x Phi(-x); for x < 0, x Phi(x) = -|x| Phi(-|x|).
// Neither side cancels: S <= x / 2 where it is subtracted from x, and S alone is the result for
// negative x. S is a degree-7 polynomial in t on each of 7 intervals of a = |x|, a = (k + t) /
// GELU_TAIL_SCALE, k = round(a * GELU_TAIL_SCALE), |t| <= 1/2 (width 0.925, up to a = 6.01),
// whose coefficients are picked per lane by a permute (`lookup8`), and 0 beyond (the eighth
// interval, all zeros, which the cap on a also selects for infinities and NaN). No divide, no exp:
// 8 permutes, 9 multiply-adds and 5 other operations per vector: in a loop over values in L1,
// 2.5x (AVX-512) and 3x (AVX2) as fast as the erfc-and-exp form this replaced.
//
// Measured over every float32 in [-20, 20] against 0.5 x erfc(-x / sqrt(2)) in double precision:
// 2.25e-7 relative at most for x >= -3 (where |GELU| >= 1e-30; the fit's 1e-7 plus float32
// rounding), 5.5e-9 absolute at most below -3 (at x = -6.01, returned as 0); the erfc-and-exp form
// this replaced: 4.64e-7 and 1.6e-9. AVX2 and AVX-512 gave the same bits for every one of them.
// S(0) = 0 exactly, so GELU(-0) = -0 and tiny x keep their relative accuracy; +inf -> +inf,
// -inf -> 0 (the limit; torch gives NaN there), NaN -> NaN, x > 6.01 -> x exactly,
// x < -6.01 -> 0.
//
// Coefficients: Scripts/fit_gelu.py, which prints this table (weighted minimax fit in double).
#define GELU_TAIL_SCALE 1.081081033e+00f
#define GELU_TAIL_CAP 6.243750095e+00f
static const float gelu_tail_coefficients[8][8] = {
    {1.351086772e-03f, 9.814571822e-04f, -8.007350843e-04f, 2.085281885e-04f, 2.210303683e-05f, -9.943108125e-06f, -6.754970059e-07f, 0.000000000e+00f},  // t^7
    {-7.496565580e-03f, 3.072179388e-03f, 6.390466588e-04f, -8.583448944e-04f, 8.184090984e-05f, 2.891618351e-05f, 1.250027708e-06f, 0.000000000e+00f},  // t^6
    {6.200975622e-04f, -1.264092792e-02f, 5.951842759e-03f, 9.869144997e-04f, -4.870042903e-04f, -5.665824210e-05f, -1.593703814e-06f, 0.000000000e+00f},  // t^5
    {4.850593209e-02f, -9.940460324e-03f, -1.813135296e-02f, 2.431040863e-03f, 1.240044949e-03f, 8.578419511e-05f, 1.814892698e-06f, 0.000000000e+00f},  // t^4
    {2.467865124e-05f, 9.978329390e-02f, 1.015778165e-02f, -1.149628125e-02f, -2.008866053e-03f, -9.587335808e-05f, -1.604219733e-06f, 0.000000000e+00f},  // t^3
    {-3.413464725e-01f, -1.273330450e-01f, 4.385644943e-02f, 2.069748379e-02f, 2.124305116e-03f, 7.497015031e-05f, 1.007856667e-06f, 0.000000000e+00f},  // t^2
    {4.625000358e-01f, -5.836252496e-02f, -9.357604384e-02f, -1.923130080e-02f, -1.354096341e-03f, -3.692623432e-05f, -4.062000301e-07f, 0.000000000e+00f},  // t^1
    {0.000000000e+00f, 1.641717404e-01f, 5.949002132e-02f, 7.659234107e-03f, 3.988593526e-04f, 8.662515029e-06f, 7.926442436e-08f, 0.000000000e+00f},  // t^0
};

// `wide`: as `lookup8` (nonzero when compiled for AVX-512); both give the same bits.
static inline __attribute__((always_inline)) vfloat gelu16(vfloat x, const int wide) {
  const vfloat magic = SPLAT(12582912.0f);  // 1.5 * 2^23: adding it rounds to an integer
  vfloat a = (vfloat)((vuint)x & 0x7FFFFFFFu);
  a = select16(a < SPLAT(GELU_TAIL_CAP), a, SPLAT(GELU_TAIL_CAP));  // NaN -> the cap, too
  const vfloat shifted = fma16(a, SPLAT(GELU_TAIL_SCALE), magic);
  const vint k = (vint)shifted;  // its low bits are k, the interval (lookup8 reads the low 3)
  const vfloat t = fma16(a, SPLAT(GELU_TAIL_SCALE), magic - shifted);
  vfloat tail = lookup8(gelu_tail_coefficients[0], k, wide);
#pragma clang loop unroll(full)
  for (int power = 1; power < 8; power++) {
    tail = fma16(tail, t, lookup8(gelu_tail_coefficients[power], k, wide));
  }
  // x < 0 ? 0 : x keeps NaN (and -0) from x.
  const vfloat positive_part = select16(x < SPLAT(0.0f), SPLAT(0.0f), x);
  return positive_part - tail;
}

#endif
