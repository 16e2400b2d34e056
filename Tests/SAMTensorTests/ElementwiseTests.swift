import Foundation
import SAMTensor
import XCTest

final class ElementwiseTests: XCTestCase {
  func testGELUAgainstDoubleErfOverTheWholeRange() {
    // Every 1/4096 in [-12, 12] plus random values, odd count for the vector tail.
    var values = stride(from: -12.0, through: 12.0, by: 1.0 / 4096).map { Float($0) }
    var random = SeededRandom(seed: 20)
    for _ in 0..<10_001 { values.append(random.uniform(-6, 6)) }
    values += [0, -0.0, 1e-30, -1e-30, 40, -40, 1e4, -1e4]
    let x = Tensor(shape: [values.count], data: values)
    let expected = Expected(shape: x.shape, values: values.map { Reference.gelu(Double($0)) })
    // 6e-7 relative plus 1e-37 absolute: the erfc fit is good to 7e-9, the rest is float32
    // rounding (the tail polynomial evaluated at a rounded t: up to 3.3e-7; exp: ~1e-7); the
    // absolute term covers results that underflow. torch's own GELU is only good to ~1e-6
    // absolute (measured against Double erf on torch 2.15, AVX512), so this is stricter than the
    // reference we mimic.
    assertClose(gelu(x), expected, relative: 6e-7, absolute: 1e-37, "gelu vs Double erf")
  }

  func testGELUParallelChunksMatchSerialValues() {
    var random = SeededRandom(seed: 21)
    let x = random.tensor([300, 333], -8, 8)  // above the parallel threshold, odd row length
    let y = gelu(x)
    for i in stride(from: 0, to: x.count, by: 97) {
      let single = gelu(Tensor(shape: [1], data: [x.data[i]])).data[0]
      XCTAssertEqual(y.data[i], single, "element \(i)")
    }
  }

  func testGELUAndSoftmaxSpecialValues() {
    let y = gelu(Tensor(shape: [4], data: [.nan, .infinity, -.infinity, 0]))
    XCTAssertTrue(y.data[0].isNaN)
    XCTAssertEqual(y.data[1], .infinity)
    XCTAssertTrue(y.data[2].isNaN, "-inf * Phi(-inf) = -inf * 0, as torch")
    XCTAssertEqual(y.data[3], 0)
    // Masked scores (-inf) get probability 0; the rest share the mass.
    var scores = Tensor(shape: [1, 3], data: [-.infinity, 0, 0])
    softmaxLastDimension(&scores)
    XCTAssertEqual(scores.data, [0, 0.5, 0.5])
  }

  func testGELUInPlaceMatchesGELU() {
    var random = SeededRandom(seed: 25)
    for shape in [[5, 3], [301, 259]] {
      var x = random.tensor(shape, -6, 6)
      let expected = gelu(x)
      geluInPlace(&x)
      XCTAssertEqual(x, expected, "same kernel, so bit-identical")
    }
  }

  func testReluScaleAddAndRowVector() {
    var random = SeededRandom(seed: 22)
    for shape in [[7, 13], [301, 259]] {  // below and above the parallel threshold
      let a = random.tensor(shape)
      let b = random.tensor(shape)
      let v = random.tensor([shape[1]])
      // These are single float32 operations, so they must match exactly the same operation in
      // Float (no tolerance).
      XCTAssertEqual(relu(a).data, a.data.map { $0 < 0 ? 0 : $0 })
      XCTAssertEqual(scale(a, by: 0.37).data, a.data.map { $0 * 0.37 })
      XCTAssertEqual(add(a, b).data, zip(a.data, b.data).map { $0 + $1 })
      var c = a
      addInPlace(&c, b)
      XCTAssertEqual(c.data, zip(a.data, b.data).map { $0 + $1 })
      var d = a
      addRowVector(&d, v)
      XCTAssertEqual(d.data, a.data.enumerated().map { $0.element + v.data[$0.offset % shape[1]] })
      XCTAssertEqual(d.shape, shape)
    }
  }

  func testLayerNormAwkwardRows() {
    var random = SeededRandom(seed: 23)
    for shape in [[5, 3], [9, 17], [2, 3, 160], [4096, 320], [11, 1]] {
      // An offset mean checks that the variance is taken around the mean (two passes).
      let x = random.tensor(shape, 2, 5)
      let weight = random.tensor([shape.last!])
      let bias = random.tensor([shape.last!])
      // 5e-7 of (|x| + |mean|) / std * |weight| + |bias|: x - mean and the float32 sums of <= 320
      // values round by a few 2^-24 of those terms (the mean is corrected in the second pass).
      assertClose(
        layerNorm(x, weight: weight, bias: bias, eps: 1e-5),
        Reference.layerNorm(x, weight: weight, bias: bias, eps: 1e-5), relative: 5e-7,
        "layerNorm \(shape)")
    }
  }

  func testSoftmaxRowsIncludingLargeValues() {
    var random = SeededRandom(seed: 24)
    for (shape, low, high) in [
      ([7, 13], -3, 3), ([49, 49], -20, 20), ([300, 196], -80, 80), ([3, 1], 0, 1),
    ]
      as [([Int], Float, Float)]
    {
      var x = random.tensor(shape, low, high)
      let expected = Reference.softmax(x)
      softmaxLastDimension(&x)
      // 1e-6 relative plus 1e-30 absolute: exp is accurate to ~2 ulp, the row sum adds
      // sqrt(n) * 2^-24; values below ~1e-38 are flushed to zero.
      assertClose(x, expected, relative: 1e-6, absolute: 1e-30, "softmax \(shape)")
    }
  }

  func testSoftmaxOfHugeRangeDoesNotOverflow() {
    var x = Tensor(shape: [1, 4], data: [1000, 0, -1000, 999])
    softmaxLastDimension(&x)
    XCTAssertEqual(x.data[0], Float(1 / (1 + exp(-1.0))), accuracy: 1e-6)
    XCTAssertEqual(x.data[1], 0)
    XCTAssertEqual(x.data[2], 0)
    XCTAssertEqual(x.data[3], Float(exp(-1.0) / (1 + exp(-1.0))), accuracy: 1e-6)
  }
}
