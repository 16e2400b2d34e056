import SAMTensor
import XCTest

// Layout kernels only move values, so results must equal the reference exactly.
final class LayoutTests: XCTestCase {
  func testEveryPermutationOfAwkwardShapes() {
    var random = SeededRandom(seed: 30)
    for shape in [[3, 5], [4, 1, 7], [2, 3, 5, 7], [3, 1, 4, 2, 5], [2, 3, 1, 2, 3, 2]] {
      let x = random.tensor(shape)
      for perm in permutations(Array(0..<shape.count)) {
        let result = permute(x, perm)
        XCTAssertEqual(result, Reference.permute(x, perm), "permute \(shape) by \(perm)")
      }
    }
  }

  func testModelPermutationsOnLargeTensors() {
    var random = SeededRandom(seed: 31)
    // Window partition (B, Hw, 7, Ww, 7, C) -> (Hw, Ww, 7, 7, C), head split, and transposes
    // large enough to run in parallel.
    let cases: [([Int], [Int])] = [
      ([10, 7, 10, 7, 160], [0, 2, 1, 3, 4]), ([25, 196, 5, 32], [0, 2, 1, 3]), ([4096, 256], [1, 0]),
      ([257, 130], [1, 0]), ([8, 4096, 16], [1, 0, 2]), ([3, 129, 131], [0, 2, 1]),
    ]
    for (shape, perm) in cases {
      let x = random.tensor(shape)
      XCTAssertEqual(permute(x, perm), Reference.permute(x, perm), "permute \(shape) by \(perm)")
    }
  }

  func testPadAndCropRoundTrip() {
    var random = SeededRandom(seed: 32)
    for (h, w, c, bottom, right) in [(5, 7, 3, 2, 3), (64, 64, 160, 6, 6), (3, 2, 1, 0, 4), (4, 4, 2, 0, 0)] {
      let x = random.tensor([h, w, c])
      let padded = padBottomRight(x, bottom: bottom, right: right)
      XCTAssertEqual(padded.shape, [h + bottom, w + right, c])
      for y in 0..<(h + bottom) {
        for xIndex in 0..<(w + right) {
          for ch in 0..<c {
            let value = padded.data[(y * (w + right) + xIndex) * c + ch]
            let want: Float = y < h && xIndex < w ? x.data[(y * w + xIndex) * c + ch] : 0
            XCTAssertEqual(value, want)
          }
        }
      }
      XCTAssertEqual(cropTopLeft(padded, height: h, width: w), x)
    }
  }

  func testCropKeepsTopLeft() {
    let x = Tensor(shape: [3, 3, 1], data: (0..<9).map { Float($0) })
    XCTAssertEqual(cropTopLeft(x, height: 2, width: 1), Tensor(shape: [2, 1, 1], data: [0, 3]))
    XCTAssertEqual(cropTopLeft(x, height: 0, width: 3).shape, [0, 3, 1])
  }

  private func permutations(_ items: [Int]) -> [[Int]] {
    guard items.count > 1 else { return [items] }
    var result: [[Int]] = []
    for (i, item) in items.enumerated() {
      var rest = items
      rest.remove(at: i)
      for tail in permutations(rest) { result.append([item] + tail) }
    }
    return result
  }

  /// Column slices and matrices joined side by side, against index loops.
  func testColumnsAndJoinColumns() {
    var random = SeededRandom(seed: 146)
    let (a, b) = (random.tensor([5, 7]), random.tensor([5, 2]))
    let slice = columns(a, 2..<6)
    let joined = joinColumns([a, b], width: 12)
    XCTAssertEqual(slice.shape, [5, 4])
    XCTAssertEqual(joined.shape, [5, 12])
    for r in 0..<5 {
      for c in 0..<4 { XCTAssertEqual(slice.data[r * 4 + c], a.data[r * 7 + 2 + c]) }
      for c in 0..<12 {
        let want: Float = c < 7 ? a.data[r * 7 + c] : c < 9 ? b.data[r * 2 + c - 7] : 0
        XCTAssertEqual(joined.data[r * 12 + c], want, "row \(r) column \(c)")
      }
    }
  }
}
