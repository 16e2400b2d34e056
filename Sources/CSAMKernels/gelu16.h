// GELU on one 16-lane vector, shared by the elementwise kernel (gelu.c) and the GEMM's fused
// epilogue (gemm.c), so both give the same bits. The arithmetic is the one documented at
// SAMTensor's `gelu` (GELUSoftmax.swift).
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

static inline __attribute__((always_inline)) vfloat gelu16(vfloat x) {
  const vfloat half = SPLAT(0.5f);
  const vfloat one = SPLAT(1.0f);
  vfloat z = x * SPLAT(0.7071067811865475f);
  vfloat square_high = x * x;
  vfloat square_low = fma16(x, x, -square_high);
  vfloat abs_z = (vfloat)((vuint)z & 0x7FFFFFFFu);
  vfloat t = one / fma16(abs_z, SPLAT(0.47f), one);
  vfloat q = SPLAT(-0.05475620376415603f);
  q = fma16(q, t, SPLAT(0.30757896000482676f));
  q = fma16(q, t, SPLAT(-0.6529519042627112f));
  q = fma16(q, t, SPLAT(0.5780872923401721f));
  q = fma16(q, t, SPLAT(-0.21107117750097726f));
  q = fma16(q, t, SPLAT(0.2900179439250532f));
  q = fma16(q, t, SPLAT(0.20906287011225458f));
  q = fma16(q, t, SPLAT(0.269195876622356f));
  q = fma16(q, t, SPLAT(0.26482343891433124f));
  q = fma16(q, t, SPLAT(1.2905792121473614e-05f));
  vfloat exponent = -(square_high * half);
  vfloat gaussian = exp_nonpositive16(exponent) * fma16(square_low, -half, one);
  gaussian = select16(exponent < SPLAT(-87.33f), SPLAT(0.0f), gaussian);
  vfloat one_plus_erf = gaussian * q;
  one_plus_erf = select16(SPLAT(0.0f) <= z, SPLAT(2.0f) - one_plus_erf, one_plus_erf);
  return x * half * one_plus_erf;
}

#endif
