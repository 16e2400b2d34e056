// COCO run-length encoding's hot loops on a binary mask: the mask's bytes packed into column-major
// bits, then the runs read off 64 rows at a time. Shapes only (widths, heights, bytes).
#ifndef SAM_MASK_RUNS_H
#define SAM_MASK_RUNS_H

#include <stddef.h>
#include <stdint.h>

/// The column-major bits of a row-major mask of `width` x `height` bytes (non-zero = set): column x
/// takes `words` = ceil(height / 64) words from columns + x * words, pixel (x, y) at bit y % 64 of
/// word y / 64; bits past the height are zero. Rows are packed 64 pixels at a time (AVX-512 or
/// AVX2 by the CPU, as sam_kernels_lanes) and transposed in 64 x 64 blocks.
void sam_mask_column_bits(uint64_t *columns, const uint8_t *pixels, size_t width, size_t height);

/// The toBbox box of a mask's runs of 1s, as `MaskRLE.bbox(runs:width:height:)` computes it from
/// the runs: x_end < 0 when there is no run of 1s.
typedef struct sam_mask_box {
  int64_t x_start, y_start, x_end, y_end;
} sam_mask_box;

/// The number of runs of the column-major bits of `sam_mask_column_bits` (the changes from one
/// pixel to the next in column-major order, plus one; the first run, of 0s, may be empty).
size_t sam_mask_run_count(const uint64_t *columns, size_t width, size_t height);

/// The runs themselves, into runs[0 ..< sam_mask_run_count(...)], and the box of the runs of 1s.
void sam_mask_runs(const uint64_t *columns, size_t width, size_t height, int64_t *runs, sam_mask_box *box);

#endif
