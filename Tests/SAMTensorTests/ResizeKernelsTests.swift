import CSAMKernels
import SAMTensor
import XCTest

/// The C loops of the bilinear resize (CSAMKernels/resize.c), and the resizes built on them,
/// against plain Swift loops with torch's float32 arithmetic (two rounded products and a rounded
/// sum, no FMA), with the AVX2 and the AVX-512 version: equal bit for bit (any NaN for NaN), since
/// a mask is a decision on each float.
final class ResizeKernelsTests: XCTestCase {
  override func tearDown() {
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  /// The versions this CPU can run: AVX2, and AVX-512 where present.
  private var widths: [VectorKernels.Width] {
    let wide = VectorKernels.use(.avx512) == 16
    VectorKernels.use(.automatic)
    return wide ? [.avx2, .avx512] : [.avx2]
  }

  /// Odd sizes, one pixel, up and down by small and large factors, and the model's sizes.
  private let rowSizes = [1, 2, 3, 17, 1000, 256, 1024, 1920, 640]

  func testResizeRowMatchesAPlainLoop() {
    var random = SeededRandom(seed: 70)
    for width in widths {
      let lanes = VectorKernels.use(width)
      for inputCount in rowSizes {
        var source = (0..<inputCount).map { _ in random.uniform(-4, 4) }
        if inputCount > 20 {
          (source[5], source[6], source[inputCount - 1]) = (.nan, .infinity, -.infinity)
        }
        for count in rowSizes {
          let taps = (0..<count).map { plainTap($0, input: inputCount, output: count) }
          let (first, second) = (taps.map { Int32($0.0) }, taps.map { Int32($0.1) })
          let (firstWeight, secondWeight) = (taps.map(\.2), taps.map(\.3))
          let expected = taps.map { $0.2 * source[$0.0] + $0.3 * source[$0.1] }
          // The whole row, and the blocks of 64 and tails the thresholded resize asks for, down to
          // the last output alone (its neighbours at the end of the source row).
          let starts = Set([0, 1, count / 2, max(0, count - 64), max(0, count - 17), count - 1])
          for start in starts.sorted() {
            var out = [Float](repeating: -7, count: count - start)
            sam_resize_row(
              &out, source, inputCount, Array(first[start...]), Array(second[start...]),
              Array(firstWeight[start...]), Array(secondWeight[start...]), count - start)
            let wrong = zip(out, expected[start...]).filter { !sameFloat($0, $1) }.count
            XCTAssertEqual(wrong, 0, "\(inputCount) -> \(count) from \(start), \(lanes) lanes: wrong values")
          }
        }
      }
    }
  }

  func testBlendAndThresholdMatchPlainLoops() {
    var random = SeededRandom(seed: 71)
    let (maskLevel, highLevel, lowLevel): (Float, Float, Float) = (0, 1, -1)
    for width in widths {
      let lanes = VectorKernels.use(width)
      for count in Array(0...40) + [63, 64, 1000, 1365] {
        var top = (0..<count).map { _ in random.uniform(-3, 3) }
        var bottom = (0..<count).map { _ in random.uniform(-3, 3) }
        // Values on the levels, NaN and infinities.
        for j in 0..<count where random.next() % 5 == 0 {
          top[j] = [0, 1, -1, .nan, .infinity, -.infinity, Float(1).nextUp][Int(random.next() % 7)]
          bottom[j] = top[j]
        }
        for (tw, bw) in [(Float(1), Float(0)), (0.375, 0.625), (0, 1), (0.8046875, 0.1953125)] {
          let expected = zip(top, bottom).map { tw * $0 + bw * $1 }
          var out = [Float](repeating: -7, count: count)
          sam_blend_rows(&out, top, bottom, tw, bw, count)
          let name = "count \(count), weights \(tw) \(bw), \(lanes) lanes"
          XCTAssertEqual(zip(out, expected).filter { !sameFloat($0, $1) }.count, 0, "blend, \(name)")
          var mask = [UInt8](repeating: 7, count: count)
          var (high, low) = (-1, -1)
          sam_blend_threshold(&mask, top, bottom, tw, bw, count, maskLevel, highLevel, lowLevel, &high, &low)
          XCTAssertEqual(mask, expected.map { $0 > maskLevel ? 1 : 0 }, "mask, \(name)")
          XCTAssertEqual(high, expected.filter { $0 > highLevel }.count, "high count, \(name)")
          XCTAssertEqual(low, expected.filter { $0 > lowLevel }.count, "low count, \(name)")
        }
      }
    }
  }

  func testResizesMatchPlainLoopsWithBothVectorWidths() {
    // (planes, input height, input width, output height, output width): up, down, one pixel, odd
    // sizes, and the model's 256 -> 1024 shape (cropped below).
    var random = SeededRandom(seed: 72)
    let sizes = [
      (2, 3, 17, 17, 1000), (1, 17, 1000, 3, 17), (1, 1, 1, 2, 3), (2, 2, 3, 1, 1), (1, 1000, 2, 17, 1),
      (1, 40, 64, 150, 233), (1, 64, 64, 256, 256),
    ]
    for (p, h, w, oh, ow) in sizes {
      var values = random.tensor([p, h, w], -3, 3).data
      for i in values.indices where random.next() % 11 == 0 { values[i] = Float(Int(random.next() % 3)) - 1 }
      if values.count > 30 { (values[7], values[19], values[29]) = (.nan, .infinity, -.infinity) }
      let x = Tensor(shape: [p, h, w], data: values)
      let expected = plainResize(values, planes: p, height: h, width: w, outHeight: oh, outWidth: ow)
      for width in widths {
        let lanes = VectorKernels.use(width)
        let name = "\([p, h, w]) -> \(oh)x\(ow), \(lanes) lanes"
        let resized = resizeBilinear(x, height: oh, width: ow)
        XCTAssertEqual(zip(resized.data, expected).filter { !sameFloat($0, $1) }.count, 0, "resize \(name)")
        let (kh, kw) = ((oh + 1) / 2, (ow + 2) / 3)
        let cropped = resizeBilinear(x, height: oh, width: ow, keepingTop: kh, left: kw)
        var expectedCrop: [Float] = []
        for plane in 0..<p {
          for y in 0..<kh {
            let row = (plane * oh + y) * ow
            expectedCrop += expected[row..<(row + kw)]
          }
        }
        XCTAssertEqual(
          zip(cropped.data, expectedCrop).filter { !sameFloat($0, $1) }.count, 0, "cropped resize \(name)")
        let planes = resizeBilinearThresholded(x, height: oh, width: ow, threshold: 0, offset: 1)
        for plane in 0..<p {
          let values = expected[(plane * oh * ow)..<((plane + 1) * oh * ow)]
          XCTAssertEqual(planes[plane].mask, values.map { $0 > 0 ? 1 : 0 }, "mask of plane \(plane), \(name)")
          XCTAssertEqual(planes[plane].countAboveHigh, values.filter { $0 > 1 }.count, "high, \(name)")
          XCTAssertEqual(planes[plane].countAboveLow, values.filter { $0 > -1 }.count, "low, \(name)")
        }
      }
    }
  }
}

/// Equal bits, or both NaN (a NaN's payload depends on the order of an addition's operands).
private func sameFloat(_ a: Float, _ b: Float) -> Bool {
  a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN)
}

/// torch's bilinear taps along one axis (align_corners=False): neighbours and weights of output i.
private func plainTap(_ i: Int, input: Int, output: Int) -> (Int, Int, Float, Float) {
  let scale = Float(input) / Float(output)
  let source = max(0, Float(-0.5).addingProduct(scale, Float(i) + 0.5))
  let index = min(Int(source), input - 1)
  let lambda = min(max(source - Float(index), 0), 1)
  return (index, index < input - 1 ? index + 1 : index, 1 - lambda, lambda)
}

/// Each output pixel on its own: two horizontal blends, then the vertical one.
private func plainResize(
  _ x: [Float], planes: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
) -> [Float] {
  var out: [Float] = []
  out.reserveCapacity(planes * outHeight * outWidth)
  for p in 0..<planes {
    for oy in 0..<outHeight {
      let (y0, y1, wy0, wy1) = plainTap(oy, input: height, output: outHeight)
      for ox in 0..<outWidth {
        let (x0, x1, wx0, wx1) = plainTap(ox, input: width, output: outWidth)
        let top = wx0 * x[(p * height + y0) * width + x0] + wx1 * x[(p * height + y0) * width + x1]
        let bottom = wx0 * x[(p * height + y1) * width + x0] + wx1 * x[(p * height + y1) * width + x1]
        out.append(wy0 * top + wy1 * bottom)
      }
    }
  }
  return out
}
