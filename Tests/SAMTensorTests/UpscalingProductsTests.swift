import Foundation
import SAMTensor
import XCTest

// Tolerance: 1e-5 of the sum of |terms| of the final dot products plus 1e-5 absolute. The float32
// chain is two GEMMs, a LayerNorm (which divides by the standard deviation of rows of ~unit
// scale, carrying the GEMM's 1e-6-relative rounding along) and two GELUs (within 2.25e-7 relative, or
// 5.5e-9 absolute below -3).
private let upscalingRelative = 1e-5
private let upscalingAbsolute = 1e-5

final class UpscalingProductsTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// (H, W, Cin, C1, C2, M): channel counts off the 16-lane width exercise the kernels' partial
  /// vectors; the model's 64 and 32 channels their unrolled paths; 3 rows per step and 16 pixels
  /// per LayerNorm group leave partial steps and groups.
  private let shapes = [
    (3, 5, 12, 10, 12, 3), (2, 4, 16, 16, 8, 1), (1, 1, 3, 5, 3, 2), (4, 3, 9, 8, 17, 4),
    (5, 3, 24, 64, 32, 3), (2, 7, 20, 70, 33, 1),
  ]

  func testMatchesNaiveLoopsOnAwkwardShapes() {
    var random = SeededRandom(seed: 41)
    for (h, w, cin, c1, c2, m) in shapes {
      let x = random.tensor([h, w, cin])
      let weights = NaiveUpscaling(
        conv1Weight: random.tensor([cin, c1, 2, 2]), conv1Bias: random.tensor([c1]),
        normWeight: random.tensor([c1], 0.5, 1.5), normBias: random.tensor([c1]),
        conv2Weight: random.tensor([c1, c2, 2, 2]), conv2Bias: random.tensor([c2]), eps: 1e-6)
      let vectors = random.tensor([m, c2])
      let fused = UpscalingProducts(
        conv1Weight: weights.conv1Weight, conv1Bias: weights.conv1Bias, normWeight: weights.normWeight,
        normBias: weights.normBias, eps: Float(weights.eps), conv2Weight: weights.conv2Weight,
        conv2Bias: weights.conv2Bias)
      let expected = weights.products(x, vectors: vectors)
      for width in [VectorKernels.Width.avx2, .avx512] {
        let lanes = VectorKernels.use(width)
        for threads in [1, 2, 3] {
          ComputeThreads.set(threads)
          assertClose(
            fused(x, vectors: vectors), expected, relative: upscalingRelative, absolute: upscalingAbsolute,
            "upscaling products \([h, w, cin]) -> \(c1) -> \(c2) x \(m), \(lanes) lanes, threads \(threads)")
        }
      }
    }
  }

  /// The kernels' AVX2 and AVX-512 versions run the same operations in the same order.
  func testGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 43)
    for (h, w, cin, c1, c2, m) in shapes {
      let fused = randomUpscaling(&random, cin: cin, c1: c1, c2: c2)
      let x = random.tensor([h, w, cin])
      let vectors = random.tensor([m, c2])
      XCTAssertEqual(VectorKernels.use(.avx2), 8)
      let narrow = fused(x, vectors: vectors)
      guard VectorKernels.use(.avx512) == 16 else {
        throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
      }
      let wide = fused(x, vectors: vectors)
      let differing = zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count
      XCTAssertEqual(differing, 0, "\([h, w, cin]) -> \(c1) -> \(c2) x \(m): outputs that differ")
    }
  }

  /// With a region, its outputs are the same bits as the full products' and every other output is
  /// NaN: regions of whole rows, of part rows, both, the whole grid and none, at 1-3 threads, on
  /// both ISAs.
  func testRegionGivesTheSameBitsForItsPixelsAndNaNElsewhere() {
    var random = SeededRandom(seed: 47)
    let (h, w, cin, c1, c2, m) = (7, 6, 20, 64, 32, 2)
    let fused = randomUpscaling(&random, cin: cin, c1: c1, c2: c2)
    let x = random.tensor([h, w, cin])
    let vectors = random.tensor([m, c2])
    for width in [VectorKernels.Width.avx2, .avx512] {
      let lanes = VectorKernels.use(width)
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        let full = fused(x, vectors: vectors)
        for (rows, columns) in [(3, 6), (7, 4), (4, 1), (1, 5), (7, 6), (0, 6), (5, 0)] {
          let part = fused(x, vectors: vectors, region: GridRegion(rows: rows, columns: columns))
          XCTAssertEqual(part.shape, full.shape)
          assertRegion(
            part, full, rows: 4 * rows, columns: 4 * columns,
            "region \(rows)x\(columns) of \(h)x\(w), \(lanes) lanes, \(threads) threads")
        }
      }
    }
  }

  /// A plane depends only on its own vector: the same bits alone as beside others.
  func testPlanesIndependentOfOtherVectors() {
    var random = SeededRandom(seed: 42)
    let (cin, c1, c2) = (16, 8, 8)
    let fused = UpscalingProducts(
      conv1Weight: random.tensor([cin, c1, 2, 2]), conv1Bias: random.tensor([c1]),
      normWeight: random.tensor([c1]), normBias: random.tensor([c1]), eps: 1e-6,
      conv2Weight: random.tensor([c1, c2, 2, 2]), conv2Bias: random.tensor([c2]))
    let x = random.tensor([6, 5, cin])
    let vectors = random.tensor([3, c2])
    let all = fused(x, vectors: vectors)
    let plane = 16 * 6 * 5
    for m in 0..<3 {
      let alone = fused(
        x, vectors: Tensor(shape: [1, c2], data: Array(vectors.data[(m * c2)..<((m + 1) * c2)])))
      XCTAssertEqual(alone.data, Array(all.data[(m * plane)..<((m + 1) * plane)]), "plane \(m)")
    }
  }
}

/// The definition step by step in Double: convT (kernel = stride = 2), bias, LayerNorm over
/// channels, GELU, convT, bias, GELU, then the dot product of every pixel with every vector.
struct NaiveUpscaling {
  var conv1Weight: Tensor  // [Cin, C1, 2, 2]
  var conv1Bias: Tensor
  var normWeight: Tensor
  var normBias: Tensor
  var conv2Weight: Tensor  // [C1, C2, 2, 2]
  var conv2Bias: Tensor
  var eps: Double

  /// x [H, W, Cin] (as Doubles, channels-last) -> [2H, 2W, Cout]
  static func convTranspose(
    _ x: [Double], height: Int, width: Int, weight: Tensor, bias: Tensor
  ) -> [Double] {
    let (cin, cout) = (weight.shape[0], weight.shape[1])
    var out = [Double](repeating: 0, count: 4 * height * width * cout)
    for y in 0..<(2 * height) {
      for column in 0..<(2 * width) {
        let (iy, dy, ix, dx) = (y / 2, y % 2, column / 2, column % 2)
        for co in 0..<cout {
          var sum = Double(bias.data[co])
          for ci in 0..<cin {
            sum += x[(iy * width + ix) * cin + ci] * Double(weight.data[((ci * cout + co) * 2 + dy) * 2 + dx])
          }
          out[(y * 2 * width + column) * cout + co] = sum
        }
      }
    }
    return out
  }

  func products(_ x: Tensor, vectors: Tensor) -> Expected {
    let (h, w) = (x.shape[0], x.shape[1])
    let stage1 = Self.convTranspose(
      x.data.map(Double.init), height: h, width: w, weight: conv1Weight, bias: conv1Bias)
    return products(firstStage: stage1, height: h, width: w, vectors: vectors)
  }

  /// The same from convT1's output [2H, 2W, C1] (bias included).
  func products(firstStage stage1: [Double], height h: Int, width w: Int, vectors: Tensor) -> Expected {
    var stage1 = stage1
    let (c1, c2, masks) = (conv1Bias.count, conv2Bias.count, vectors.shape[0])
    for pixel in 0..<(4 * h * w) {
      let row = Array(stage1[(pixel * c1)..<((pixel + 1) * c1)])
      let mean = row.reduce(0, +) / Double(c1)
      let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c1)
      for c in 0..<c1 {
        let normalized = (row[c] - mean) / (variance + eps).squareRoot()
        stage1[pixel * c1 + c] = Self.gelu(normalized * Double(normWeight.data[c]) + Double(normBias.data[c]))
      }
    }
    let stage2 = Self.convTranspose(stage1, height: 2 * h, width: 2 * w, weight: conv2Weight, bias: conv2Bias)
      .map(Self.gelu)
    var result = Expected(shape: [masks, 4 * h, 4 * w])
    let plane = 16 * h * w
    for m in 0..<masks {
      for pixel in 0..<plane {
        var (sum, magnitude) = (0.0, 0.0)
        for c in 0..<c2 {
          let term = stage2[pixel * c2 + c] * Double(vectors.data[m * c2 + c])
          sum += term
          magnitude += abs(term)
        }
        result.values[m * plane + pixel] = sum
        result.magnitudes[m * plane + pixel] = magnitude
      }
    }
    return result
  }

  static func gelu(_ x: Double) -> Double { x * 0.5 * erfc(-x / 2.0.squareRoot()) }
}

/// Upscaling products with random weights (norm weights in [0.5, 1.5]).
private func randomUpscaling(_ random: inout SeededRandom, cin: Int, c1: Int, c2: Int) -> UpscalingProducts {
  UpscalingProducts(
    conv1Weight: random.tensor([cin, c1, 2, 2]), conv1Bias: random.tensor([c1]),
    normWeight: random.tensor([c1], 0.5, 1.5), normBias: random.tensor([c1]), eps: 1e-6,
    conv2Weight: random.tensor([c1, c2, 2, 2]), conv2Bias: random.tensor([c2]))
}

/// part [M, H, W] equals full in its top-left rows x columns corner, bit for bit, and is NaN
/// everywhere else.
func assertRegion(
  _ part: Tensor, _ full: Tensor, rows: Int, columns: Int, _ message: String, file: StaticString = #filePath,
  line: UInt = #line
) {
  let (height, width) = (full.shape[1], full.shape[2])
  var (differing, notNaN) = (0, 0)
  for (i, (got, want)) in zip(part.data, full.data).enumerated() {
    let (y, x) = ((i / width) % height, i % width)
    if y < rows && x < columns {
      if got.bitPattern != want.bitPattern { differing += 1 }
    } else if !got.isNaN {
      notNaN += 1
    }
  }
  XCTAssertEqual(differing, 0, "\(message): outputs of the region that differ", file: file, line: line)
  XCTAssertEqual(notNaN, 0, "\(message): outputs outside the region that are not NaN", file: file, line: line)
}
