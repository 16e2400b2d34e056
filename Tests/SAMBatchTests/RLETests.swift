import Foundation
import MobileSAM
import SAMBatch
import TestSupport
import XCTest

/// MaskRLE against pycocotools 2.0.11 (Tests/Fixtures/rle/cases.json, written by
/// Scripts/make_rle_fixtures.py): every comparison is exact (strings and integers).
final class RLETests: XCTestCase {
  func testEncodeDecodeAreaBboxMatchPycocotools() throws {
    let cases = try loadCases()
    XCTAssertGreaterThanOrEqual(cases.count, 40, "Tests/Fixtures/rle/cases.json looks truncated")
    for c in cases {
      let mask = try buildMask(c)
      XCTAssertEqual(MaskRLE.encode(mask), c.counts, "encode: \(c.name)")
      let decoded = try MaskRLE.decode(c.counts, width: c.width, height: c.height)
      XCTAssertTrue(decoded == mask, "decode: \(c.name)")
      XCTAssertEqual(MaskRLE.area(mask), c.area, "area: \(c.name)")
      XCTAssertEqual(MaskRLE.bbox(mask), c.bbox, "bbox: \(c.name)")
      let summary = MaskRLE.summarize(mask)
      XCTAssertEqual(summary.counts, c.counts, "summarize: \(c.name)")
      XCTAssertEqual(summary.area, c.area, "summarize: \(c.name)")
      XCTAssertEqual(summary.bbox, c.bbox, "summarize: \(c.name)")
      XCTAssertEqual(MaskRLE.compress(try MaskRLE.decompress(c.counts)), c.counts, "round trip: \(c.name)")
    }
  }

  func testFixtureCoversTheEdgeCases() throws {
    let cases = try loadCases()
    var sawNegativeDelta = false
    var sawLongRun = false
    for c in cases {
      let runs = try MaskRLE.decompress(c.counts)
      sawLongRun = sawLongRun || runs.contains { $0 > 1 << 20 }
      for i in runs.indices where i > 2 && runs[i] < runs[i - 2] { sawNegativeDelta = true }
    }
    XCTAssertTrue(sawNegativeDelta)
    XCTAssertTrue(sawLongRun)
    XCTAssertTrue(cases.contains { $0.area == 0 })
    XCTAssertTrue(cases.contains { $0.area == $0.width * $0.height })
    XCTAssertTrue(cases.contains { $0.area == 1 })
    XCTAssertTrue(cases.contains { $0.width == 1 && $0.height > 1 })
    XCTAssertTrue(cases.contains { $0.height == 1 && $0.width > 1 })
  }

  func testRunsMatchANaiveColumnWalk() {
    // The encoder packs rows 8 bytes at a time and reads columns 64 rows at a time; widths around
    // multiples of 8, heights past 64 and 128 (the last 60 trials), blocky and noisy content, and
    // foreground bytes other than 1 exercise every path of it.
    var rng = SplitMix64(seed: 7)
    for trial in 0..<360 {
      let tall = trial >= 300
      let width = 1 + Int(rng.next() % (tall ? 90 : 45))
      let height = 1 + Int(rng.next() % (tall ? 200 : 45))
      var pixels = [UInt8](repeating: 0, count: width * height)
      let noisy = trial % 3 == 0
      let x0 = Int(rng.next() % UInt64(width))
      let y0 = Int(rng.next() % UInt64(height))
      let x1 = x0 + Int(rng.next() % UInt64(width - x0 + 1))
      let y1 = y0 + Int(rng.next() % UInt64(height - y0 + 1))
      for y in 0..<height {
        for x in 0..<width {
          let inside = x >= x0 && x < x1 && y >= y0 && y < y1
          let set = noisy ? rng.next() % 3 == 0 : inside
          if set { pixels[y * width + x] = trial % 5 == 0 ? UInt8(1 + rng.next() % 255) : 1 }
        }
      }
      let mask = BinaryMask(width: width, height: height, pixels: pixels)
      XCTAssertEqual(
        MaskRLE.runs(of: mask), columnWalkRuns(pixels, width: width, height: height),
        "trial \(trial): \(width)x\(height)")
    }
  }

  func testEmptyMaskBboxIsZero() {
    let mask = BinaryMask(width: 4, height: 3, pixels: [UInt8](repeating: 0, count: 12))
    XCTAssertEqual(MaskRLE.bbox(mask), [0, 0, 0, 0])
    XCTAssertEqual(MaskRLE.area(mask), 0)
    XCTAssertEqual(MaskRLE.encode(mask), "<")  // one run of 12 zeros
  }

  func testZeroSizedMask() throws {
    let mask = BinaryMask(width: 0, height: 5, pixels: [])
    XCTAssertEqual(MaskRLE.encode(mask), "0")
    XCTAssertEqual(MaskRLE.bbox(mask), [0, 0, 0, 0])
    XCTAssertEqual(try MaskRLE.decode("0", width: 0, height: 5), mask)
  }

  func testMalformedStringsAreErrors() {
    // '!' (33) is below '0'; a trailing chunk with the "more" bit (0x20, e.g. 'P' = 48 + 32) is cut off.
    assertThrows(try MaskRLE.decode("0!", width: 2, height: 2), "outside")
    assertThrows(try MaskRLE.decode("4P", width: 2, height: 2), "cut off")
    assertThrows(try MaskRLE.decode("p", width: 2, height: 2), "outside")
    // Runs adding up to 3 or 5 for a 2x2 mask.
    assertThrows(try MaskRLE.decode("3", width: 2, height: 2), "4")
    assertThrows(try MaskRLE.decode("5", width: 2, height: 2), "4")
    // "O" (chunk 0x1f, sign bit set) is -1 as a first run: negative.
    assertThrows(try MaskRLE.decode("O", width: 2, height: 2), "negative")
    // A fourth value that takes the run below zero: runs 1, 1, 1, then 1 + (-2) ("N" = chunk 0x1e).
    assertThrows(try MaskRLE.decode("111N", width: 2, height: 2), "negative")
    assertThrows(try MaskRLE.decode(String(repeating: "o", count: 13) + "0", width: 2, height: 2), "12")
    assertThrows(try MaskRLE.decode("4", width: -1, height: 2), "size")
  }

  func testEncodeIsFastOnAPhotoSizedMask() throws {
    // 2241x1500 like picture3.jpg, an ellipse plus noise-free stripes: timing is printed, and only
    // a very loose bound is asserted (debug builds and a shared machine).
    let width = 2241
    let height = 1500
    var pixels = [UInt8](repeating: 0, count: width * height)
    for y in 0..<height {
      for x in 0..<width where (x - 1200) * (x - 1200) / 4 + (y - 700) * (y - 700) < 400 * 400 || x % 97 == 0
      {
        pixels[y * width + x] = 1
      }
    }
    let mask = BinaryMask(width: width, height: height, pixels: pixels)
    let start = Date()
    let summary = MaskRLE.summarize(mask)
    let elapsed = Date().timeIntervalSince(start)
    print("MaskRLE.summarize 2241x1500: \(String(format: "%.1f", elapsed * 1000)) ms")
    XCTAssertLessThan(elapsed, 2.0)
    XCTAssertEqual(try MaskRLE.decode(summary.counts, width: width, height: height), mask)
  }

  // MARK: - Helpers

  private func assertThrows<T>(
    _ expression: @autoclosure () throws -> T, _ fragment: String, file: StaticString = #filePath,
    line: UInt = #line
  ) {
    do {
      _ = try expression()
      XCTFail("expected an error mentioning \"\(fragment)\"", file: file, line: line)
    } catch {
      let message = error.localizedDescription
      XCTAssertTrue(
        message.contains(fragment), "message \"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
    }
  }

  private struct Case: Decodable {
    var name: String
    var kind: String
    var width: Int
    var height: Int
    var counts: String
    var area: Int
    var bbox: [Double]
    var seed: UInt64?
    var density: UInt64?
    var first: Int?
    var max_run: UInt64?
    var runs: [Int]?
    var rects: [[Int]]?
    var invert: Bool?
    var cx: Int?
    var cy: Int?
    var rx: Int?
    var ry: Int?
    var rows: [String]?
  }

  private struct CaseFile: Decodable { var cases: [Case] }

  private func loadCases() throws -> [Case] {
    let data = try Data(contentsOf: Fixtures.url("rle/cases.json"))
    return try JSONDecoder().decode(CaseFile.self, from: data).cases
  }

  /// Rebuilds a fixture mask from its recipe, as Scripts/make_rle_fixtures.py does.
  private func buildMask(_ c: Case) throws -> BinaryMask {
    let w = c.width
    let h = c.height
    var pixels = [UInt8](repeating: 0, count: w * h)
    // Column-major run list -> row-major pixels, written independently of MaskRLE.
    func fill(runs: [Int]) {
      var position = 0
      for (j, length) in runs.enumerated() {
        for i in position..<(position + length) where j % 2 == 1 { pixels[(i % h) * w + i / h] = 1 }
        position += length
      }
    }
    switch c.kind {
    case "random":
      var rng = SplitMix64(seed: try XCTUnwrap(c.seed))
      let density = try XCTUnwrap(c.density)
      for i in 0..<(w * h) { pixels[i] = rng.next() % 1000 < density ? 1 : 0 }
    case "runs":
      var rng = SplitMix64(seed: try XCTUnwrap(c.seed))
      let maxRun = try XCTUnwrap(c.max_run)
      var value = try XCTUnwrap(c.first)
      var runs: [Int] = value == 1 ? [0] : []
      var position = 0
      while position < w * h {
        let length = min(Int(1 + rng.next() % maxRun), w * h - position)
        runs.append(length)
        position += length
        value = 1 - value
      }
      fill(runs: runs)
    case "explicit_runs":
      fill(runs: try XCTUnwrap(c.runs))
    case "rects":
      for r in try XCTUnwrap(c.rects) {
        for y in r[1]..<min(r[1] + r[3], h) { for x in r[0]..<min(r[0] + r[2], w) { pixels[y * w + x] = 1 } }
      }
      if c.invert == true { pixels = pixels.map { 1 - $0 } }
    case "ellipse":
      let (cx, cy, rx, ry) = (
        try XCTUnwrap(c.cx), try XCTUnwrap(c.cy), try XCTUnwrap(c.rx), try XCTUnwrap(c.ry)
      )
      for y in 0..<h {
        for x in 0..<w
        where (x - cx) * (x - cx) * ry * ry + (y - cy) * (y - cy) * rx * rx <= rx * rx * ry * ry {
          pixels[y * w + x] = 1
        }
      }
    case "rows":
      let rows = try XCTUnwrap(c.rows)
      for (y, row) in rows.enumerated() {
        for (x, ch) in row.enumerated() { pixels[y * w + x] = ch == "1" ? 1 : 0 }
      }
    default:
      throw XCTSkip("unknown recipe kind \(c.kind) in \(c.name): regenerate the Swift side")
    }
    return BinaryMask(width: w, height: h, pixels: pixels)
  }
}

/// The splitmix64 generator of Scripts/make_rle_fixtures.py.
private struct SplitMix64 {
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
