// COCO RLE's hot loops (sam_mask_runs.h). A mask's runs are counted in column-major order, but the
// mask is stored by rows: walking it by columns would read one byte per cache line. Instead each
// block of 64 rows x 64 columns is packed into 64 words of row bits (one vector test per 64
// bytes), transposed into 64 words of column bits in registers, and stored by columns. The runs
// end where a bit differs from the one before it, found 64 rows at a time with XOR and counted
// off with trailing-zero counts, so that part grows with the number of runs, not of pixels.
#include "sam_mask_runs.h"

#include <string.h>

#include "sam_kernels.h"
#include "vector16.h"

typedef uint8_t vbyte64 __attribute__((vector_size(64)));
typedef _Bool vbool64 __attribute__((ext_vector_type(64)));

// Bits of `count` <= 64 bytes of a row: bit c set iff row[c] != 0. One vector test and mask
// (AVX-512: vptestmb; AVX2: compares and byte masks), as the caller's target compiles it.
static inline __attribute__((always_inline)) uint64_t row_bits(const uint8_t *row, size_t count) {
  vbyte64 bytes;
  if (count >= 64) {
    memcpy(&bytes, row, 64);
  } else {
    memset(&bytes, 0, sizeof bytes);
    memcpy(&bytes, row, count);
  }
  const vbool64 set = __builtin_convertvector(bytes != 0, vbool64);
  uint64_t bits;
  memcpy(&bits, &set, sizeof bits);
  return bits;
}

// The 64 x 64 bit matrix block[r] bit c transposed in place (block[c] bit r): six rounds that swap
// the off-diagonal halves of 32-, 16-, ..., 1-bit squares.
static inline __attribute__((always_inline)) void transpose64(uint64_t *block) {
  uint64_t mask = 0x00000000FFFFFFFFull;
  for (unsigned j = 32; j != 0; j >>= 1, mask ^= mask << j) {
    for (unsigned k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((block[k] >> j) ^ block[k | j]) & mask;
      block[k] ^= t << j;
      block[k | j] ^= t;
    }
  }
}

static inline __attribute__((always_inline)) void column_bits_body(
    uint64_t *columns, const uint8_t *pixels, size_t width, size_t height, size_t first, size_t last) {
  const size_t words = (height + 63) / 64;
  for (size_t w = 0; w < words; w++) {
    const size_t rows = height - 64 * w < 64 ? height - 64 * w : 64;
    for (size_t x0 = first; x0 < last; x0 += 64) {
      const size_t count = last - x0 < 64 ? last - x0 : 64;
      uint64_t block[64];
      for (size_t r = 0; r < 64; r++) {
        const uint8_t *row = pixels + (64 * w + r) * width + x0;
        block[r] = r < rows ? row_bits(row, count) : 0;
      }
      transpose64(block);
      for (size_t c = 0; c < count; c++) columns[(x0 + c) * words + w] = block[c];
    }
  }
}

#if defined(__x86_64__)
AVX512_TARGET static void column_bits_avx512(
    uint64_t *columns, const uint8_t *pixels, size_t width, size_t height, size_t first, size_t last) {
  column_bits_body(columns, pixels, width, height, first, last);
}

AVX2_TARGET static void column_bits_avx2(
    uint64_t *columns, const uint8_t *pixels, size_t width, size_t height, size_t first, size_t last) {
  column_bits_body(columns, pixels, width, height, first, last);
}
#endif

void sam_mask_column_bits_range(
    uint64_t *columns, const uint8_t *pixels, size_t width, size_t height, size_t first, size_t last) {
#if defined(__x86_64__)
  if (sam_kernels_lanes() == 16) {
    column_bits_avx512(columns, pixels, width, height, first, last);
  } else {
    column_bits_avx2(columns, pixels, width, height, first, last);
  }
#else
  column_bits_body(columns, pixels, width, height, first, last);
#endif
}

// Bit i set where row 64 w + i of a column differs from the pixel before it in column-major
// order (`previous`: that pixel's bit), for the `valid` rows of the word.
static inline __attribute__((always_inline)) uint64_t changes_of(uint64_t word, uint64_t previous, size_t valid) {
  const uint64_t valid_mask = valid == 64 ? ~0ull : ((1ull << valid) - 1);
  return (word ^ ((word << 1) | previous)) & valid_mask;
}

size_t sam_mask_run_count_range(
    const uint64_t *columns, size_t height, size_t first, size_t last, uint64_t previous) {
  const size_t words = (height + 63) / 64;
  size_t changes = 0;
  for (size_t x = first; x < last; x++) {
    for (size_t w = 0; w < words; w++) {
      const size_t valid = height - 64 * w < 64 ? height - 64 * w : 64;
      const uint64_t word = columns[x * words + w];
      changes += (size_t)__builtin_popcountll(changes_of(word, previous, valid));
      previous = (word >> (valid - 1)) & 1;
    }
  }
  return changes + 1;
}

// The box grown by a run of 1s from (run_x, run_y) to (last_x, last_y) in column-major order.
static inline __attribute__((always_inline)) void add_run_to_box(
    sam_mask_box *box, int64_t run_x, int64_t run_y, int64_t last_x, int64_t last_y, int64_t height) {
  if (run_x < box->x_start) box->x_start = run_x;
  if (last_x > box->x_end) box->x_end = last_x;
  if (run_x < last_x) {
    // The run wraps from one column into the next: every row is covered somewhere.
    box->y_start = 0;
    box->y_end = height - 1;
  } else {
    if (run_y < box->y_start) box->y_start = run_y;
    if (last_y > box->y_end) box->y_end = last_y;
  }
}

void sam_mask_runs_range(
    const uint64_t *columns, size_t height, size_t first, size_t last, uint64_t previous, int64_t *runs,
    sam_mask_box *box) {
  const size_t words = (height + 63) / 64;
  const int64_t h = (int64_t)height;
  sam_mask_box found = {INT64_MAX, INT64_MAX, -1, -1};
  // The first pixel of the run of 1s being read: the range's first pixel when a run of 1s goes on
  // from the column before.
  int64_t run_x = (int64_t)first, run_y = 0;
  // Runs so far, counted as if the list began with a run of 0s (odd: a run of 1s is being read).
  size_t count = previous ? 1 : 0;
  const size_t skipped = count;
  int64_t run_start = (int64_t)first * h;
  for (size_t x = first; x < last; x++) {
    for (size_t w = 0; w < words; w++) {
      const size_t valid = height - 64 * w < 64 ? height - 64 * w : 64;
      const uint64_t word = columns[x * words + w];
      uint64_t changes = changes_of(word, previous, valid);
      while (changes != 0) {
        const int64_t row = (int64_t)(64 * w) + __builtin_ctzll(changes);
        const int64_t index = (int64_t)x * h + row;
        // A run of 1s going on from the column before that ends before the range's first pixel is
        // empty here: its box is the previous range's.
        const int empty = index == run_start;
        runs[count++ - skipped] = index - run_start;
        run_start = index;
        if (count % 2 == 1) {
          // A run of 1s starts here.
          run_x = (int64_t)x;
          run_y = row;
        } else {
          // One ended just before (x, row): at (x, row - 1), or at the foot of the column before.
          const int64_t last_x = row > 0 ? (int64_t)x : (int64_t)x - 1, last_y = row > 0 ? row - 1 : h - 1;
          if (!empty) add_run_to_box(&found, run_x, run_y, last_x, last_y, h);
        }
        changes &= changes - 1;
      }
      previous = (word >> (valid - 1)) & 1;
    }
  }
  // A last run of 1s ends at the range's last pixel (if it has any).
  const int64_t end = (int64_t)last * h;
  if (count % 2 == 1 && end > run_start) add_run_to_box(&found, run_x, run_y, (int64_t)last - 1, h - 1, h);
  runs[count - skipped] = end - run_start;
  *box = found;
}
