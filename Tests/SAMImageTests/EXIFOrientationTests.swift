import Foundation
import SAMImage
import XCTest

/// Exif blocks crafted byte by byte: both byte orders, SHORT and LONG values, other segments
/// and tags before the orientation, PNG eXIf with and without the "Exif\0\0" prefix.
final class EXIFOrientationTests: XCTestCase {
  /// A TIFF block whose IFD0 holds `tags` (tag, type, value) entries.
  private func tiff(bigEndian: Bool, tags: [(UInt16, UInt16, UInt32)]) -> [UInt8] {
    func u16(_ v: UInt16) -> [UInt8] {
      bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)]
    }
    func u32(_ v: UInt32) -> [UInt8] {
      let b = bigEndian32(v)
      return bigEndian ? b : b.reversed()
    }
    var bytes: [UInt8] = bigEndian ? Array("MM".utf8) : Array("II".utf8)
    bytes += u16(42) + u32(8) + u16(UInt16(tags.count))
    for (tag, type, value) in tags {
      // A SHORT sits in the first two bytes of the 4-byte value field.
      bytes += u16(tag) + u16(type) + u32(1) + (type == 3 ? u16(UInt16(value)) + [0, 0] : u32(value))
    }
    return bytes + u32(0)
  }

  private func jpeg(segments: [(UInt8, [UInt8])]) -> Data {
    var bytes: [UInt8] = [0xFF, 0xD8]
    for (marker, payload) in segments {
      let length = payload.count + 2
      bytes += [0xFF, marker, UInt8(length >> 8), UInt8(length & 0xFF)] + payload
    }
    return Data(bytes + [0xFF, 0xDA, 0x00, 0x02, 0xFF, 0xD9])
  }

  private let exifHeader: [UInt8] = Array("Exif".utf8) + [0, 0]

  func testBothByteOrdersAndValueTypes() {
    for bigEndian in [false, true] {
      for value in 1...8 {
        let short = jpeg(segments: [
          (0xE1, exifHeader + tiff(bigEndian: bigEndian, tags: [(0x0112, 3, UInt32(value))]))
        ])
        XCTAssertEqual(EXIFOrientation.read(from: short, format: .jpeg).rawValue, value)
        let long = jpeg(segments: [
          (0xE1, exifHeader + tiff(bigEndian: bigEndian, tags: [(0x0112, 4, UInt32(value))]))
        ])
        XCTAssertEqual(EXIFOrientation.read(from: long, format: .jpeg).rawValue, value)
      }
    }
  }

  func testOrientationAfterOtherSegmentsAndTags() {
    let xmp = Array("http://ns.adobe.com/xap/1.0/\u{0}<x/>".utf8)
    let block = tiff(bigEndian: true, tags: [(0x010F, 2, 0), (0x0110, 2, 0), (0x0112, 3, 6)])
    let data = jpeg(segments: [
      (0xE0, Array("JFIF\u{0}".utf8) + [1, 1, 0, 0, 1, 0, 1, 0, 0]), (0xE1, xmp), (0xE1, exifHeader + block),
    ])
    XCTAssertEqual(EXIFOrientation.read(from: data, format: .jpeg), .right)
  }

  func testOutOfRangeOrWrongTypeIsUp() {
    for (type, value) in [(UInt16(3), UInt32(0)), (3, 9), (3, 0xFFFF), (5, 6), (1, 6)] {
      let data = jpeg(segments: [(0xE1, exifHeader + tiff(bigEndian: false, tags: [(0x0112, type, value)]))])
      XCTAssertEqual(EXIFOrientation.read(from: data, format: .jpeg), .up, "type \(type) value \(value)")
    }
    // Exif after the start of scan is not looked at.
    var bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02]
    bytes += [0xFF, 0xE1, 0x00, 0x00] + exifHeader + tiff(bigEndian: false, tags: [(0x0112, 3, 6)])
    XCTAssertEqual(EXIFOrientation.read(from: Data(bytes), format: .jpeg), .up)
  }

  func testPNGeXIfWithAndWithoutPrefix() {
    let block = tiff(bigEndian: false, tags: [(0x0112, 3, 8)])
    for payload in [block, exifHeader + block] {
      var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
      png += pngChunk("IHDR", bigEndian32(1) + bigEndian32(1) + [8, 2, 0, 0, 0])
      png += pngChunk("eXIf", payload) + pngChunk("IEND", [])
      XCTAssertEqual(EXIFOrientation.read(from: Data(png), format: .png), .left)
    }
  }
}
