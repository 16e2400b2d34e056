import Foundation
import MobileSAM
import SAMTensor

/// COCO run-length encoding of binary masks, bit for bit as pycocotools (common/maskApi.c) writes
/// and reads it.
///
/// - Runs are counted over the mask in column-major (Fortran) order and alternate 0s and 1s,
///   starting with a (possibly empty) run of 0s.
/// - The compressed "counts" string stores each run as a little-endian sequence of 5-bit chunks,
///   one character (48 + chunk, with bit 0x20 meaning "more chunks follow") per chunk, sign
///   extended from bit 0x10 of the last chunk. From the fourth run on, the value stored is the
///   difference to the run two places before (a run of 1s against the previous run of 1s, and so
///   on), which is why a string can hold negative numbers.
///
/// pycocotools trusts its input; `decode` does not: a string that is not a well-formed list of
/// runs adding up to exactly `width * height` is an error.
public enum MaskRLE {
  /// The compressed COCO counts string of `mask`, as `pycocotools.mask.encode` gives it.
  public static func encode(_ mask: BinaryMask) -> String {
    compress(runs(of: mask))
  }

  /// The mask that `counts` describes, as `pycocotools.mask.decode` gives it (row-major here).
  public static func decode(_ counts: String, width: Int, height: Int) throws -> BinaryMask {
    let runs = try decompress(counts)
    return try mask(fromRuns: runs, width: width, height: height)
  }

  /// The number of foreground pixels, as `pycocotools.mask.area`.
  public static func area(_ mask: BinaryMask) -> Int {
    area(runs: runs(of: mask))
  }

  /// `[x, y, width, height]` of the foreground, as `pycocotools.mask.toBbox` computes it from the
  /// RLE: `[0, 0, 0, 0]` for an empty mask.
  public static func bbox(_ mask: BinaryMask) -> [Double] {
    bbox(runs: runs(of: mask), width: mask.width, height: mask.height)
  }

  /// Counts string, area and bbox of one mask, from a single pass over its pixels.
  public static func summarize(_ mask: BinaryMask) -> EncodedMask {
    let (r, box) = mask.pixels.withUnsafeBufferPointer { buffer -> ([Int], [Int]?) in
      guard let base = buffer.baseAddress, mask.width > 0, mask.height > 0 else { return ([0], nil) }
      return columnMajorRuns(base, width: mask.width, height: mask.height)
    }
    return EncodedMask(
      width: mask.width, height: mask.height, counts: compress(r), area: area(runs: r),
      bbox: (box ?? [0, 0, 0, 0]).map(Double.init))
  }

  // MARK: - Uncompressed runs

  /// The run lengths of `mask` in column-major order, starting with a run of 0s (0 when the first
  /// pixel is set). Any non-zero pixel counts as foreground. An empty (0-pixel) mask gives `[0]`.
  public static func runs(of mask: BinaryMask) -> [Int] {
    mask.pixels.withUnsafeBufferPointer { buffer in
      guard let base = buffer.baseAddress, mask.width > 0, mask.height > 0 else { return [0] }
      return columnMajorRuns(base, width: mask.width, height: mask.height).runs
    }
  }

  /// The area (sum of the runs of 1s) of a run list.
  public static func area(runs: [Int]) -> Int {
    var total = 0
    var j = 1
    while j < runs.count {
      total += runs[j]
      j += 2
    }
    return total
  }

  /// `toBbox` on a run list. Mirrors pycocotools 2.0.x: a trailing run of 0s is ignored, a run of
  /// 1s that spans more than one column makes the box full height. A run list with no run of 1s
  /// (for which the C code would return wrapped-around unsigned numbers) gives `[0, 0, 0, 0]`.
  public static func bbox(runs: [Int], width: Int, height: Int) -> [Double] {
    let pairedCount = runs.count / 2 * 2
    guard pairedCount > 0, width > 0, height > 0 else { return [0, 0, 0, 0] }
    var xStart = width
    var yStart = height
    var xEnd = 0
    var yEnd = 0
    var found = false
    var position = 0
    for j in 0..<pairedCount {
      let start = position
      position += runs[j]
      if j % 2 == 0 || runs[j] == 0 { continue }
      found = true
      let (firstX, firstY) = start.quotientAndRemainder(dividingBy: height)
      let (lastX, lastY) = (position - 1).quotientAndRemainder(dividingBy: height)
      xStart = min(xStart, firstX)
      xEnd = max(xEnd, lastX)
      if firstX < lastX {
        // The run wraps from one column into the next: every row is covered somewhere.
        yStart = 0
        yEnd = height - 1
      } else {
        yStart = min(yStart, firstY)
        yEnd = max(yEnd, lastY)
      }
    }
    guard found else { return [0, 0, 0, 0] }
    return [Double(xStart), Double(yStart), Double(xEnd - xStart + 1), Double(yEnd - yStart + 1)]
  }

  /// The mask a run list describes; the runs must add up to `width * height`.
  public static func mask(fromRuns runs: [Int], width: Int, height: Int) throws -> BinaryMask {
    guard width >= 0, height >= 0 else {
      throw SAMBatchError.rleInvalidSize(width: width, height: height)
    }
    let (pixelCount, overflow) = width.multipliedReportingOverflow(by: height)
    guard !overflow else { throw SAMBatchError.rleInvalidSize(width: width, height: height) }
    var total = 0
    for run in runs {
      guard run >= 0 else { throw SAMBatchError.rleNegativeRun(run) }
      let (sum, overflow) = total.addingReportingOverflow(run)
      guard !overflow else {
        throw SAMBatchError.rleSizeMismatch(runTotal: Int.max, width: width, height: height)
      }
      total = sum
    }
    guard total == pixelCount else {
      throw SAMBatchError.rleSizeMismatch(runTotal: total, width: width, height: height)
    }
    var pixels = [UInt8](repeating: 0, count: pixelCount)
    pixels.withUnsafeMutableBufferPointer { buffer in
      guard let base = buffer.baseAddress else { return }
      fillForeground(base, runs: runs, width: width, height: height)
    }
    return BinaryMask(width: width, height: height, pixels: pixels)
  }

  // MARK: - The counts string

  /// The compressed counts string of a run list (pycocotools' `rleToString`).
  public static func compress(_ runs: [Int]) -> String {
    // Each value stored is a run or a difference of two, so at most twice the largest magnitude:
    // its bits, one more for the sign, in 5-bit chunks (13 hold any 64-bit value).
    let largest = runs.reduce(UInt(0)) { max($0, $1.magnitude) }
    let chunksPerValue = min(13, (UInt.bitWidth - largest.leadingZeroBitCount + 2 + 4) / 5)
    return String(unsafeUninitializedCapacity: runs.count * chunksPerValue) { bytes in
      var count = 0
      for i in runs.indices {
        var value = runs[i]
        if i > 2 { value -= runs[i - 2] }
        count = writeChunks(of: value, to: bytes.baseAddress!, at: count)
      }
      return count
    }
  }

  /// The run list a compressed counts string holds (pycocotools' `rleFrString`), checked: only
  /// characters '0' (48) to 'o' (111), no value cut off at the end of the string, no negative run
  /// and no run above 2^32 - 1 (pycocotools stores runs as 32-bit unsigned integers).
  public static func decompress(_ counts: String) throws -> [Int] {
    var runs: [Int] = []
    var utf8 = Array(counts.utf8)
    let n = utf8.count
    try utf8.withUnsafeMutableBufferPointer { buffer in
      var position = 0
      while position < n {
        var value = 0
        var chunkIndex = 0
        var more = true
        let valueStart = position
        while more {
          guard position < n else { throw SAMBatchError.rleTruncated(offset: valueStart) }
          let code = Int(buffer[position])
          guard code >= 48 && code <= 111 else {
            throw SAMBatchError.rleInvalidCharacter(offset: position, code: code)
          }
          // A value needs at most 7 chunks (33 bits); more would only encode the same sign bits.
          guard chunkIndex < 12 else { throw SAMBatchError.rleValueTooLong(offset: valueStart) }
          let chunk = code - 48
          value |= (chunk & 0x1f) << (5 * chunkIndex)
          more = chunk & 0x20 != 0
          position += 1
          chunkIndex += 1
          if !more && chunk & 0x10 != 0 { value |= -1 << (5 * chunkIndex) }
        }
        if runs.count > 2 { value += runs[runs.count - 2] }
        guard value >= 0 else { throw SAMBatchError.rleNegativeRun(value) }
        guard value <= Int(UInt32.max) else { throw SAMBatchError.rleRunTooLong(value) }
        runs.append(value)
      }
    }
    return runs
  }
}

/// One mask in COCO RLE with its pycocotools area and bbox.
public struct EncodedMask: Sendable, Equatable {
  public let width: Int
  public let height: Int
  /// The compressed COCO counts string.
  public let counts: String
  public let area: Int
  /// `[x, y, width, height]` as `toBbox`.
  public let bbox: [Double]

  public init(width: Int, height: Int, counts: String, area: Int, bbox: [Double]) {
    self.width = width
    self.height = height
    self.counts = counts
    self.area = area
    self.bbox = bbox
  }
}

// MARK: - Hot loops

/// Sets the pixels of the runs of 1s (odd positions) of a column-major run list in a row-major
/// buffer of zeros.
private func fillForeground(_ pixels: UnsafeMutablePointer<UInt8>, runs: [Int], width: Int, height: Int) {
  var position = 0
  for j in runs.indices {
    let length = runs[j]
    if j % 2 == 1 && length > 0 {
      var (x, y) = position.quotientAndRemainder(dividingBy: height)
      for _ in 0..<length {
        pixels[y * width + x] = 1
        y += 1
        if y == height {
          y = 0
          x += 1
        }
      }
    }
    position += length
  }
}

/// Writes one value as 5-bit chunks at `bytes + offset` (pycocotools' `rleToString` inner loop);
/// returns the offset after them. At most 13 chunks.
private func writeChunks(of value: Int, to bytes: UnsafeMutablePointer<UInt8>, at offset: Int) -> Int {
  var x = value
  var position = offset
  var more = true
  while more {
    var chunk = x & 0x1f
    x >>= 5  // arithmetic shift: negative values stay negative
    more = chunk & 0x10 != 0 ? x != -1 : x != 0
    if more { chunk |= 0x20 }
    bytes[position] = UInt8(truncatingIfNeeded: chunk + 48)
    position += 1
  }
  return position
}
