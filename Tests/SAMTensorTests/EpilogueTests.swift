import Foundation
import SAMTensor
import XCTest

// Tolerance: 1e-6 of (1.2 * sum of |terms| + |GELU|). The product's float32 rounding (1e-6 of the
// sum of |terms|, see GEMMTests) passes through GELU, whose slope is below 1.13; GELU itself is
// within 2.25e-7 relative of exact, or 5.5e-9 absolute below x = -3 (ElementwiseTests).
private let epilogueTolerance = 1e-6

/// GELU of reference results, with the error scale described above.
private func geluOf(_ expected: Expected) -> Expected {
  var result = expected
  for i in 0..<result.values.count {
    result.values[i] = Reference.gelu(expected.values[i])
    result.magnitudes[i] = 1.2 * expected.magnitudes[i] + abs(result.values[i])
  }
  return result
}

final class EpilogueTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    super.tearDown()
  }

  func testLinearWithGELUWithAndWithoutBias() {
    var random = SeededRandom(seed: 70)
    // Large enough for the GEMM and the GELU pass to be split over threads, and small.
    for (rows, inF, outF) in [(1000, 40, 96), (9, 13, 24), (300, 7, 1000)] {
      let x = random.tensor([rows, inF], -2, 2)
      let weight = random.tensor([outF, inF])
      let bias = random.tensor([outF])
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        for b in [bias, nil] {
          let label = "linear \(rows)x\(inF) -> \(outF) bias \(b != nil) threads \(threads)"
          assertClose(
            linear(x, weight: weight, bias: b, activation: .gelu),
            geluOf(Reference.linear(x, weight: weight, bias: b)), relative: epilogueTolerance, "\(label) gelu"
          )
          assertClose(
            linear(x, weight: weight, bias: b), Reference.linear(x, weight: weight, bias: b),
            relative: epilogueTolerance, label)
        }
      }
    }
  }

  func testLinearWithResidualAndGELUInBlocksAndInOnePass() {
    var random = SeededRandom(seed: 72)
    // (5000, 64, 256): a small weight over many rows, the blocked path (blocks of 409 rows, the
    // last one partial); (700, 64, 256): too few rows for it; (3000, 300, 400): too large a weight.
    for (rows, inF, outF) in [(5000, 64, 256), (700, 64, 256), (3000, 300, 400)] {
      let x = random.tensor([rows, inF], -2, 2)
      let weight = random.tensor([outF, inF])
      let bias = random.tensor([outF])
      let residual = random.tensor([rows, outF], -2, 2)
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        for b in [bias, nil] {
          let label = "linear \(rows)x\(inF) -> \(outF) bias \(b != nil) threads \(threads)"
          var expected = Reference.linear(x, weight: weight, bias: b)
          let residualValues = residual.data
          for i in 0..<expected.values.count {
            expected.values[i] += Double(residualValues[i])
            expected.magnitudes[i] += abs(Double(residualValues[i]))
          }
          assertClose(
            linear(x, weight: weight, bias: b, residual: residual), expected, relative: epilogueTolerance,
            "\(label) residual")
          assertClose(
            linear(x, weight: weight, bias: b, activation: .gelu, residual: residual), geluOf(expected),
            relative: epilogueTolerance, "\(label) residual gelu")
          assertClose(
            linear(x, weight: weight, bias: b), Reference.linear(x, weight: weight, bias: b),
            relative: epilogueTolerance, label)
        }
      }
    }
  }

  func testConvolutionsWithGELU() {
    var random = SeededRandom(seed: 71)
    let x = random.tensor([21, 19, 16], -2, 2)
    let bias = random.tensor([16])
    let weight3x3 = random.tensor([16, 16, 3, 3])
    assertClose(
      conv2d(x, weight: weight3x3, bias: bias, stride: 2, padding: 1, activation: .gelu),
      geluOf(Reference.conv2d(x, weight: weight3x3, bias: bias, stride: 2, padding: 1)),
      relative: epilogueTolerance, "conv2d 3x3 gelu")
    let weight1x1 = random.tensor([16, 16, 1, 1])
    assertClose(
      conv2d(x, weight: weight1x1, bias: bias, stride: 1, padding: 0, activation: .gelu),
      geluOf(Reference.conv2d(x, weight: weight1x1, bias: bias, stride: 1, padding: 0)),
      relative: epilogueTolerance, "conv2d 1x1 gelu")
    let depthwiseWeight = random.tensor([16, 1, 3, 3])
    for stride in [1, 2] {
      assertClose(
        depthwiseConv2d(
          x, weight: depthwiseWeight, bias: bias, stride: stride, padding: 1, activation: .gelu),
        geluOf(
          Reference.conv2d(
            x, weight: depthwiseWeight, bias: bias, stride: stride, padding: 1, depthwise: true)),
        relative: epilogueTolerance, "depthwise stride \(stride) gelu")
    }
  }
}
