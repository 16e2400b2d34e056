import Foundation
import SAMTensor
import XCTest

// Tolerance for GEMM-based results: 1e-6 of the sum of |terms|. The rounding error of a float32
// dot product is at most k * 2^-24 * sum|terms| and in practice about sqrt(k) * 2^-24 (k <= 600
// here gives ~1.5e-6 worst case, ~1.5e-7 typical); OpenBLAS also reorders the summation.
private let gemmTolerance = 1e-6

final class GEMMTests: XCTestCase {
  func testSgemmAllTranspositionsWithStridesAlphaBeta() {
    checkAllTranspositions(m: 37, n: 29, k: 53, seed: 1)
  }

  func testLargeSgemmSplitIntoRowBlocks() {
    // m * n * k >= 2^21 and m >= n: sgemm runs one block of rows per thread.
    ComputeThreads.set(3)
    defer { ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount) }
    checkAllTranspositions(m: 301, n: 70, k: 101, seed: 5)
  }

  func testLargeSgemmSplitIntoColumnBlocks() {
    // n > m: one block of columns per thread.
    ComputeThreads.set(3)
    defer { ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount) }
    checkAllTranspositions(m: 21, n: 1103, k: 97, seed: 6)
  }

  private func checkAllTranspositions(m: Int, n: Int, k: Int, seed: UInt64) {
    var random = SeededRandom(seed: seed)
    for transposeA in [false, true] {
      for transposeB in [false, true] {
        // Row strides larger than the logical width, to exercise lda/ldb/ldc.
        let lda = (transposeA ? m : k) + 3
        let ldb = (transposeB ? k : n) + 5
        let ldc = n + 2
        let a = random.tensor([(transposeA ? k : m) * lda]).data
        let b = random.tensor([(transposeB ? n : k) * ldb]).data
        var c = random.tensor([m * ldc]).data
        let c0 = c
        let (alpha, beta): (Float, Float) = (0.75, -0.5)
        a.withUnsafeBufferPointer { ap in
          b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
              sgemm(
                m: m, n: n, k: k, a: ap.baseAddress!, lda: lda, transposeA: transposeA,
                b: bp.baseAddress!, ldb: ldb, transposeB: transposeB, c: cp.baseAddress!, ldc: ldc,
                alpha: alpha, beta: beta)
            }
          }
        }
        let product = Reference.gemm(
          m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb,
          transposeB: transposeB)
        var expected = Expected(shape: [m, n])
        var actual = [Float](repeating: 0, count: m * n)
        var paddingChanged = 0
        for i in 0..<m {
          for j in 0..<n {
            let old = Double(c0[i * ldc + j])
            expected.values[i * n + j] = Double(alpha) * product.values[i * n + j] + Double(beta) * old
            expected.magnitudes[i * n + j] =
              abs(Double(alpha)) * product.magnitudes[i * n + j] + abs(Double(beta) * old)
            actual[i * n + j] = c[i * ldc + j]
          }
          // Padding columns beyond n are untouched.
          for j in n..<ldc where c[i * ldc + j] != c0[i * ldc + j] { paddingChanged += 1 }
        }
        XCTAssertEqual(paddingChanged, 0, "sgemm wrote outside C's n columns")
        assertClose(
          Tensor(shape: [m, n], data: actual), expected, relative: gemmTolerance,
          "sgemm \(m)x\(n)x\(k) transposeA=\(transposeA) transposeB=\(transposeB)")
      }
    }
  }

  func testSgemmBetaZeroIgnoresGarbageInC() {
    // Outputs are allocated uninitialized and filled by beta = 0 GEMMs: NaN in C must not leak.
    var random = SeededRandom(seed: 2)
    let (m, n, k) = (5, 7, 3)
    let a = random.tensor([m, k])
    let b = random.tensor([k, n])
    var c = [Float](repeating: .nan, count: m * n)
    a.data.withUnsafeBufferPointer { ap in
      b.data.withUnsafeBufferPointer { bp in
        c.withUnsafeMutableBufferPointer { cp in
          sgemm(
            m: m, n: n, k: k, a: ap.baseAddress!, lda: k, transposeA: false, b: bp.baseAddress!,
            ldb: n, transposeB: false, c: cp.baseAddress!, ldc: n)
        }
      }
    }
    XCTAssertFalse(c.contains { $0.isNaN })
  }

  func testSgemmWithEmptyInnerDimensionScalesC() {
    var c: [Float] = [1, 2, 3, 4]
    let empty: [Float] = [0]
    empty.withUnsafeBufferPointer { ep in
      c.withUnsafeMutableBufferPointer { cp in
        sgemm(
          m: 2, n: 2, k: 0, a: ep.baseAddress!, lda: 1, transposeA: false, b: ep.baseAddress!, ldb: 2,
          transposeB: false, c: cp.baseAddress!, ldc: 2, beta: 0.5)
      }
    }
    XCTAssertEqual(c, [0.5, 1, 1.5, 2])
  }

  func testLinearOnThreeDimensionalInputWithAndWithoutBias() {
    var random = SeededRandom(seed: 3)
    let x = random.tensor([3, 17, 45])
    let weight = random.tensor([23, 45])
    let bias = random.tensor([23])
    assertClose(
      linear(x, weight: weight, bias: bias), Reference.linear(x, weight: weight, bias: bias),
      relative: gemmTolerance, "linear with bias")
    assertClose(
      linear(x, weight: weight, bias: nil), Reference.linear(x, weight: weight, bias: nil),
      relative: gemmTolerance, "linear without bias")
  }

  func testLinearAtTheEncoderMLPShape() {
    // TinyViT stage 3 MLP fc1 on the 64x64 grid: 4096 tokens, 320 -> 1280.
    var random = SeededRandom(seed: 4)
    let x = random.tensor([4096, 320])
    let weight = random.tensor([1280, 320])
    let bias = random.tensor([1280])
    assertClose(
      linear(x, weight: weight, bias: bias), Reference.linear(x, weight: weight, bias: bias),
      relative: gemmTolerance, "linear 4096x320 -> 1280")
  }

  func testPreferredCoreFollowsCPUFlags() {
    XCTAssertEqual(
      BLASCore.preferredCore(forFlags: [
        "sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl",
      ]),
      "SkylakeX")
    XCTAssertEqual(BLASCore.preferredCore(forFlags: ["sse3", "avx", "avx2", "fma", "avx512f"]), "Haswell")
    XCTAssertNil(BLASCore.preferredCore(forFlags: ["sse3", "avx"]))
  }

  func testAUserCoreTypeBelowTheCPUIsNoticed() {
    let avx512: Set = ["avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
    let held = BLASCore.heldBack(coreType: "Haswell", flags: avx512, current: "Haswell")
    XCTAssertEqual(held?.set, "Haswell")
    XCTAssertEqual(held?.preferred, "SkylakeX")
    XCTAssertNil(BLASCore.heldBack(coreType: nil, flags: avx512, current: "Haswell"), "not set by the user")
    XCTAssertNil(BLASCore.heldBack(coreType: "Cooperlake", flags: avx512, current: "Cooperlake"))
    let avx2: Set = ["avx", "avx2", "fma"]
    XCTAssertNil(BLASCore.heldBack(coreType: "Haswell", flags: avx2, current: "Haswell"))
    XCTAssertNotNil(BLASCore.heldBack(coreType: "Prescott", flags: avx2, current: "Prescott"))
  }

  func testOpenBLASDoesNotRunItsSSE3FallbackOnAnAVX2Machine() throws {
    #if os(Linux) && arch(x86_64)
      let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
      let flags = Set(
        cpuinfo.split(separator: "\n").first { $0.hasPrefix("flags") }?.split(separator: " ").map(String.init)
          ?? [])
      guard flags.isSuperset(of: ["avx2", "fma"]),
        ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil
      else { throw XCTSkip("no AVX2 + FMA, or OPENBLAS_CORETYPE set by the user") }
      // Any GEMM triggers the check.
      _ = linear(Tensor(zeros: [2, 3]), weight: Tensor(zeros: [4, 3]), bias: nil)
      let name = try XCTUnwrap(BLASCore.name)
      print("OpenBLAS core: \(name) (upgraded to: \(BLASCore.upgradedTo ?? "none"))")
      XCTAssertNotEqual(name.lowercased(), "prescott")
    #else
      throw XCTSkip("OpenBLAS core selection is only checked on x86_64 Linux")
    #endif
  }
}
