import Foundation
import SAMTensor
import XCTest

// Tolerance: as AttentionTests (2e-6 of sum |p * v| plus 1e-7 absolute): the vector exp's
// rounding moves each weight by a few float32 ulps, and the product adds sqrt(K) * 2^-24.
private let columnRelative = 2e-6
private let columnAbsolute = 1e-7

final class ColumnAttentionTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// out[i, c] = sum over p of softmax(scores[:, i])[p] * values[p, c], in double.
  private func reference(scores: Tensor, values: Tensor) -> Expected {
    let (k, m, n) = (scores.shape[0], scores.shape[1], values.shape[1])
    var result = Expected(shape: [m, n])
    for i in 0..<m {
      let column = (0..<k).map { Double(scores.data[$0 * m + i]) }
      let maximum = column.max()!
      let weights = column.map { exp($0 - maximum) }
      let total = weights.reduce(0, +)
      for c in 0..<n {
        for p in 0..<k {
          let term = weights[p] / total * Double(values.data[p * n + c])
          result.values[i * n + c] += term
          result.magnitudes[i * n + c] += abs(term)
        }
      }
    }
    return result
  }

  /// Shapes with partial vectors of columns (m not a multiple of 16), partial register tiles
  /// (m not a multiple of 12 or 6), several blocks of rows (k > 512, not a multiple of 256), an
  /// odd number of 16-column vectors (n = 48), and a single row.
  func testAttendColumnsMatchesSoftmaxAndProductInDouble() {
    var random = SeededRandom(seed: 140)
    for (k, m, n) in [(1300, 56, 48), (700, 16, 32), (1, 3, 16), (513, 21, 64), (4096, 7, 16)] {
      let scores = random.tensor([k, m], -6, 6)
      let values = random.tensor([k, n], -2, 2)
      let expected = reference(scores: scores, values: values)
      var outputs = [Tensor]()
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        var weights = scores
        let out = attendColumns(&weights, values: values)
        assertClose(
          out, expected, relative: columnRelative, absolute: columnAbsolute,
          "attendColumns k \(k) m \(m) n \(n) threads \(threads)")
        outputs.append(out)
      }
      // The row blocks and column panels do not depend on the number of threads.
      for out in outputs.dropFirst() {
        XCTAssertEqual(
          zip(out.data, outputs[0].data).filter { $0.bitPattern != $1.bitPattern }.count, 0,
          "k \(k) m \(m) n \(n): values that change with the number of threads")
      }
    }
  }

  func testAttendColumnsGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 141)
    let scores = random.tensor([900, 23], -6, 6)
    let values = random.tensor([900, 80], -2, 2)
    XCTAssertEqual(VectorKernels.use(.avx2), 8)
    var narrowScores = scores
    let narrow = attendColumns(&narrowScores, values: values)
    guard VectorKernels.use(.avx512) == 16 else {
      throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
    }
    var wideScores = scores
    let wide = attendColumns(&wideScores, values: values)
    XCTAssertEqual(
      zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count, 0,
      "outputs that differ between AVX2 and AVX-512")
  }

  /// Keys transposed once give the bits of `attention`, whose query rows run in blocks of 4
  /// (the padded last block included), for any number of threads.
  func testTransposedKeysGiveTheBitsOfAttention() {
    var random = SeededRandom(seed: 142)
    for (groups, queries, keys, depth, valueDepth) in [
      (8, 7, 300, 16, 16), (3, 1, 50, 8, 24), (2, 9, 4096, 16, 16),
    ] {
      let q = random.tensor([groups, queries, depth])
      let k = random.tensor([groups, keys, depth])
      let v = random.tensor([groups, keys, valueDepth])
      let transposed = TransposedKeys(k)
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        let expected = attention(q: q, k: k, v: v, bias: nil, scale: 0.25)
        let actual = attention(q: q, keys: transposed, v: v, scale: 0.25)
        XCTAssertEqual(actual.shape, expected.shape)
        XCTAssertEqual(
          zip(actual.data, expected.data).filter { $0.bitPattern != $1.bitPattern }.count, 0,
          "G \(groups) Nq \(queries) Nk \(keys) threads \(threads): values that differ from attention")
      }
    }
  }

  /// a^T b against a double loop, and the head-by-head products against the same loop over each
  /// head's own columns; the same bits for any number of threads.
  func testTransposedProductsAgainstLoops() {
    var random = SeededRandom(seed: 143)
    for (k, m, n, heads) in [(4096, 7, 128, 8), (700, 5, 32, 2), (1, 3, 16, 1), (513, 9, 64, 4)] {
      let a = random.tensor([k, heads * m], -1, 1)
      let b = random.tensor([k, n], -2, 2)
      var whole = Expected(shape: [heads * m, n])
      var perHead = Expected(shape: [m, n])
      let depth = n / heads
      for i in 0..<(heads * m) {
        for c in 0..<n {
          for p in 0..<k {
            let term = Double(a.data[p * heads * m + i]) * Double(b.data[p * n + c])
            whole.values[i * n + c] += term
            whole.magnitudes[i * n + c] += abs(term)
            // Column i = h * m + t of a belongs to head h, which owns b's columns h * depth ..<.
            if c / depth == i / m {
              perHead.values[(i % m) * n + c] += term
              perHead.magnitudes[(i % m) * n + c] += abs(term)
            }
          }
        }
      }
      var first: (Tensor, Tensor)?
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        let product = transposedProduct(a, b)
        let heads = transposedHeadProducts(a, values: b, heads: heads)
        assertClose(
          product, whole, relative: 1e-6, absolute: 1e-7, "transposedProduct k \(k) threads \(threads)")
        assertClose(
          heads, perHead, relative: 1e-6, absolute: 1e-7, "transposedHeadProducts k \(k) threads \(threads)")
        if let (p0, h0) = first {
          XCTAssertEqual(
            p0.data.map(\.bitPattern), product.data.map(\.bitPattern), "k \(k) threads \(threads)")
          XCTAssertEqual(h0.data.map(\.bitPattern), heads.data.map(\.bitPattern), "k \(k) threads \(threads)")
        } else {
          first = (product, heads)
        }
      }
    }
  }

  /// The exponentiated columns and their sums, as attendColumns' softmax uses them.
  func testExponentiateColumnsAgainstDouble() {
    var random = SeededRandom(seed: 144)
    let (k, m) = (1300, 21)
    let scores = random.tensor([k, m], -8, 8)
    var e = scores
    let sums = exponentiateColumns(&e)
    for i in 0..<m {
      let column = (0..<k).map { Double(scores.data[$0 * m + i]) }
      let maximum = column.max()!
      var total = 0.0
      for p in 0..<k {
        let want = exp(column[p] - maximum)
        total += want
        XCTAssertEqual(Double(e.data[p * m + i]), want, accuracy: 4e-7 * max(want, 1e-30) + 1e-37)
      }
      XCTAssertEqual(Double(sums[i]), total, accuracy: 1e-5 * total)
    }
  }

  /// The token-major to head-major reordering with row scales, and the row-scaled sum.
  func testHeadMajorColumnsAndRowScaledSum() {
    var random = SeededRandom(seed: 145)
    let (rows, tokens, heads) = (37, 7, 8)
    let x = random.tensor([rows, tokens * heads], -3, 3)
    let (b, c) = (
      random.tensor([rows, tokens * heads], -3, 3), random.tensor([rows, tokens * heads], -3, 3)
    )
    let scales = (0..<rows).map { Float($0) * 0.25 - 2 }
    let reordered = headMajorColumns(x, heads: heads, rowScales: scales)
    let summed = rowScaledSum(x, b, rowScales: scales, plus: c)
    for r in 0..<rows {
      for t in 0..<tokens {
        for h in 0..<heads {
          let i = r * tokens * heads + t * heads + h
          XCTAssertEqual(reordered.data[r * tokens * heads + h * tokens + t], x.data[i] * scales[r])
          XCTAssertEqual(summed.data[i], scales[r] * (x.data[i] + b.data[i]) + c.data[i])
        }
      }
    }
  }
}
