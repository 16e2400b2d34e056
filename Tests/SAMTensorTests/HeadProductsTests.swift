import Foundation
import SAMTensor
import XCTest

/// HeadProducts.swift against naive loops in Double.
final class HeadProductsTests: XCTestCase {
  func testMatmulAgainstNaiveLoopsInEveryLayout() {
    var random = SeededRandom(seed: 90)
    // The mask decoder's shapes (56 x 256 x 4096 splits over columns) and small odd ones.
    for (m, k, n) in [(56, 256, 300), (7, 16, 5), (300, 56, 40)] {
      for transposeA in [false, true] {
        for transposeB in [false, true] {
          let a = random.tensor(transposeA ? [k, m] : [m, k])
          let b = random.tensor(transposeB ? [n, k] : [k, n])
          let c = random.tensor([m, n])
          var expected = Expected(shape: [m, n])
          for i in 0..<m {
            for j in 0..<n {
              var sum = Double(c.data[i * n + j])
              var magnitude = abs(sum)
              for p in 0..<k {
                let x = Double(transposeA ? a.data[p * m + i] : a.data[i * k + p])
                let y = Double(transposeB ? b.data[j * k + p] : b.data[p * n + j])
                sum += 0.5 * x * y
                magnitude += abs(0.5 * x * y)
              }
              expected.values[i * n + j] = sum
              expected.magnitudes[i * n + j] = magnitude
            }
          }
          // 1e-6 relative to the sum of |terms|: float32 accumulation in BLAS's order.
          assertClose(
            matmul(a, b, transposeA: transposeA, transposeB: transposeB, alpha: 0.5, adding: c), expected,
            relative: 1e-6, "matmul \(m)x\(k)x\(n) tA \(transposeA) tB \(transposeB)")
        }
      }
    }
  }

  func testHeadBlocksPlaceEachHeadInItsOwnColumns() {
    var random = SeededRandom(seed: 91)
    let (tokens, heads, depth) = (3, 4, 2)
    let x = random.tensor([tokens, heads * depth])
    let spread = headBlockDiagonal(x, heads: heads)
    XCTAssertEqual(spread.shape, [heads * tokens, heads * depth])
    for h in 0..<heads {
      for t in 0..<tokens {
        for column in 0..<(heads * depth) {
          let want = column / depth == h ? x.data[t * heads * depth + column] : 0
          XCTAssertEqual(spread.data[(h * tokens + t) * heads * depth + column], want)
        }
      }
    }
    // The gather reads back the diagonal blocks only: fill the rest with noise first.
    var noisy = random.tensor(spread.shape)
    for i in 0..<spread.count where spread.data[i] != 0 { noisy.data[i] = spread.data[i] }
    XCTAssertEqual(headDiagonalBlocks(noisy, heads: heads), x)
  }
}
