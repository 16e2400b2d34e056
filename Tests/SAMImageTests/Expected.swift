import Foundation
import SAMImage
import TestSupport
import XCTest

/// Tests/Fixtures/formats/expected.json, written by Scripts/make_image_fixtures.py.
struct ExpectedFixtures: Decodable {
  struct Image: Decodable {
    let file: String
    let width: Int
    let height: Int
    let fnv1a64: String
    let reference: String
    let rgb_base64: String?
  }
  struct ResizeSource: Decodable {
    let file: String?
    /// x, y, width, height of a crop of `file`.
    let crop: [Int]?
    let width: Int?
    let height: Int?
    let rgb_base64: String?
  }
  struct ResizeCase: Decodable {
    let name: String
    let source: ResizeSource
    let width: Int
    let height: Int
    let fnv1a64: String
    let rgb_base64: String?
  }
  struct FullResize: Decodable {
    let file: String
    let source: String
    let width: Int
    let height: Int
  }
  struct PreprocessShape: Decodable {
    let width: Int
    let height: Int
    let target: Int
    let new_width: Int
    let new_height: Int
  }
  let photos: [Image]
  let formats: [Image]
  let resize: [ResizeCase]
  let resize_full: FullResize
  let preprocess_shapes: [PreprocessShape]

  static func load() throws -> ExpectedFixtures {
    let data = try Data(contentsOf: Fixtures.url("formats/expected.json"))
    return try JSONDecoder().decode(ExpectedFixtures.self, from: data)
  }
}

/// FNV-1a 64, the hash the fixture script stores for large expected images.
func fnv1a64(_ bytes: [UInt8]) -> String {
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in bytes {
    hash ^= UInt64(byte)
    hash = hash &* 0x0000_0100_0000_01b3
  }
  let hex = String(hash, radix: 16)
  return String(repeating: "0", count: 16 - hex.count) + hex
}

/// Where two RGB images differ first, and how many bytes differ, for failure messages.
func describeDifference(_ actual: RGBImage, _ expected: RGBImage) -> String {
  guard actual.width == expected.width, actual.height == expected.height else {
    return "size \(actual.width)x\(actual.height), expected \(expected.width)x\(expected.height)"
  }
  var first: Int?
  var count = 0
  var worst = 0
  for index in 0..<actual.pixels.count where actual.pixels[index] != expected.pixels[index] {
    if first == nil { first = index }
    count += 1
    worst = max(worst, abs(Int(actual.pixels[index]) - Int(expected.pixels[index])))
  }
  guard let first else { return "identical" }
  let pixel = first / 3
  return
    "\(count) bytes differ (max |diff| \(worst)); first at x \(pixel % actual.width), y \(pixel / actual.width), channel \(first % 3): \(actual.pixels[first]) vs \(expected.pixels[first])"
}

func crop(_ image: RGBImage, x: Int, y: Int, width: Int, height: Int) -> RGBImage {
  var pixels: [UInt8] = []
  pixels.reserveCapacity(width * height * 3)
  for row in y..<(y + height) {
    let start = (row * image.width + x) * 3
    pixels.append(contentsOf: image.pixels[start..<(start + width * 3)])
  }
  return RGBImage(width: width, height: height, pixels: pixels)
}
