import Foundation
import SAMImage
import XCTest

final class PNGEncoderTests: XCTestCase {
  func testGrayPNGRoundTripsThroughTheDecoder() throws {
    var generator = SplitMix64(seed: 9)
    for (width, height) in [(1, 1), (17, 5), (256, 171)] {
      let pixels = (0..<(width * height)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
      let png = try encodeGrayPNG(pixels: pixels, width: width, height: height)
      XCTAssertEqual(ImageDecoder.detectFormat(png), .png)
      let decoded = try ImageDecoder.decode(data: png, name: "mask.png")
      XCTAssertEqual(decoded.width, width)
      XCTAssertEqual(decoded.height, height)
      // Gray decodes to R = G = B = the written value.
      let expected = pixels.flatMap { [$0, $0, $0] }
      XCTAssertEqual(decoded.pixels, expected, "\(width)x\(height)")
    }
  }

  /// Masks (0/255) compress well: a 1024 x 1024 half-filled mask is a few hundred bytes.
  func testMaskCompresses() throws {
    let side = 1024
    let pixels = (0..<(side * side)).map { $0 % side < side / 2 ? UInt8(255) : 0 }
    let png = try encodeGrayPNG(pixels: pixels, width: side, height: side)
    XCTAssertLessThan(png.count, 20_000)
    XCTAssertEqual(try ImageDecoder.decode(data: png, name: "mask.png").pixels[0], 255)
  }

  func testInvalidInputIsAnError() {
    XCTAssertThrowsError(try encodeGrayPNG(pixels: [1, 2, 3], width: 2, height: 2)) { error in
      XCTAssertTrue(error.localizedDescription.contains("3 pixels given for a 2x2 image"), "\(error)")
    }
    XCTAssertThrowsError(try encodeGrayPNG(pixels: [], width: 0, height: 5))
  }
}
