import MobileSAM
import SAMBatch
import SAMTensor
import XCTest

/// `MaskRLE.summarize` (runs, box and counts string found in one pass over packed bits) against
/// plain loops: a column-by-column walk for the runs, the run-based `bbox(runs:)` (checked against
/// pycocotools in RLETests) and a byte-by-byte counts string.
final class RLESummaryTests: XCTestCase {
  override func tearDown() {
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// On both kernel widths (the rows are packed by vector tests of 64 bytes).
  func testSummarizeMatchesPlainLoops() {
    for width in [VectorKernels.Width.avx2, .avx512] {
      VectorKernels.use(width)
      summarizeMatchesPlainLoops()
    }
  }

  private func summarizeMatchesPlainLoops() {
    let lanes = VectorKernels.lanes
    var rng = SummaryRandom(seed: 11)
    // Sizes around the 64 x 64 blocks, one pixel, one row, one column.
    var sizes = [
      (1, 1), (1, 9), (9, 1), (8, 8), (7, 9), (17, 63), (16, 64), (15, 65), (33, 130), (64, 200), (63, 1),
      (65, 2), (128, 64), (129, 129), (1, 200), (200, 1), (131, 190),
    ]
    for _ in 0..<60 { sizes.append((1 + Int(rng.next() % 140), 1 + Int(rng.next() % 140))) }
    for (trial, (width, height)) in sizes.enumerated() {
      let pixels = randomMask(width: width, height: height, style: trial % 5, rng: &rng)
      let mask = BinaryMask(width: width, height: height, pixels: pixels)
      let runs = columnWalkRuns(pixels, width: width, height: height)
      var area = 0
      for j in stride(from: 1, to: runs.count, by: 2) { area += runs[j] }
      let expected = EncodedMask(
        width: width, height: height, counts: plainCounts(runs), area: area,
        bbox: MaskRLE.bbox(runs: runs, width: width, height: height))
      XCTAssertEqual(
        MaskRLE.summarize(mask), expected,
        "trial \(trial): \(width)x\(height), style \(trial % 5), \(lanes) lanes")
    }
  }

  /// A mask split into ranges of 64-column blocks (as threads share a large one) gives the runs
  /// and box of the column walk: runs of 1s that cross from one range into the next (wrapping
  /// from a column's foot to the next one's head: every row in the box), ranges that begin just
  /// after such a run ends, and masks of 1s only.
  func testRangesOfColumnsJoinIntoTheSameRunsAndBox() {
    var rng = SummaryRandom(seed: 12)
    var masks: [(width: Int, height: Int, pixels: [UInt8])] = []
    for (trial, (width, height)) in [(130, 300), (700, 50), (1000, 3), (257, 129), (192, 64), (129, 1)]
      .enumerated()
    {
      for style in 0..<5 {
        masks.append((width, height, randomMask(width: width, height: height, style: style, rng: &rng)))
      }
      masks.append((width, height, [UInt8](repeating: 1, count: width * height)))
      // Only the foot of column 63 and the head of column 64, then only the foot of column 127.
      var crossing = [UInt8](repeating: 0, count: width * height)
      var ending = crossing
      if width > 128 {
        crossing[(height - 1) * width + 63] = 1
        crossing[64] = 1
        ending[(height - 1) * width + 127] = 1
        ending[(height / 2) * width + 200 % width] = 1
      }
      masks += [(width, height, crossing), (width, height, ending)]
      XCTAssertEqual(masks.count, (trial + 1) * 8)
    }
    for (index, mask) in masks.enumerated() {
      let runs = columnWalkRuns(mask.pixels, width: mask.width, height: mask.height)
      let box = MaskRLE.bbox(runs: runs, width: mask.width, height: mask.height)
      for parts in [1, 2, 3, 5, 16] {
        let found = mask.pixels.withUnsafeBufferPointer {
          columnMajorRuns($0.baseAddress!, width: mask.width, height: mask.height, parts: parts)
        }
        let label = "mask \(index) (\(mask.width)x\(mask.height)), \(parts) parts"
        XCTAssertEqual(found.runs, runs, label)
        XCTAssertEqual((found.box ?? [0, 0, 0, 0]).map(Double.init), box, label)
      }
    }
  }

  func testCompressMatchesPlainLoopsOnLargeValues() {
    // Values far past a 32-bit mask, and differences of either sign.
    for runs in [
      [0], [3, 1 << 40, 2, 5, 1 << 50, 1], [1 << 62, 1, 0, 7], [12, 1 << 33, 1 << 20, 3, 9, 1 << 45],
    ] {
      XCTAssertEqual(MaskRLE.compress(runs), plainCounts(runs), "\(runs)")
    }
  }
}

private struct SummaryRandom {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// Styles: 0 empty or full, 1 a rectangle of 1s, 2 noise, 3 a rectangle of mixed non-zero
/// bytes, 4 an ellipse with holes.
private func randomMask(width: Int, height: Int, style: Int, rng: inout SummaryRandom) -> [UInt8] {
  var pixels = [UInt8](repeating: 0, count: width * height)
  let (x0, y0) = (Int(rng.next() % UInt64(width)), Int(rng.next() % UInt64(height)))
  let x1 = x0 + Int(rng.next() % UInt64(width - x0 + 1))
  let y1 = y0 + Int(rng.next() % UInt64(height - y0 + 1))
  let full = rng.next() % 2 == 0
  for y in 0..<height {
    for x in 0..<width {
      let inside = x >= x0 && x < x1 && y >= y0 && y < y1
      let value: UInt8
      switch style {
      case 0: value = full ? 1 : 0
      case 1: value = inside ? 1 : 0
      case 2: value = rng.next() % 3 == 0 ? 1 : 0
      case 3: value = inside ? UInt8(1 + rng.next() % 255) : 0
      default:
        let (dx, dy) = (Double(x - width / 2) / Double(width), Double(y - height / 2) / Double(height))
        value = dx * dx + dy * dy < 0.2 && rng.next() % 50 != 0 ? 1 : 0
      }
      pixels[y * width + x] = value
    }
  }
  return pixels
}

/// pycocotools' `rleToString`, one character at a time.
private func plainCounts(_ runs: [Int]) -> String {
  var out = ""
  for i in runs.indices {
    var x = i > 2 ? runs[i] - runs[i - 2] : runs[i]
    var more = true
    while more {
      var chunk = x & 0x1f
      x >>= 5
      more = chunk & 0x10 != 0 ? x != -1 : x != 0
      if more { chunk |= 0x20 }
      out.append(Character(UnicodeScalar(UInt8(chunk + 48))))
    }
  }
  return out
}
