// Vector helpers shared by the C kernels: 16-lane (and 8-lane) float vectors written with
// clang/GCC vector extensions, so that one source compiles to AVX-512 or to AVX2 by the target
// attribute of the function it is inlined into.
#ifndef SAM_VECTOR16_H
#define SAM_VECTOR16_H

#include <stdint.h>
#include <string.h>

// 16-lane vectors passed between always-inlined helpers: the ABI of such calls never applies.
#pragma clang diagnostic ignored "-Wpsabi"
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vfloat __attribute__((vector_size(64)));
typedef int32_t vint __attribute__((vector_size(64)));
typedef uint32_t vuint __attribute__((vector_size(64)));

#define SPLAT(value) ((vfloat){value, value, value, value, value, value, value, value, \
                               value, value, value, value, value, value, value, value})

static inline __attribute__((always_inline)) vfloat load16(const float *p) {
  vfloat v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline __attribute__((always_inline)) void store16(float *p, vfloat v) { memcpy(p, &v, sizeof v); }

// The first `count` lanes (all 16 when count >= 16) from p, zero in the others.
static inline __attribute__((always_inline)) vfloat load16_part(const float *p, size_t count) {
  if (count >= 16) return load16(p);
  float lanes[16] = {0};
  memcpy(lanes, p, count * sizeof(float));
  return load16(lanes);
}

// The first `count` lanes of v (all 16 when count >= 16) to p.
static inline __attribute__((always_inline)) void store16_part(float *p, vfloat v, size_t count) {
  if (count >= 16) {
    store16(p, v);
    return;
  }
  float lanes[16];
  store16(lanes, v);
  memcpy(p, lanes, count * sizeof(float));
}

static inline __attribute__((always_inline)) vfloat fma16(vfloat a, vfloat b, vfloat c) {
  return __builtin_elementwise_fma(a, b, c);
}

// mask ? a : b, lane by lane (mask lanes are all ones or all zeros).
static inline __attribute__((always_inline)) vfloat select16(vint mask, vfloat a, vfloat b) {
  return (vfloat)(((vint)a & mask) | ((vint)b & ~mask));
}

typedef float vfloat8 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) vfloat8 load8(const float *p) {
  vfloat8 v;
  memcpy(&v, p, sizeof v);
  return v;
}

static inline __attribute__((always_inline)) void store8(float *p, vfloat8 v) { memcpy(p, &v, sizeof v); }

static inline __attribute__((always_inline)) vfloat8 fma8(vfloat8 a, vfloat8 b, vfloat8 c) {
  return __builtin_elementwise_fma(a, b, c);
}

#if defined(__x86_64__)
#define AVX512_TARGET __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define AVX2_TARGET __attribute__((target("avx2,fma")))
#else
#define AVX512_TARGET
#define AVX2_TARGET
#endif

// table[index & 7] lane by lane, from an 8-entry table: a permute by a variable index, which the
// vector extensions cannot express, so the ISA is a parameter: `wide` is nonzero in code compiled
// for AVX-512 (AVX512_TARGET: one vpermps of a zmm) and zero for AVX2 (one per ymm half). Pass a
// constant, so that the other branch compiles away. Both give the same values.
//
// The x86 versions are plain `static inline`, not always_inline, and take pointers: the kernels'
// shared bodies that call `lookup8` are compiled without AVX-512, where clang refuses an
// always_inline AVX-512 callee and vector arguments of 64 bytes change the ABI. Once a body is
// inlined into its AVX512_TARGET or AVX2_TARGET function, LLVM inlines these too (checked in the
// disassembly: no calls remain) and the pointers disappear.
#if defined(__x86_64__)
#include <immintrin.h>

AVX512_TARGET static inline void lookup8_avx512(vfloat *out, const float *table, const vint *index) {
  __m512i i;
  memcpy(&i, index, sizeof i);
  const __m512 r = _mm512_permutexvar_ps(i, _mm512_broadcast_f32x8(_mm256_loadu_ps(table)));
  memcpy(out, &r, sizeof r);
}

AVX2_TARGET static inline void lookup8_avx2(vfloat *out, const float *table, const vint *index) {
  const __m256 entries = _mm256_loadu_ps(table);
  for (int half = 0; half < 2; half++) {
    __m256i i;
    memcpy(&i, (const int32_t *)index + 8 * half, sizeof i);
    const __m256 r = _mm256_permutevar8x32_ps(entries, i);
    memcpy((float *)out + 8 * half, &r, sizeof r);
  }
}
#endif

static inline __attribute__((always_inline)) vfloat lookup8(const float table[8], vint index, const int wide) {
  vfloat r;
#if defined(__x86_64__)
  if (wide) {
    lookup8_avx512(&r, table, &index);
  } else {
    lookup8_avx2(&r, table, &index);
  }
#else
  (void)wide;
  for (int i = 0; i < 16; i++) r[i] = table[index[i] & 7];
#endif
  return r;
}


#endif
