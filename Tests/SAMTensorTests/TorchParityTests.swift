import Foundation
import SAMTensor
import TestSupport
import XCTest

/// Compares the kernels with PyTorch's own outputs on small inputs, stored in
/// Tests/Fixtures/kernels/torch_kernels.json by make_torch_kernels.py (beside it). The reference
/// loops in the other tests encode our reading of torch's definitions; these check that reading.
final class TorchParityTests: XCTestCase {
  private struct ImageCase: Decodable {
    var input: [Double]
    var shape: [Int]
    var weight: [Double]
    var weightShape: [Int]
    var bias: [Double]
    var stride: Int
    var padding: Int
    var output: [Double]
    var outputShape: [Int]
  }

  private struct ResizeCase: Decodable {
    var input: [Double]
    var shape: [Int]
    var height: Int
    var width: Int
    var output: [Double]
  }

  private struct LayerNormCase: Decodable {
    var input: [Double]
    var shape: [Int]
    var weight: [Double]
    var bias: [Double]
    var eps: Double
    var output: [Double]
  }

  private struct MapCase: Decodable {
    var input: [Double]
    var shape: [Int]?
    var output: [Double]
  }

  private struct AttentionCase: Decodable {
    var q: [Double]
    var k: [Double]
    var v: [Double]
    var shape: [Int]
    var bias: [Double]
    var biasShape: [Int]
    var scale: Double
    var output: [Double]
  }

  private struct Cases: Decodable {
    var resize: [ResizeCase]
    var conv2d: [ImageCase]
    var depthwise: [ImageCase]
    var convTranspose: [ImageCase]
    var layerNorm: LayerNormCase
    var gelu: MapCase
    var softmax: MapCase
    var attention: AttentionCase
    var torchVersion: String
  }

  private func loadCases() throws -> Cases {
    let url = Fixtures.url("kernels/torch_kernels.json")
    let data = try Data(contentsOf: url)
    return try JSONDecoder().decode(Cases.self, from: data)
  }

  private func tensor(_ values: [Double], _ shape: [Int]) -> Tensor {
    Tensor(shape: shape, data: values.map { Float($0) })
  }

  /// |actual - torch| <= absolute + relative * |torch| everywhere; prints the worst ratio.
  private func assertMatchesTorch(
    _ actual: Tensor, _ expected: [Double], shape: [Int], absolute: Double, relative: Double = 0,
    _ label: String, file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertEqual(actual.shape, shape, "\(label): shape", file: file, line: line)
    guard actual.count == expected.count else {
      XCTFail("\(label): \(actual.count) values, torch has \(expected.count)", file: file, line: line)
      return
    }
    var worst = 0.0
    var failures = 0
    for i in 0..<expected.count {
      let ratio = abs(Double(actual.data[i]) - expected[i]) / (absolute + relative * abs(expected[i]))
      if !(ratio <= 1) { failures += 1 }
      if !(ratio <= worst) { worst = ratio }
    }
    print("\(label) vs torch: worst \(String(format: "%.3f", worst)) of the allowance")
    XCTAssertEqual(failures, 0, "\(label): values differ from torch", file: file, line: line)
  }

  func testResizeMatchesTorchInterpolate() throws {
    for (i, c) in try loadCases().resize.enumerated() {
      let result = resizeBilinear(tensor(c.input, c.shape), height: c.height, width: c.width)
      // Inputs in [-20, 20]: 5.7e-6 absolute is 3 float32 ulp at 16-32. torch rounds the four
      // products in another order (up to 2 ulp apart, measured). Computing the source coordinate
      // without torch's fused multiply-add is off by up to 3.5e-5 (measured) and fails here; a
      // wrong neighbour index fails by far more.
      assertMatchesTorch(
        result, c.output, shape: [c.shape[0], c.height, c.width], absolute: 5.7e-6,
        "resize \(i) \(c.shape) -> \(c.height)x\(c.width)")
    }
  }

  func testConvolutionsMatchTorch() throws {
    let cases = try loadCases()
    // Values in [-1, 1] and at most 45 products per output: float32 sums round by at most
    // 45 * 2^-24 < 3e-6 on either side.
    for (i, c) in cases.conv2d.enumerated() {
      let result = conv2d(
        tensor(c.input, c.shape), weight: tensor(c.weight, c.weightShape),
        bias: tensor(c.bias, [c.bias.count]), stride: c.stride, padding: c.padding)
      assertMatchesTorch(result, c.output, shape: c.outputShape, absolute: 6e-6, "conv2d \(i)")
    }
    for (i, c) in cases.depthwise.enumerated() {
      let result = depthwiseConv2d(
        tensor(c.input, c.shape), weight: tensor(c.weight, c.weightShape),
        bias: tensor(c.bias, [c.bias.count]), stride: c.stride, padding: c.padding)
      assertMatchesTorch(result, c.output, shape: c.outputShape, absolute: 6e-6, "depthwise \(i)")
    }
    for (i, c) in cases.convTranspose.enumerated() {
      let result = convTranspose2d(
        tensor(c.input, c.shape), weight: tensor(c.weight, c.weightShape),
        bias: tensor(c.bias, [c.bias.count]), stride: c.stride)
      assertMatchesTorch(result, c.output, shape: c.outputShape, absolute: 6e-6, "convTranspose2d \(i)")
    }
  }

  func testNormalizationAndActivationsMatchTorch() throws {
    let cases = try loadCases()
    let ln = cases.layerNorm
    // Outputs of size ~1-3 from inputs in [2, 5]: a few ulp of 5 after dividing by the deviation.
    assertMatchesTorch(
      layerNorm(
        tensor(ln.input, ln.shape), weight: tensor(ln.weight, [ln.weight.count]),
        bias: tensor(ln.bias, [ln.bias.count]), eps: Float(ln.eps)),
      ln.output, shape: ln.shape, absolute: 3e-6, "layerNorm")
    // torch's GELU is itself off by up to 1.2e-6 absolute from exact (measured on torch 2.15, AVX512,
    // over [-10, 10]); ours is within 6e-7 relative of exact.
    let g = cases.gelu
    assertMatchesTorch(
      gelu(tensor(g.input, [g.input.count])), g.output, shape: [g.input.count], absolute: 1.5e-6,
      relative: 6e-7, "gelu")
    let s = cases.softmax
    var x = tensor(s.input, s.shape!)
    softmaxLastDimension(&x)
    // Probabilities <= 1 from exponents up to 16 apart: 2^-24 * 16 relative, 1e-6 absolute.
    assertMatchesTorch(x, s.output, shape: s.shape!, absolute: 1e-6, "softmax")
  }

  func testAttentionMatchesTinyViTFormula() throws {
    let a = try loadCases().attention
    let result = attention(
      q: tensor(a.q, a.shape), k: tensor(a.k, a.shape), v: tensor(a.v, a.shape),
      bias: tensor(a.bias, a.biasShape), scale: Float(a.scale))
    // Outputs are averages of values in [-1, 1]: 1e-6 absolute covers the float32 dot products.
    assertMatchesTorch(result, a.output, shape: a.shape, absolute: 1e-6, "attention")
  }
}
