import SAMTensor
import XCTest

// Tolerance: 1e-6 of the sum of |terms|: four float32 products and three additions, each
// rounding by 2^-24 relative.
private let resizeTolerance = 1e-6

final class ResizeTests: XCTestCase {
  func testAwkwardSizesUpAndDown() {
    var random = SeededRandom(seed: 50)
    for (p, h, w, oh, ow) in [
      (3, 7, 5, 13, 11), (2, 5, 9, 3, 4), (1, 1, 1, 3, 2), (2, 4, 3, 4, 3), (1, 6, 6, 1, 1), (1, 3, 7, 3, 21),
    ] {
      let x = random.tensor([p, h, w])
      assertClose(
        resizeBilinear(x, height: oh, width: ow), Reference.resizeBilinear(x, height: oh, width: ow),
        relative: resizeTolerance, "resize \([p, h, w]) -> \(oh)x\(ow)")
    }
  }

  func testMaskPostprocessingSizes() {
    // SAM's mask postprocessing: low-res 256x256 logits -> 1024x1024, crop to the resized image
    // (685 x 1024 for a 1500 x 2241 photo) -> the original size.
    var random = SeededRandom(seed: 51)
    let lowRes = random.tensor([3, 256, 256], -20, 20)
    let upscaled = resizeBilinear(lowRes, height: 1024, width: 1024)
    assertClose(
      upscaled, Reference.resizeBilinear(lowRes, height: 1024, width: 1024), relative: resizeTolerance,
      "resize 256 -> 1024")
    let cropped = random.tensor([3, 685, 1024], -20, 20)
    assertClose(
      resizeBilinear(cropped, height: 1500, width: 2241),
      Reference.resizeBilinear(cropped, height: 1500, width: 2241), relative: resizeTolerance,
      "resize 685x1024 -> 1500x2241")
  }

  /// `bilinearSourceExtent` is exactly what the kept outputs read: NaN beyond it leaves them
  /// finite, NaN in its last row or column reaches one of them (0 * NaN is NaN).
  func testSourceExtentIsWhatTheKeptOutputsRead() {
    var random = SeededRandom(seed: 53)
    for (size, outputSize, kept) in [
      (256, 1024, 576), (256, 1024, 685), (256, 1024, 1), (7, 13, 5), (9, 4, 3),
    ] {
      let extent = bilinearSourceExtent(inputSize: size, outputSize: outputSize, kept: kept)
      XCTAssertTrue(extent >= 1 && extent <= size, "\(size) -> \(outputSize), \(kept) kept: extent \(extent)")
      for (poisoned, expectNaN) in [(extent, false), (extent - 1, true)] where poisoned < size {
        var x = random.tensor([1, size, size])
        for i in 0..<size {
          x.data[poisoned * size + i] = .nan  // row `poisoned`
          x.data[i * size + poisoned] = .nan  // column `poisoned`
        }
        let out = resizeBilinear(x, height: outputSize, width: outputSize, keepingTop: kept, left: kept)
        XCTAssertEqual(
          out.data.contains { $0.isNaN }, expectNaN,
          "\(size) -> \(outputSize), \(kept) kept, extent \(extent): NaN in row and column \(poisoned)")
      }
    }
  }

  func testIdentitySizeCopiesValues() {
    var random = SeededRandom(seed: 52)
    let x = random.tensor([2, 5, 7])
    // Same size: source = dst exactly, weights 1 and 0, so values are copied exactly.
    XCTAssertEqual(resizeBilinear(x, height: 5, width: 7), x)
  }

  func testCroppedResizeEqualsResizeThenCrop() {
    // Exact: the cropped resize uses the full-size taps, so each kept value is computed by the
    // same operations in the same order.
    var random = SeededRandom(seed: 53)
    for (p, h, w, oh, ow, kh, kw) in [
      (3, 16, 16, 64, 64, 43, 64), (2, 5, 9, 13, 11, 13, 4), (1, 7, 5, 3, 2, 1, 1), (2, 4, 4, 9, 9, 9, 9),
    ] {
      let x = random.tensor([p, h, w], -20, 20)
      XCTAssertEqual(
        resizeBilinear(x, height: oh, width: ow, keepingTop: kh, left: kw),
        cropPlanes(resizeBilinear(x, height: oh, width: ow), height: kh, width: kw),
        "resize \([p, h, w]) -> \(oh)x\(ow), keep \(kh)x\(kw)")
    }
  }

  func testThresholdedResizeMatchesResizeThenNaiveThreshold() {
    // Exact: the same resized floats, compared with plain loops over them.
    var random = SeededRandom(seed: 54)
    for (p, h, w, oh, ow) in [(3, 43, 64, 150, 224), (1, 5, 7, 5, 7), (2, 6, 3, 1, 1), (1, 9, 9, 31, 17)] {
      let x = random.tensor([p, h, w], -3, 3)
      let planes = resizeBilinearThresholded(x, height: oh, width: ow, threshold: 0.25, offset: 1)
      let resized = resizeBilinear(x, height: oh, width: ow)
      XCTAssertEqual(planes.count, p)
      for (index, plane) in planes.enumerated() {
        let values = resized.data[(index * oh * ow)..<((index + 1) * oh * ow)]
        XCTAssertEqual(plane.mask, values.map { $0 > 0.25 ? 1 : 0 }, "mask of plane \(index)")
        XCTAssertEqual(plane.countAboveHigh, values.filter { $0 > 1.25 }.count, "high count of \(index)")
        XCTAssertEqual(plane.countAboveLow, values.filter { $0 > -0.75 }.count, "low count of \(index)")
      }
      if oh * ow > 100 {
        XCTAssertGreaterThan(planes[0].countAboveLow, planes[0].countAboveHigh, "both levels exercised")
      }
    }
  }
}

/// Reference for the cropped resize: x [P, H, W] -> [P, height, width], the top-left corner of
/// each plane, with plain loops.
private func cropPlanes(_ x: Tensor, height: Int, width: Int) -> Tensor {
  let (planes, inHeight, inWidth) = (x.shape[0], x.shape[1], x.shape[2])
  var out: [Float] = []
  for p in 0..<planes {
    for y in 0..<height {
      for c in 0..<width { out.append(x.data[(p * inHeight + y) * inWidth + c]) }
    }
  }
  return Tensor(shape: [planes, height, width], data: out)
}
