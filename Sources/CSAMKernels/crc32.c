// CRC-32 of zip entries: checking every checkpoint byte must cost less than reading it.
// Slicing-by-8 runs at ~1 byte per cycle; folding 64 bytes at a time with carry-less
// multiplication (Intel's "Fast CRC Computation for Generic Polynomials Using PCLMULQDQ",
// derived here for our bit order) runs at several bytes per cycle.
#include "sam_crc32.h"

#include <stdatomic.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// tables[k][b]: the CRC register after byte b followed by k zero bytes.
static uint32_t tables[8][256];
static atomic_int tables_ready = 0;

static void build_tables(void) {
  for (uint32_t byte = 0; byte < 256; byte++) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    tables[0][byte] = crc;
  }
  for (int slice = 1; slice < 8; slice++) {
    for (int byte = 0; byte < 256; byte++) {
      uint32_t previous = tables[slice - 1][byte];
      tables[slice][byte] = tables[0][previous & 0xFF] ^ (previous >> 8);
    }
  }
}

static void ensure_tables(void) {
  // Building twice from two threads writes the same values; the flag only saves the work.
  if (!atomic_load_explicit(&tables_ready, memory_order_acquire)) {
    build_tables();
    atomic_store_explicit(&tables_ready, 1, memory_order_release);
  }
}

// The raw register (no initial or final inversion) after `count` more bytes.
static uint32_t update_tables(uint32_t crc, const uint8_t *bytes, size_t count) {
  while (count >= 8) {
    uint32_t low, high;
    memcpy(&low, bytes, 4);
    memcpy(&high, bytes + 4, 4);
    low ^= crc;
    crc = tables[7][low & 0xFF] ^ tables[6][(low >> 8) & 0xFF] ^ tables[5][(low >> 16) & 0xFF] ^
          tables[4][low >> 24] ^ tables[3][high & 0xFF] ^ tables[2][(high >> 8) & 0xFF] ^
          tables[1][(high >> 16) & 0xFF] ^ tables[0][high >> 24];
    bytes += 8;
    count -= 8;
  }
  while (count-- > 0) crc = tables[0][(crc ^ *bytes++) & 0xFF] ^ (crc >> 8);
  return crc;
}

uint32_t sam_crc32_tables(uint32_t crc, const void *bytes, size_t count) {
  ensure_tables();
  return ~update_tables(~crc, bytes, count);
}

#if defined(__x86_64__)
// Bit order: a 16-byte block loaded little-endian is a polynomial whose bit k (byte k/8, bit
// k%8) is the coefficient of x^(127-k), as the reflected CRC reads bits. Carry-less multiplying
// a 64-bit lane by a 64-bit constant K whose bit j stands for x^(63-j) gives, read the same way
// in 128 bits, lane * K * x. Folding a block forward by D bits (multiplying by x^D modulo the
// CRC polynomial P) therefore multiplies its first lane (worth x^64 in the block) by
// x^(D+63) mod P and its second lane by x^(D-1) mod P. The constants below are those
// remainders, with coefficient d stored at bit 63-d.
#define FOLD_512_HIGH 0x653d982200000000ull  // x^575 mod P
#define FOLD_512_LOW 0xcad38e8f00000000ull   // x^511 mod P
#define FOLD_128_HIGH 0x65673b4600000000ull  // x^191 mod P
#define FOLD_128_LOW 0x9ba54c6f00000000ull   // x^127 mod P

#define PCLMUL_TARGET __attribute__((target("pclmul,sse4.1")))

PCLMUL_TARGET static inline __m128i fold(__m128i block, __m128i constants) {
  return _mm_xor_si128(
      _mm_clmulepi64_si128(block, constants, 0x00), _mm_clmulepi64_si128(block, constants, 0x11));
}

// Needs count >= 64. Folds the data into one 16-byte block congruent to it (modulo P, at the
// right degree), then finishes that block and the tail with the tables.
PCLMUL_TARGET static uint32_t update_folding(uint32_t crc, const uint8_t *bytes, size_t count) {
  const __m128i by512 = _mm_set_epi64x((long long)FOLD_512_LOW, (long long)FOLD_512_HIGH);
  const __m128i by128 = _mm_set_epi64x((long long)FOLD_128_LOW, (long long)FOLD_128_HIGH);
  // The incoming register acts as if XORed into the first four bytes.
  __m128i x0 = _mm_xor_si128(_mm_loadu_si128((const __m128i *)bytes), _mm_cvtsi32_si128((int)crc));
  __m128i x1 = _mm_loadu_si128((const __m128i *)(bytes + 16));
  __m128i x2 = _mm_loadu_si128((const __m128i *)(bytes + 32));
  __m128i x3 = _mm_loadu_si128((const __m128i *)(bytes + 48));
  bytes += 64;
  count -= 64;
  while (count >= 64) {
    x0 = _mm_xor_si128(fold(x0, by512), _mm_loadu_si128((const __m128i *)bytes));
    x1 = _mm_xor_si128(fold(x1, by512), _mm_loadu_si128((const __m128i *)(bytes + 16)));
    x2 = _mm_xor_si128(fold(x2, by512), _mm_loadu_si128((const __m128i *)(bytes + 32)));
    x3 = _mm_xor_si128(fold(x3, by512), _mm_loadu_si128((const __m128i *)(bytes + 48)));
    bytes += 64;
    count -= 64;
  }
  x1 = _mm_xor_si128(fold(x0, by128), x1);
  x2 = _mm_xor_si128(fold(x1, by128), x2);
  __m128i x = _mm_xor_si128(fold(x2, by128), x3);
  while (count >= 16) {
    x = _mm_xor_si128(fold(x, by128), _mm_loadu_si128((const __m128i *)bytes));
    bytes += 16;
    count -= 16;
  }
  uint8_t folded[16];
  _mm_storeu_si128((__m128i *)folded, x);
  return update_tables(update_tables(0, folded, 16), bytes, count);
}

// The same folding on 512-bit registers (VPCLMULQDQ, with AVX-512): each register holds four
// 16-byte blocks, four registers hold 256 bytes, so each block folds forward by 2048 bits; the
// four registers then fold into one (512 bits apart), whose four blocks go to the loop above.
#define FOLD_2048_HIGH 0x7cc8e1e700000000ull  // x^2111 mod P
#define FOLD_2048_LOW 0x03f9f86300000000ull   // x^2047 mod P

#define VPCLMUL_TARGET __attribute__((target("avx512f,vpclmulqdq,pclmul,sse4.1")))

VPCLMUL_TARGET static inline __m512i fold_wide(__m512i blocks, __m512i constants) {
  return _mm512_xor_si512(
      _mm512_clmulepi64_epi128(blocks, constants, 0x00), _mm512_clmulepi64_epi128(blocks, constants, 0x11));
}

// Needs count >= 256.
VPCLMUL_TARGET static uint32_t update_folding_wide(uint32_t crc, const uint8_t *bytes, size_t count) {
  const __m512i by2048 = _mm512_set_epi64(
      (long long)FOLD_2048_LOW, (long long)FOLD_2048_HIGH, (long long)FOLD_2048_LOW, (long long)FOLD_2048_HIGH,
      (long long)FOLD_2048_LOW, (long long)FOLD_2048_HIGH, (long long)FOLD_2048_LOW, (long long)FOLD_2048_HIGH);
  const __m512i by512 = _mm512_set_epi64(
      (long long)FOLD_512_LOW, (long long)FOLD_512_HIGH, (long long)FOLD_512_LOW, (long long)FOLD_512_HIGH,
      (long long)FOLD_512_LOW, (long long)FOLD_512_HIGH, (long long)FOLD_512_LOW, (long long)FOLD_512_HIGH);
  __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(bytes), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)crc)));
  __m512i x1 = _mm512_loadu_si512(bytes + 64);
  __m512i x2 = _mm512_loadu_si512(bytes + 128);
  __m512i x3 = _mm512_loadu_si512(bytes + 192);
  bytes += 256;
  count -= 256;
  while (count >= 256) {
    x0 = _mm512_xor_si512(fold_wide(x0, by2048), _mm512_loadu_si512(bytes));
    x1 = _mm512_xor_si512(fold_wide(x1, by2048), _mm512_loadu_si512(bytes + 64));
    x2 = _mm512_xor_si512(fold_wide(x2, by2048), _mm512_loadu_si512(bytes + 128));
    x3 = _mm512_xor_si512(fold_wide(x3, by2048), _mm512_loadu_si512(bytes + 192));
    bytes += 256;
    count -= 256;
  }
  x1 = _mm512_xor_si512(fold_wide(x0, by512), x1);
  x2 = _mm512_xor_si512(fold_wide(x1, by512), x2);
  __m512i x = _mm512_xor_si512(fold_wide(x2, by512), x3);
  // The 64 bytes of x, then the rest: congruent to the whole, CRC'd from a zero register.
  uint8_t folded[64];
  _mm512_storeu_si512(folded, x);
  return count >= 64 ? update_folding(update_folding(0, folded, 64), bytes, count)
                     : update_tables(update_folding(0, folded, 64), bytes, count);
}

static int cpu_has_vpclmul(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("vpclmulqdq") && __builtin_cpu_supports("avx512f");
}

static int cpu_has_pclmul(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
}
#endif

uint32_t sam_crc32(uint32_t crc, const void *bytes, size_t count) {
  ensure_tables();
#if defined(__x86_64__)
  // 0: tables only, 1: 128-bit folding, 2: 512-bit folding too; -1: not yet asked.
  static atomic_int level = -1;
  int has = atomic_load_explicit(&level, memory_order_relaxed);
  if (has < 0) {
    has = cpu_has_pclmul() ? (cpu_has_vpclmul() ? 2 : 1) : 0;
    atomic_store_explicit(&level, has, memory_order_relaxed);
  }
  if (has == 2 && count >= 256) return ~update_folding_wide(~crc, bytes, count);
  if (has >= 1 && count >= 64) return ~update_folding(~crc, bytes, count);
#endif
  return ~update_tables(~crc, bytes, count);
}
