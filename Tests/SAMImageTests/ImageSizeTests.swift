import Foundation
import SAMImage
import TestSupport
import XCTest

/// `ImageDecoder.size` (header only, for `sambatch validate`) agrees with a full decode.
final class ImageSizeTests: XCTestCase {
  func testHeaderSizeEqualsDecodedSizeWithAndWithoutEXIF() throws {
    for name in [
      "orientation_1.jpg", "orientation_6.jpg", "orientation_8.jpg", "orientation_6.png", "gray.png",
    ] {
      let url = Fixtures.url("formats/\(name)")
      for exif in [true, false] {
        let decoded = try ImageDecoder.decode(contentsOf: url, applyEXIFOrientation: exif)
        let size = try ImageDecoder.size(contentsOf: url, applyEXIFOrientation: exif)
        XCTAssertTrue(size == (decoded.width, decoded.height), "\(name) exif \(exif)")
      }
    }
    let rotated = try ImageDecoder.size(contentsOf: Fixtures.url("formats/orientation_6.jpg"))
    let stored = try ImageDecoder.size(
      contentsOf: Fixtures.url("formats/orientation_6.jpg"), applyEXIFOrientation: false)
    XCTAssertTrue(rotated == (stored.height, stored.width), "orientation 6 swaps the axes")
    XCTAssertThrowsError(try ImageDecoder.size(contentsOf: Fixtures.url("formats/not_an_image.jpg")))
    XCTAssertThrowsError(try ImageDecoder.size(contentsOf: Fixtures.url("formats/missing.jpg")))
  }
}
