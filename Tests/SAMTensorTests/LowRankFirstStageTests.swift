import Foundation
import XCTest

@testable import SAMTensor

// Tolerance: 1e-5 of the sum of |terms| (each value is one float32 multiply-add chain over
// r1 + r2 + 4 coefficients, whose own products round at 6e-8 relative), plus 1e-6 absolute.
private let stageRelative = 1e-5
private let stageAbsolute = 1e-6

/// The low-rank first stage (LowRankFirstStage.swift, the coefficient kernel and the GEMM's scaled
/// residual) against its definition in Double, and the upscaling fed from it against the naive
/// upscaling of that stage.
final class LowRankFirstStageTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// (pixels, F, r1, r2): ranks and widths off the 16 lanes and the 32-column panels.
  private let shapes = [(1, 1, 1, 1), (5, 20, 3, 7), (13, 64, 17, 33), (130, 256, 56, 56), (29, 40, 16, 32)]

  private func randomStage(_ random: inout SeededRandom, pixels: Int, features: Int, r1: Int, r2: Int)
    -> (stage: LowRankFirstStage, expected: Expected)
  {
    let side = random.tensor([pixels, features])
    let basis = random.tensor([r1 + r2 + 4, features])
    let bias = random.tensor([features]).data
    let (a1, a2) = (random.tensor([pixels, r1], 0, 1), random.tensor([pixels, r2], 0, 1))
    let (mean1, mean2) = (random.tensor([pixels], -2, 2).data, random.tensor([pixels], -2, 2).data)
    let (inverse1, inverse2) = (random.tensor([pixels], 0.2, 3).data, random.tensor([pixels], 0.2, 3).data)
    let stage = LowRankFirstStage(
      side: side, basis: basis, bias: bias, weights1: a1, mean1: mean1, inverse1: inverse1, weights2: a2,
      mean2: mean2, inverse2: inverse2)
    var expected = Expected(shape: [pixels, features])
    let (sideValues, basisValues, a1Values, a2Values) = (side.data, basis.data, a1.data, a2.data)
    for i in 0..<pixels {
      let beta = Double(inverse2[i])
      let alpha = Double(inverse1[i]) * beta
      let coefficients =
        (0..<r1).map { alpha * Double(a1Values[i * r1 + $0]) }
        + (0..<r2).map { beta * Double(a2Values[i * r2 + $0]) }
        + [alpha, -alpha * Double(mean1[i]), beta, -beta * Double(mean2[i])]
      for f in 0..<features {
        let first = alpha * Double(sideValues[i * features + f])
        var (sum, magnitude) = (first + Double(bias[f]), abs(first) + abs(Double(bias[f])))
        for (k, coefficient) in coefficients.enumerated() {
          let term = coefficient * Double(basisValues[k * features + f])
          sum += term
          magnitude += abs(term)
        }
        expected.values[i * features + f] = sum
        expected.magnitudes[i * features + f] = magnitude
      }
    }
    return (stage, expected)
  }

  func testEvaluatedMatchesItsDefinition() {
    var random = SeededRandom(seed: 71)
    for (pixels, features, r1, r2) in shapes {
      let (stage, expected) = randomStage(&random, pixels: pixels, features: features, r1: r1, r2: r2)
      var results = [Tensor]()
      for width in [VectorKernels.Width.avx2, .avx512] {
        let lanes = VectorKernels.use(width)
        let got = stage.evaluated()
        assertClose(
          got, expected, relative: stageRelative, absolute: stageAbsolute,
          "low-rank stage \([pixels, features, r1, r2]), \(lanes) lanes")
        if lanes == 16 || width == .avx2 { results.append(got) }
      }
      // The same operations in the same order on both ISAs.
      if results.count == 2 {
        XCTAssertTrue(results[0] == results[1], "\([pixels, features, r1, r2]): ISAs differ")
      }
    }
  }

  /// The upscaling products fed from the low-rank stage equal the naive upscaling of the stage's
  /// definition, on every ISA and thread count, and the same bits on both ISAs.
  func testUpscalingFromTheLowRankStage() {
    var random = SeededRandom(seed: 73)
    // (H, W, C1, C2, M, r1, r2): partial steps (3 rows), the model's 64 and 32 channels.
    for (h, w, c1, c2, m, r1, r2) in [
      (3, 5, 10, 12, 3, 5, 9), (5, 3, 64, 32, 3, 17, 16), (1, 2, 8, 8, 1, 1, 2),
    ] {
      let (stage, expected) = randomStage(&random, pixels: h * w, features: 4 * c1, r1: r1, r2: r2)
      let naive = NaiveUpscaling(
        conv1Weight: random.tensor([1, c1, 2, 2]), conv1Bias: Tensor(zeros: [c1]),
        normWeight: random.tensor([c1], 0.5, 1.5), normBias: random.tensor([c1]),
        conv2Weight: random.tensor([c1, c2, 2, 2]), conv2Bias: random.tensor([c2]), eps: 1e-6)
      // [H * W, (dy, dx, c)] -> [2H, 2W, c]
      var firstStage = [Double](repeating: 0, count: 4 * h * w * c1)
      for y in 0..<h {
        for x in 0..<w {
          for block in 0..<4 {
            let (dy, dx) = (block / 2, block % 2)
            for c in 0..<c1 {
              firstStage[((2 * y + dy) * 2 * w + 2 * x + dx) * c1 + c] =
                expected.values[(y * w + x) * 4 * c1 + block * c1 + c]
            }
          }
        }
      }
      let vectors = random.tensor([m, c2])
      let want = naive.products(firstStage: firstStage, height: h, width: w, vectors: vectors)
      let upscaling = UpscalingProducts(
        conv1Weight: naive.conv1Weight, conv1Bias: naive.conv1Bias, normWeight: naive.normWeight,
        normBias: naive.normBias, eps: Float(naive.eps), conv2Weight: naive.conv2Weight,
        conv2Bias: naive.conv2Bias)
      var results = [Tensor]()
      for width in [VectorKernels.Width.avx2, .avx512] {
        let lanes = VectorKernels.use(width)
        for threads in [1, 2, 3] {
          ComputeThreads.set(threads)
          let got = upscaling(lowRank: stage, height: h, width: w, vectors: vectors)
          // 1e-4: the stage's own rounding (1e-6 of its scale) is carried through the LayerNorm.
          assertClose(
            got, want, relative: 1e-4, absolute: 1e-4,
            "low-rank upscaling \([h, w, c1, c2, m, r1, r2]), \(lanes) lanes, threads \(threads)")
          if threads == 1 && (lanes == 16 || width == .avx2) { results.append(got) }
          for region in [GridRegion(rows: h - 1, columns: w), GridRegion(rows: h, columns: w - 1)] {
            assertRegion(
              upscaling(lowRank: stage, height: h, width: w, vectors: vectors, region: region), got,
              rows: 4 * region.rows, columns: 4 * region.columns,
              "low-rank upscaling \([h, w, c1, c2, m, r1, r2]) in \(region), \(lanes) lanes, threads \(threads)"
            )
          }
        }
      }
      if results.count == 2 { XCTAssertTrue(results[0] == results[1], "\([h, w, c1, c2]): ISAs differ") }
    }
  }
}
