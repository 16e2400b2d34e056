import Foundation
import MobileSAM

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
    let (r, box) = mask.pixels.withUnsafeBufferPointer { buffer in
      guard let base = buffer.baseAddress, mask.width > 0, mask.height > 0 else {
        return ([0], ForegroundBox(height: mask.height))
      }
      return columnMajorRuns(base, width: mask.width, height: mask.height)
    }
    return EncodedMask(
      width: mask.width, height: mask.height, counts: compress(r), area: area(runs: r), bbox: box.bbox)
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

/// Run lengths in column-major order over a row-major mask, starting with a run of 0s, and the
/// `toBbox` box of its runs of 1s.
///
/// Walking the mask column by column would read it with a stride of `width` bytes. Instead the
/// mask is packed to one bit per pixel row by row (8 bytes at a time), the bit matrix is
/// transposed in 8 x 8 blocks, and each column is then read 64 rows at a time: the runs end where
/// a bit differs from the one before it in column-major order, found with XOR and counted off
/// with trailing-zero counts, so the work grows with the number of runs, not of pixels. The box is kept from the
/// (column, row) of each run's ends as they are found, without dividing positions by the height.
private func columnMajorRuns(_ pixels: UnsafePointer<UInt8>, width: Int, height: Int) -> (
  runs: [Int], box: ForegroundBox
) {
  let rowBytes = (width + 7) / 8
  let blockRows = (height + 7) / 8
  // Row-major bits, padded to whole 8-row blocks: byte (y, b) holds pixels 8b ..< 8b + 8 of row y.
  var rowBits = [UInt8](repeating: 0, count: blockRows * 8 * rowBytes)
  // Column-major bits: column x's rows in `columnStride` bytes, a whole number of 64-row words.
  let columnWords = (height + 63) / 64
  let columnStride = columnWords * 8
  var columnBits = [UInt8](repeating: 0, count: width * columnStride)
  rowBits.withUnsafeMutableBufferPointer { rp in
    for y in 0..<height { packRow(pixels + y * width, width: width, into: rp.baseAddress! + y * rowBytes) }
    columnBits.withUnsafeMutableBufferPointer { cp in
      transposeBits(
        rp.baseAddress!, rowBytes: rowBytes, blockRows: blockRows, width: width, into: cp.baseAddress!,
        columnStride: columnStride)
    }
  }
  var runs: [Int] = []
  var box = ForegroundBox(height: height)
  var current: UInt64 = 0  // the last pixel's bit in column-major order
  var runStart = 0
  columnBits.withUnsafeBufferPointer { cp in
    let raw = UnsafeRawPointer(cp.baseAddress!)
    for x in 0..<width {
      for w in 0..<columnWords {
        let valid = min(64, height - w * 64)
        let validMask: UInt64 = valid == 64 ? ~0 : (1 << UInt64(valid)) - 1
        let word = UInt64(
          littleEndian: raw.loadUnaligned(fromByteOffset: x * columnStride + w * 8, as: UInt64.self))
        // Bit i set where row w * 64 + i differs from the pixel before it.
        var changes = (word ^ ((word << 1) | current)) & validMask
        while changes != 0 {
          let row = w * 64 + changes.trailingZeroBitCount
          let index = x * height + row
          runs.append(index - runStart)
          runStart = index
          // An odd count of runs so far: a run of 1s starts here; else one ended just before.
          if runs.count % 2 == 1 { box.startRun(x: x, y: row) } else { box.endRun(beforeX: x, y: row) }
          changes &= changes - 1
        }
        current = (word >> UInt64(valid - 1)) & 1
      }
    }
  }
  if runs.count % 2 == 1 { box.endRun(beforeX: width, y: 0) }
  runs.append(width * height - runStart)
  return (runs, box)
}

/// The `toBbox` box of a mask's runs of 1s (see `MaskRLE.bbox(runs:width:height:)`), kept as the
/// runs are found in column-major order.
struct ForegroundBox {
  let height: Int
  var xStart = Int.max
  var yStart = Int.max
  var xEnd = -1
  var yEnd = -1
  /// Column and row of the first pixel of the run of 1s being read.
  var runX = 0
  var runY = 0

  init(height: Int) { self.height = height }

  mutating func startRun(x: Int, y: Int) {
    runX = x
    runY = y
  }

  /// Ends the run of 1s being read just before pixel (x, y) in column-major order; (width, 0)
  /// ends it at the last pixel.
  mutating func endRun(beforeX x: Int, y: Int) {
    let (lastX, lastY) = y > 0 ? (x, y - 1) : (x - 1, height - 1)
    xStart = min(xStart, runX)
    xEnd = max(xEnd, lastX)
    if runX < lastX {
      // The run wraps from one column into the next: every row is covered somewhere.
      yStart = 0
      yEnd = height - 1
    } else {
      yStart = min(yStart, runY)
      yEnd = max(yEnd, lastY)
    }
  }

  /// `[x, y, width, height]`, `[0, 0, 0, 0]` without any run of 1s.
  var bbox: [Double] {
    guard xEnd >= 0 else { return [0, 0, 0, 0] }
    return [Double(xStart), Double(yStart), Double(xEnd - xStart + 1), Double(yEnd - yStart + 1)]
  }
}

/// One row of bytes to bits (any non-zero byte is foreground): bit i of out[b] is pixel 8b + i.
private func packRow(_ row: UnsafePointer<UInt8>, width: Int, into out: UnsafeMutablePointer<UInt8>) {
  let raw = UnsafeRawPointer(row)
  let low7: UInt64 = 0x7f7f_7f7f_7f7f_7f7f
  let words = width / 8
  for b in 0..<words {
    let v = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: b * 8, as: UInt64.self))
    // High bit of each byte set iff the byte is non-zero; then one bit per byte, gathered into
    // the top byte by the multiply (byte i lands on bit 56 + i).
    let nonZero = (((v & low7) &+ low7) | v) >> 7 & 0x0101_0101_0101_0101
    out[b] = UInt8(truncatingIfNeeded: (nonZero &* 0x0102_0408_1020_4080) >> 56)
  }
  if words * 8 < width {
    var bits: UInt8 = 0
    for i in 0..<(width - words * 8) where row[words * 8 + i] != 0 { bits |= 1 << UInt8(i) }
    out[words] = bits
  }
}

/// The row-major bit matrix (rows padded to 8-row blocks with zeros) transposed into columns:
/// bit r of byte k of column x is row 8k + r.
private func transposeBits(
  _ rowBits: UnsafePointer<UInt8>, rowBytes: Int, blockRows: Int, width: Int,
  into columns: UnsafeMutablePointer<UInt8>, columnStride: Int
) {
  for k in 0..<blockRows {
    for b in 0..<rowBytes {
      // Byte r = row 8k + r's pixels 8b ..< 8b + 8.
      var block: UInt64 = 0
      for r in 0..<8 { block |= UInt64(rowBits[(8 * k + r) * rowBytes + b]) << UInt64(8 * r) }
      guard block != 0 else { continue }  // the column bytes are zero already
      let t = transposed8x8(block)  // byte c = column 8b + c's rows 8k ..< 8k + 8
      for c in 0..<min(8, width - 8 * b) {
        columns[(8 * b + c) * columnStride + k] = UInt8(truncatingIfNeeded: t >> UInt64(8 * c))
      }
    }
  }
}

/// The 8 x 8 bit matrix with bit 8r + c as element (r, c), transposed (three rounds of swapping
/// off-diagonal blocks of 1, 2 and 4 bits).
@inline(__always)
private func transposed8x8(_ value: UInt64) -> UInt64 {
  var x = value
  var t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA
  x = x ^ t ^ (t << 7)
  t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC
  x = x ^ t ^ (t << 14)
  t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0
  x = x ^ t ^ (t << 28)
  return x
}

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
