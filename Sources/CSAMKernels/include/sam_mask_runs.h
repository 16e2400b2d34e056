// COCO run-length encoding's hot loops on a binary mask: the mask's bytes packed into column-major
// bits, then the runs read off 64 rows at a time. Each works on a range of columns, so that threads
// can share a mask (SAMTensor's `columnMajorRuns`); the range [0, width) is the whole mask.
// Shapes only (widths, heights, bytes).
#ifndef SAM_MASK_RUNS_H
#define SAM_MASK_RUNS_H

#include <stddef.h>
#include <stdint.h>

/// The column-major bits of columns [first, last) of a row-major mask of `width` x `height` bytes
/// (non-zero = set; `first` a multiple of 64, or 0): column x takes `words` = ceil(height / 64)
/// words from columns + x * words, pixel (x, y) at bit y % 64 of word y / 64; bits past the height
/// are zero. Rows are packed 64 pixels at a time (AVX-512 or AVX2 by the CPU, as
/// sam_kernels_lanes) and transposed in 64 x 64 blocks.
void sam_mask_column_bits_range(
    uint64_t *columns, const uint8_t *pixels, size_t width, size_t height, size_t first, size_t last);

/// The toBbox box of a mask's runs of 1s, as `MaskRLE.bbox(runs:width:height:)` computes it from
/// the runs: x_end < 0 when there is no run of 1s.
typedef struct sam_mask_box {
  int64_t x_start, y_start, x_end, y_end;
} sam_mask_box;

/// The number of runs of columns [first, last) of those bits, `previous` the bit of the pixel
/// before the range's first (0 for the range that starts the mask): the changes from one pixel to
/// the next in column-major order inside the range, plus one.
size_t sam_mask_run_count_range(
    const uint64_t *columns, size_t height, size_t first, size_t last, uint64_t previous);

/// The runs themselves, into runs[0 ..< sam_mask_run_count_range(...)], and the box of the runs of
/// 1s inside the range. runs[0] is the part inside the range of the run that `previous` is in (0
/// when the range's first pixel differs from it; for the whole mask, the first run of 0s, which
/// may be empty), and the last run ends at the range's end. Joined (a range's first run added to
/// the previous range's last), the ranges' runs are the whole mask's, and the union of their boxes
/// is its box: a run of 1s that crosses from one range into the next wraps from a column's foot to
/// the next one's head, so it covers every row, as its two parts do together.
void sam_mask_runs_range(
    const uint64_t *columns, size_t height, size_t first, size_t last, uint64_t previous, int64_t *runs,
    sam_mask_box *box);

#endif
