// The runs of a binary mask in column-major order (COCO RLE's order), on the C kernels of
// CSAMKernels/mask_runs.c: shapes and bytes only; SAMBatch's MaskRLE builds the counts string.
import CSAMKernels

/// Runs of a row-major mask of bytes (non-zero = foreground) in column-major order, starting with
/// a (possibly empty) run of 0s, and the `toBbox` box of the runs of 1s: `[x, y, width, height]`
/// (the columns and rows its runs cover; a run that wraps into the next column covers every row),
/// nil without any.
public func columnMajorRuns(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int) -> (
  runs: [Int], box: [Int]?
) {
  precondition(width > 0 && height > 0, "columnMajorRuns: a \(width)x\(height) mask")
  let words = (height + 63) / 64
  let bits = [UInt64](unsafeUninitializedCapacity: width * words) { buffer, initialized in
    sam_mask_column_bits(buffer.baseAddress!, pixels, width, height)
    initialized = width * words
  }
  var box = sam_mask_box()
  let runs = bits.withUnsafeBufferPointer { bp in
    let count = sam_mask_run_count(bp.baseAddress!, width, height)
    return [Int](unsafeUninitializedCapacity: count) { buffer, initialized in
      buffer.baseAddress!.withMemoryRebound(to: Int64.self, capacity: count) {
        sam_mask_runs(bp.baseAddress!, width, height, $0, &box)
      }
      initialized = count
    }
  }
  guard box.x_end >= 0 else { return (runs, nil) }
  let (x0, y0, x1, y1) = (Int(box.x_start), Int(box.y_start), Int(box.x_end), Int(box.y_end))
  return (runs, [x0, y0, x1 - x0 + 1, y1 - y0 + 1])
}
