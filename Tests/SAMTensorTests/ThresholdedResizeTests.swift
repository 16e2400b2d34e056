import SAMTensor
import XCTest

/// `resizeBilinearThresholded` against plain loops that repeat torch's arithmetic for each output
/// pixel on its own (taps, then two horizontal blends, then the vertical one, in float32): the
/// masks and counts must be equal bit for bit, since a mask is a decision on each float.
final class ThresholdedResizeTests: XCTestCase {
  func testMatchesANaiveLoopBitForBit() {
    var random = SeededRandom(seed: 60)
    // (planes, input height, input width, output height, output width): odd sizes, one pixel,
    // tall and wide, up and down, widths around multiples of 8.
    let sizes = [
      (1, 1, 1, 1, 1), (1, 1, 1, 7, 9), (2, 3, 5, 1, 1), (1, 37, 1, 75, 3), (1, 1, 29, 2, 61),
      (3, 17, 13, 40, 33), (1, 64, 48, 31, 17), (2, 9, 9, 9, 9), (1, 144, 256, 270, 480),
      (1, 5, 300, 3, 1000), (1, 300, 4, 999, 7),
    ]
    for (p, h, w, oh, ow) in sizes {
      var x = random.tensor([p, h, w], -4, 4)
      // Values on the levels themselves, and smooth stretches where whole rows agree.
      var values = x.data
      for i in values.indices where random.next() % 7 == 0 { values[i] = Float(Int(random.next() % 3)) - 1 }
      if values.count > 40 { for i in 0..<20 { values[i] = 9 } }
      x = Tensor(shape: [p, h, w], data: values)
      for (threshold, offset) in [(Float(0), Float(1)), (0.25, 0.5)] {
        let planes = resizeBilinearThresholded(x, height: oh, width: ow, threshold: threshold, offset: offset)
        let expected = naiveThresholdedResize(
          values, planes: p, height: h, width: w, outHeight: oh, outWidth: ow, threshold: threshold,
          offset: offset)
        XCTAssertEqual(planes.count, p)
        for (index, plane) in planes.enumerated() {
          let name = "\([p, h, w]) -> \(oh)x\(ow), plane \(index), threshold \(threshold)"
          XCTAssertEqual(plane.mask, expected[index].mask, "mask of \(name)")
          XCTAssertEqual(plane.countAboveHigh, expected[index].high, "high count of \(name)")
          XCTAssertEqual(plane.countAboveLow, expected[index].low, "low count of \(name)")
        }
      }
    }
  }

  func testSettledBlocksGiveTheNaiveLoopsMasks() {
    // Blocks whose source values are clear of every level are filled from their bounds: smooth
    // blobs (most blocks settled, edges not), constants between, on and one float away from the
    // levels, huge and tiny values. Each plane must still match the loops exactly.
    let (h, w, oh, ow) = (40, 70, 151, 263)
    var planes: [[Float]] = []
    for scale in [Float(12), 0.9, 3e30] {
      var blob = [Float](repeating: 0, count: h * w)
      for y in 0..<h {
        for x in 0..<w {
          let (dx, dy) = (Float(x - 30) / 20, Float(y - 18) / 12)
          blob[y * w + x] = scale * (1 - dx * dx - dy * dy)
        }
      }
      planes.append(blob)
    }
    let constants: [Float] = [
      0.5, 1, Float(1).nextUp, Float(1).nextDown, -1, Float(-1).nextDown, 0, 1e-38, -1e-45, 1e30, -7,
    ]
    for value in constants {
      planes.append([Float](repeating: value, count: h * w))
    }
    let values = planes.flatMap { $0 }
    let x = Tensor(shape: [planes.count, h, w], data: values)
    let resized = resizeBilinearThresholded(x, height: oh, width: ow, threshold: 0, offset: 1)
    let expected = naiveThresholdedResize(
      values, planes: planes.count, height: h, width: w, outHeight: oh, outWidth: ow, threshold: 0, offset: 1)
    for p in planes.indices {
      XCTAssertEqual(resized[p].mask, expected[p].mask, "mask of plane \(p)")
      XCTAssertEqual(resized[p].countAboveHigh, expected[p].high, "high count of plane \(p)")
      XCTAssertEqual(resized[p].countAboveLow, expected[p].low, "low count of plane \(p)")
    }
  }

  func testNonFiniteLogitsGiveTheNaiveLoopsMasks() {
    // NaN compares false and inf times a zero weight is NaN: the same decisions as the loops.
    var random = SeededRandom(seed: 61)
    var values = random.tensor([1, 12, 10], -2, 2).data
    values[3] = .nan
    values[40] = .infinity
    values[77] = -.infinity
    let planes = resizeBilinearThresholded(
      Tensor(shape: [1, 12, 10], data: values), height: 25, width: 23, threshold: 0, offset: 1)
    let expected = naiveThresholdedResize(
      values, planes: 1, height: 12, width: 10, outHeight: 25, outWidth: 23, threshold: 0, offset: 1)
    XCTAssertEqual(planes[0].mask, expected[0].mask)
    XCTAssertEqual(planes[0].countAboveHigh, expected[0].high)
    XCTAssertEqual(planes[0].countAboveLow, expected[0].low)
  }
}

/// One axis of torch's bilinear taps (align_corners=False): neighbours and weights of output i.
private func naiveTap(_ i: Int, input: Int, output: Int) -> (Int, Int, Float, Float) {
  let scale = Float(input) / Float(output)
  let source = max(0, Float(-0.5).addingProduct(scale, Float(i) + 0.5))
  let index = min(Int(source), input - 1)
  let lambda = min(max(source - Float(index), 0), 1)
  return (index, index < input - 1 ? index + 1 : index, 1 - lambda, lambda)
}

private func naiveThresholdedResize(
  _ x: [Float], planes: Int, height: Int, width: Int, outHeight: Int, outWidth: Int, threshold: Float,
  offset: Float
) -> [(mask: [UInt8], high: Int, low: Int)] {
  (0..<planes).map { p in
    var mask: [UInt8] = []
    var (high, low) = (0, 0)
    for oy in 0..<outHeight {
      let (y0, y1, wy0, wy1) = naiveTap(oy, input: height, output: outHeight)
      for ox in 0..<outWidth {
        let (x0, x1, wx0, wx1) = naiveTap(ox, input: width, output: outWidth)
        let top = wx0 * x[(p * height + y0) * width + x0] + wx1 * x[(p * height + y0) * width + x1]
        let bottom = wx0 * x[(p * height + y1) * width + x0] + wx1 * x[(p * height + y1) * width + x1]
        let value = wy0 * top + wy1 * bottom
        mask.append(value > threshold ? 1 : 0)
        high += value > threshold + offset ? 1 : 0
        low += value > threshold - offset ? 1 : 0
      }
    }
    return (mask, high, low)
  }
}
