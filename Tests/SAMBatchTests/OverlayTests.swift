import Foundation
import MobileSAM
import SAMImage
import XCTest

@testable import SAMBatch

final class OverlayTests: XCTestCase {
  func gray(_ width: Int, _ height: Int) -> RGBImage {
    RGBImage(width: width, height: height, pixels: [UInt8](repeating: 100, count: width * height * 3))
  }

  func square(_ width: Int, _ height: Int, x0: Int, y0: Int, x1: Int, y1: Int) -> BinaryMask {
    var pixels = [UInt8](repeating: 0, count: width * height)
    for y in y0..<y1 { for x in x0..<x1 { pixels[y * width + x] = 1 } }
    return BinaryMask(width: width, height: height, pixels: pixels)
  }

  func pixel(_ image: RGBImage, _ x: Int, _ y: Int) -> [UInt8] {
    let p = (y * image.width + x) * 3
    return Array(image.pixels[p..<p + 3])
  }

  func testMaskIsBlendedOutlinedAndBoxed() throws {
    let mask = square(40, 30, x0: 10, y0: 10, x1: 20, y1: 20)
    let out = try OverlayRenderer.render(
      image: gray(40, 30), masks: [OverlayMask(mask: mask, category: "cat", box: [5, 5, 30, 25])],
      maxSide: 100,
      alpha: 0.5)
    let c = OverlayRenderer.color(for: "cat")
    let colour = [c.r, c.g, c.b]
    XCTAssertEqual(pixel(out, 10, 15), colour, "outline in full colour")
    XCTAssertEqual(
      pixel(out, 15, 15), colour.map { UInt8((Double($0) * 0.5 + 50).rounded()) }, "inside blended")
    XCTAssertEqual(pixel(out, 5, 12), colour, "box edge")
    XCTAssertEqual(pixel(out, 29, 12), colour, "box edge (x1 exclusive)")
    XCTAssertEqual(pixel(out, 2, 2), [100, 100, 100], "outside untouched")
    XCTAssertEqual(pixel(out, 7, 12), [100, 100, 100], "between box and mask untouched")
  }

  func testScaledToMaxSideAndColoursAreStable() throws {
    let mask = square(400, 200, x0: 0, y0: 0, x1: 200, y1: 200)
    let out = try OverlayRenderer.render(
      image: gray(400, 200), masks: [OverlayMask(mask: mask, category: "dog", box: nil)], maxSide: 100)
    XCTAssertEqual(out.width, 100)
    XCTAssertEqual(out.height, 50)
    XCTAssertNotEqual(pixel(out, 25, 25), [100, 100, 100])
    XCTAssertEqual(pixel(out, 75, 25), [100, 100, 100])
    XCTAssertEqual(OverlayRenderer.cssColor(for: "dog"), OverlayRenderer.cssColor(for: "dog"))
    XCTAssertNotEqual(OverlayRenderer.cssColor(for: "dog"), OverlayRenderer.cssColor(for: "cat"))
    // A box entirely outside the image draws nothing and does not trap.
    _ = try OverlayRenderer.render(
      image: gray(10, 10),
      masks: [
        OverlayMask(mask: square(10, 10, x0: 0, y0: 0, x1: 1, y1: 1), category: "x", box: [50, 50, 60, 60])
      ],
      maxSide: 10)
  }

  func testMaskOfAnotherSizeIsAnError() {
    XCTAssertThrowsError(
      try OverlayRenderer.render(
        image: gray(10, 10),
        masks: [OverlayMask(mask: square(5, 5, x0: 0, y0: 0, x1: 1, y1: 1), category: "x", box: nil)],
        maxSide: 10))
  }

  func testJPEGAndPNGEncodeAndDecodeBack() throws {
    var image = gray(33, 17)
    for i in stride(from: 0, to: image.pixels.count, by: 7) { image.pixels[i] = 250 }
    let png = try encodePNG(image)
    XCTAssertEqual(try ImageDecoder.decode(data: png, name: "overlay.png"), image, "PNG is lossless")
    let jpeg = try encodeJPEG(image, quality: 95)
    XCTAssertEqual(Array(jpeg.prefix(2)), [0xFF, 0xD8])
    let decoded = try ImageDecoder.decode(data: jpeg, name: "overlay.jpg")
    XCTAssertEqual(decoded.width, 33)
    XCTAssertEqual(decoded.height, 17)
    XCTAssertThrowsError(try encodeJPEG(image, quality: 0))
  }
}
