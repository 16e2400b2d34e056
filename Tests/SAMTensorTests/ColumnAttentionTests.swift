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
}
