import Foundation
import SAMTensor
import XCTest

final class InvertedResidualTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    super.tearDown()
  }

  /// The fused block gives the bits of its three layers run one after the other; and those match
  /// naive loops within 1e-5 relative (three float32 products and GELUs in a row, each within
  /// 1e-6 of its sum of |terms|, see PackedGEMMTests; the magnitudes below are those of the final
  /// product only, so the bound is loosened tenfold).
  func testFusedBlockEqualsTheThreeLayersAndNaiveLoops() {
    var random = SeededRandom(seed: 130)
    // Widths 1, 2 (edge columns only) and 13; heights that leave thread bands of one row.
    for (height, width) in [(9, 13), (3, 1), (2, 2), (1, 5)] {
      let (channels, hidden) = (8, 32)
      let x = random.tensor([height, width, channels], -2, 2)
      let expand = random.tensor([hidden, channels])
      let expandBias = random.tensor([hidden])
      let depthwise = random.tensor([hidden, 1, 3, 3])
      let depthwiseBias = random.tensor([hidden])
      let project = random.tensor([channels, hidden])
      let projectBias = random.tensor([channels])
      let weights = InvertedResidualWeights(
        expand: PackedWeight(expand), expandBias: expandBias, depthwise: depthwise,
        depthwiseBias: depthwiseBias,
        project: PackedWeight(project), projectBias: projectBias)
      let hiddenOut = linear(x, packed: weights.expand, bias: expandBias, activation: .gelu)
      let convolved = depthwiseConv2d(
        hiddenOut, weight: depthwise, bias: depthwiseBias, stride: 1, padding: 1, activation: .gelu)
      let layered = linear(
        convolved, packed: weights.project, bias: projectBias, activation: .gelu, residual: x)
      var naive = Reference.linear(
        geluTensor(
          Reference.conv2d(
            geluTensor(Reference.linear(x, weight: expand, bias: expandBias)), weight: depthwise,
            bias: depthwiseBias, stride: 1, padding: 1, depthwise: true)), weight: project, bias: projectBias)
      for i in 0..<naive.values.count {
        naive.values[i] = Reference.gelu(naive.values[i] + Double(x.data[i]))
        naive.magnitudes[i] = 1.2 * (naive.magnitudes[i] + abs(Double(x.data[i]))) + abs(naive.values[i])
      }
      assertClose(layered, naive, relative: 1e-5, "three layers \(height)x\(width)")
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        let fused = invertedResidual(x, weights: weights)
        XCTAssertEqual(fused.shape, layered.shape)
        let differing = zip(fused.data, layered.data).filter { $0.bitPattern != $1.bitPattern }.count
        XCTAssertEqual(
          differing, 0, "fused vs layered \(height)x\(width), \(threads) threads: values that differ")
      }
    }
  }

  private func geluTensor(_ expected: Expected) -> Tensor {
    Tensor(shape: expected.shape, data: expected.values.map { Float(Reference.gelu($0)) })
  }
}
