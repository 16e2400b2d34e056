import Foundation
import SAMTensor
import XCTest

// Tolerance: 1e-6 of (1.2 * sum of |terms| + |GELU|), as in EpilogueTests: the product's float32
// rounding (GEMMTests) passing through GELU, whose slope is below 1.13.
private let packedTolerance = 1e-6

final class PackedGEMMTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// Shapes that leave partial register tiles (rows not a multiple of 12 or 6), partial panels
  /// (outF not a multiple of 32 or 16), several row and column blocks, a single row, and at most
  /// 16 output columns (one vector per row with AVX-512).
  private let shapes = [
    (rows: 1000, inF: 40, outF: 96), (rows: 9, inF: 13, outF: 24), (rows: 301, inF: 7, outF: 1000),
    (rows: 1, inF: 160, outF: 480), (rows: 77, inF: 1280, outF: 50), (rows: 130, inF: 320, outF: 17),
    (rows: 205, inF: 256, outF: 16), (rows: 11, inF: 9, outF: 5),
    // One register tile of rows through a weight of >= 65,536 values: split by panels.
    (rows: 7, inF: 300, outF: 250), (rows: 3, inF: 2048, outF: 40),
  ]

  /// A prompt's few token rows through a large weight run split by the weight's panels across the
  /// threads: the same bits as on one thread, epilogues included, with a partial last panel.
  func testFewRowsSplitByPanelsGiveTheSameBitsOnAnyThreadCount() {
    var random = SeededRandom(seed: 122)
    let shapes = [
      (rows: 7, inF: 256, outF: 2048), (rows: 12, inF: 2048, outF: 250), (rows: 1, inF: 256, outF: 256),
    ]
    for shape in shapes {
      let x = random.tensor([shape.rows, shape.inF], -2, 2)
      let packed = PackedWeight(random.tensor([shape.outF, shape.inF]))
      let bias = random.tensor([shape.outF])
      let residual = random.tensor([shape.rows, shape.outF], -2, 2)
      ComputeThreads.set(1)
      let alone = linear(x, packed: packed, bias: bias, activation: .gelu, residual: residual)
      for threads in [2, 3, 5] {
        ComputeThreads.set(threads)
        XCTAssertEqual(
          linear(x, packed: packed, bias: bias, activation: .gelu, residual: residual).data, alone.data,
          "\(shape) on \(threads) threads")
      }
    }
  }

  func testPackedLinearMatchesNaiveLoopsWithEveryEpilogue() {
    var random = SeededRandom(seed: 120)
    for shape in shapes {
      let x = random.tensor([shape.rows, shape.inF], -2, 2)
      let weight = random.tensor([shape.outF, shape.inF])
      let packed = PackedWeight(weight)
      let bias = random.tensor([shape.outF])
      let residual = random.tensor([shape.rows, shape.outF], -2, 2)
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        for b in [bias, nil] {
          let label = "packed \(shape) bias \(b != nil) threads \(threads)"
          let product = Reference.linear(x, weight: weight, bias: b)
          assertClose(linear(x, packed: packed, bias: b), product, relative: packedTolerance, label)
          assertClose(
            linear(x, packed: packed, bias: b, activation: .gelu), gelu(of: product),
            relative: packedTolerance, "\(label) gelu")
          let withResidual = adding(residual, to: product)
          assertClose(
            linear(x, packed: packed, bias: b, residual: residual), withResidual, relative: packedTolerance,
            "\(label) residual")
          assertClose(
            linear(x, packed: packed, bias: b, activation: .gelu, residual: residual), gelu(of: withResidual),
            relative: packedTolerance, "\(label) residual gelu")
        }
      }
    }
  }

  func testPackedLinearTakesConvolutionWeightsAndKeepsLeadingDimensions() {
    var random = SeededRandom(seed: 121)
    let x = random.tensor([5, 7, 24], -2, 2)
    let weight = random.tensor([40, 24, 1, 1])
    let bias = random.tensor([40])
    let out = linear(x, packed: PackedWeight(weight), bias: bias)
    XCTAssertEqual(out.shape, [5, 7, 40])
    assertClose(
      out, Reference.conv2d(x, weight: weight, bias: bias, stride: 1, padding: 0), relative: packedTolerance,
      "packed 1x1 convolution")
  }

  func testPackedConvolutionMatchesNaiveLoops() {
    var random = SeededRandom(seed: 123)
    // 3x3 stride 2 (PatchEmbed), 3x3 stride 1 (the neck), a 2x3 kernel without padding; 21 and 19
    // columns leave partial register tiles; 40 output channels, a partial panel.
    for (kernelH, kernelW, stride, padding) in [(3, 3, 2, 1), (3, 3, 1, 1), (2, 3, 1, 0)] {
      let x = random.tensor([23, 19, 16], -2, 2)
      let weight = random.tensor([40, 16, kernelH, kernelW])
      let bias = random.tensor([40])
      let packed = PackedWeight(convolution: weight)
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        for b in [bias, nil] {
          let label = "packed conv \(kernelH)x\(kernelW) stride \(stride) bias \(b != nil) threads \(threads)"
          let expected = Reference.conv2d(x, weight: weight, bias: b, stride: stride, padding: padding)
          assertClose(
            conv2d(x, packed: packed, bias: b, stride: stride, padding: padding), expected,
            relative: packedTolerance, label)
          assertClose(
            conv2d(x, packed: packed, bias: b, stride: stride, padding: padding, activation: .gelu),
            gelu(of: expected), relative: packedTolerance, "\(label) gelu")
        }
      }
    }
  }

  func testPackedLinearGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 122)
    let x = random.tensor([100, 70], -2, 2)
    let weight = random.tensor([90, 70])
    let bias = random.tensor([90])
    let residual = random.tensor([100, 90], -2, 2)
    let packed = PackedWeight(weight)
    XCTAssertEqual(VectorKernels.use(.avx2), 8)
    let narrow = linear(x, packed: packed, bias: bias, activation: .gelu, residual: residual)
    guard VectorKernels.use(.avx512) == 16 else {
      throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
    }
    let wide = linear(x, packed: packed, bias: bias, activation: .gelu, residual: residual)
    let differing = zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count
    XCTAssertEqual(differing, 0, "outputs that differ between AVX2 and AVX-512")
    // At most 16 columns: AVX-512 takes one vector per row.
    let narrowWeight = PackedWeight(random.tensor([13, 70]))
    let wide13 = linear(x, packed: narrowWeight, bias: nil)
    XCTAssertEqual(VectorKernels.use(.avx2), 8)
    let narrow13 = linear(x, packed: narrowWeight, bias: nil)
    XCTAssertEqual(
      zip(narrow13.data, wide13.data).filter { $0.bitPattern != $1.bitPattern }.count, 0,
      "13-column outputs that differ between AVX2 and AVX-512")
  }

  private func gelu(of expected: Expected) -> Expected {
    var result = expected
    for i in 0..<result.values.count {
      result.values[i] = Reference.gelu(expected.values[i])
      result.magnitudes[i] = 1.2 * expected.magnitudes[i] + abs(result.values[i])
    }
    return result
  }

  private func adding(_ residual: Tensor, to expected: Expected) -> Expected {
    var result = expected
    for i in 0..<result.values.count {
      result.values[i] += Double(residual.data[i])
      result.magnitudes[i] += abs(Double(residual.data[i]))
    }
    return result
  }
}
