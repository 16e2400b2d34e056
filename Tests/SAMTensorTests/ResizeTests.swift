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

  func testIdentitySizeCopiesValues() {
    var random = SeededRandom(seed: 52)
    let x = random.tensor([2, 5, 7])
    // Same size: source = dst exactly, weights 1 and 0, so values are copied exactly.
    XCTAssertEqual(resizeBilinear(x, height: 5, width: 7), x)
  }
}
