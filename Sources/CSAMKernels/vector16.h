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

// Lanes below `count` all ones, the others zero.
static inline __attribute__((always_inline)) vint lanes_below(size_t count) {
  const vint index = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  return index < (int32_t)(count < 16 ? count : 16);
}

// r[j] = the sum of the lanes of a[j], for 16 vectors at once: each step adds the two halves of
// pairs of vectors, so the lanes of every vector fold into one without any scalar work.
static inline __attribute__((always_inline)) vfloat sum_lanes_of_each(const vfloat a[16]) {
  vfloat t[8], u[4], w[2];
  // t[i]: lanes 0-7 fold a[2i], lanes 8-15 fold a[2i + 1].
  for (int i = 0; i < 8; i++) {
    const vfloat p = a[2 * i], q = a[2 * i + 1];
    t[i] = __builtin_shufflevector(p, q, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
           __builtin_shufflevector(p, q, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  }
  // u[i]: four lanes for each of a[4i] ... a[4i + 3], in order.
  for (int i = 0; i < 4; i++) {
    const vfloat p = t[2 * i], q = t[2 * i + 1];
    u[i] = __builtin_shufflevector(p, q, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           __builtin_shufflevector(p, q, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  }
  // w[i]: two lanes for each of a[8i] ... a[8i + 7], in order.
  for (int i = 0; i < 2; i++) {
    const vfloat p = u[2 * i], q = u[2 * i + 1];
    w[i] = __builtin_shufflevector(p, q, 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           __builtin_shufflevector(p, q, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  }
  return __builtin_shufflevector(w[0], w[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
         __builtin_shufflevector(w[0], w[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
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
