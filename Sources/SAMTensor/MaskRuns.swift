// The runs of a binary mask in column-major order (COCO RLE's order), on the C kernels of
// CSAMKernels/mask_runs.c: shapes and bytes only; SAMBatch's MaskRLE builds the counts string.
import CSAMKernels
import Foundation

/// Masks of at least this many pixels are shared between the threads, by ranges of columns.
let parallelMaskPixels = 1 << 18

/// Runs of a row-major mask of bytes (non-zero = foreground) in column-major order, starting with
/// a (possibly empty) run of 0s, and the `toBbox` box of the runs of 1s: `[x, y, width, height]`
/// (the columns and rows its runs cover; a run that wraps into the next column covers every row),
/// nil without any.
///
/// A large mask is split into ranges of whole 64-column blocks, one per thread: each range's bits,
/// runs and box are its own, and the ranges are joined where a run goes on from one into the next
/// (`sam_mask_runs_range`), the box the union of theirs. The same runs and box as one range.
/// `parts`: how many ranges (at most one per block); nil: one per thread for masks of
/// `parallelMaskPixels` or more, else one.
public func columnMajorRuns(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int, parts: Int? = nil) -> (
  runs: [Int], box: [Int]?
) {
  precondition(width > 0 && height > 0, "columnMajorRuns: a \(width)x\(height) mask")
  let words = (height + 63) / 64
  let blocks = (width + 63) / 64
  let automatic = width * height >= parallelMaskPixels ? ComputeThreads.count : 1
  let parts = max(1, min(parts ?? automatic, blocks))
  let ranges = (0..<parts).map {
    let r = chunkRange($0, of: parts, count: blocks)
    return (r.lowerBound * 64)..<min(width, r.upperBound * 64)
  }
  let bits = [UInt64](unsafeUninitializedCapacity: width * words) { buffer, initialized in
    let columns = buffer.baseAddress!
    parallelForChunks(parts) { chunk in
      for part in chunk {
        sam_mask_column_bits_range(
          columns, pixels, width, height, ranges[part].lowerBound, ranges[part].upperBound)
      }
    }
    initialized = width * words
  }
  return bits.withUnsafeBufferPointer { bp in
    let columns = bp.baseAddress!
    // The bit of the pixel before each range's first: the foot of the column before.
    let previous = ranges.map { range -> UInt64 in
      guard range.lowerBound > 0 else { return 0 }
      return (columns[(range.lowerBound - 1) * words + words - 1] >> UInt64((height - 1) % 64)) & 1
    }
    var counts = [Int](repeating: 0, count: parts)
    counts.withUnsafeMutableBufferPointer { cp in
      parallelForChunks(parts) { chunk in
        for part in chunk {
          cp[part] = sam_mask_run_count_range(
            columns, height, ranges[part].lowerBound, ranges[part].upperBound, previous[part])
        }
      }
    }
    var offsets = [0]
    for count in counts.dropLast() { offsets.append(offsets.last! + count) }
    var boxes = [sam_mask_box](repeating: sam_mask_box(), count: parts)
    let runs = [Int](unsafeUninitializedCapacity: offsets.last! + counts.last!) { buffer, initialized in
      let base = buffer.baseAddress!
      base.withMemoryRebound(to: Int64.self, capacity: buffer.count) { rp in
        boxes.withUnsafeMutableBufferPointer { boxp in
          parallelForChunks(parts) { chunk in
            for part in chunk {
              sam_mask_runs_range(
                columns, height, ranges[part].lowerBound, ranges[part].upperBound, previous[part],
                rp + offsets[part], boxp.baseAddress! + part)
            }
          }
        }
      }
      // Each range's first run goes on from the previous range's last one.
      var end = counts[0]
      for part in 1..<max(1, parts) {
        base[end - 1] += base[offsets[part]]
        let moving = counts[part] - 1
        if moving > 0 { memmove(base + end, base + offsets[part] + 1, moving * MemoryLayout<Int>.stride) }
        end += moving
      }
      initialized = end
    }
    var box = sam_mask_box(x_start: .max, y_start: .max, x_end: -1, y_end: -1)
    // A run of 1s that crosses into the next range wraps from a column's foot to the next one's
    // head, so it covers every row: so do the two ranges' parts of it together.
    for found in boxes where found.x_end >= 0 {
      box.x_start = min(box.x_start, found.x_start)
      box.y_start = min(box.y_start, found.y_start)
      box.x_end = max(box.x_end, found.x_end)
      box.y_end = max(box.y_end, found.y_end)
    }
    guard box.x_end >= 0 else { return (runs, nil) }
    let (x0, y0, x1, y1) = (Int(box.x_start), Int(box.y_start), Int(box.x_end), Int(box.y_end))
    return (runs, [x0, y0, x1 - x0 + 1, y1 - y0 + 1])
  }
}
