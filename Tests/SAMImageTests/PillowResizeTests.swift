import Foundation
import SAMImage
import TestSupport
import XCTest

final class PillowResizeTests: XCTestCase {
  private func source(_ source: ExpectedFixtures.ResizeSource) throws -> RGBImage {
    if let file = source.file {
      let image = try ImageDecoder.decode(contentsOf: Fixtures.url(file))
      guard let rect = source.crop else { return image }
      return crop(image, x: rect[0], y: rect[1], width: rect[2], height: rect[3])
    }
    guard let width = source.width, let height = source.height, let text = source.rgb_base64,
      let data = Data(base64Encoded: text)
    else { throw CocoaError(.coderInvalidValue) }
    return RGBImage(width: width, height: height, pixels: [UInt8](data))
  }

  /// Every case of expected.json: the 1024-side resize of each photo (checked by the fixture
  /// script to equal MobileSAM's ResizeLongestSide.apply_image), extreme downscale, a single pass
  /// in either direction, upscale, mixed, tiny inputs. Exact: Pillow works in integers.
  func testResizeEqualsPillowByteForByte() throws {
    let expected = try ExpectedFixtures.load()
    XCTAssertGreaterThanOrEqual(expected.resize.count, 14)
    var cache: [String: RGBImage] = [:]
    for testCase in expected.resize {
      let key = "\(testCase.source.file ?? testCase.name) \(testCase.source.crop ?? [])"
      let input = try cache[key] ?? source(testCase.source)
      cache[key] = input
      let output = resizeBilinearLikePillow(input, width: testCase.width, height: testCase.height)
      XCTAssertEqual(output.width, testCase.width, testCase.name)
      XCTAssertEqual(output.height, testCase.height, testCase.name)
      if let text = testCase.rgb_base64, let data = Data(base64Encoded: text) {
        let reference = RGBImage(width: testCase.width, height: testCase.height, pixels: [UInt8](data))
        XCTAssertTrue(output == reference, "\(testCase.name): \(describeDifference(output, reference))")
      }
      XCTAssertEqual(fnv1a64(output.pixels), testCase.fnv1a64, testCase.name)
    }
  }

  /// The whole 1024 x 685 resize of picture3 stored as a PNG, so a mismatch can be located.
  func testFullResizeOfPicture3() throws {
    let full = try ExpectedFixtures.load().resize_full
    let reference = try ImageDecoder.decode(contentsOf: Fixtures.url(full.file))
    let input = try ImageDecoder.decode(contentsOf: Fixtures.url(full.source))
    let output = resizeBilinearLikePillow(input, width: full.width, height: full.height)
    XCTAssertTrue(output == reference, describeDifference(output, reference))
  }

  func testSameSizeIsACopy() {
    let image = RGBImage(width: 2, height: 1, pixels: [1, 2, 3, 4, 5, 6])
    XCTAssertEqual(resizeBilinearLikePillow(image, width: 2, height: 1), image)
  }

  /// A uniform image stays uniform at every size: the fixed-point weights of each output pixel
  /// sum to one (within rounding that the final shift absorbs).
  func testUniformImageStaysUniform() {
    let image = RGBImage(width: 37, height: 23, pixels: [UInt8](repeating: 200, count: 37 * 23 * 3))
    for (width, height) in [(1, 1), (5, 3), (37, 100), (200, 23), (1000, 7)] {
      let output = resizeBilinearLikePillow(image, width: width, height: height)
      XCTAssertTrue(output.pixels.allSatisfy { $0 == 200 }, "\(width)x\(height)")
    }
  }

  func testLongestSideSizeMatchesGetPreprocessShape() throws {
    let shapes = try ExpectedFixtures.load().preprocess_shapes
    XCTAssertGreaterThan(shapes.count, 10)
    for shape in shapes {
      let size = longestSideSize(width: shape.width, height: shape.height, target: shape.target)
      XCTAssertEqual(size.width, shape.new_width, "\(shape)")
      XCTAssertEqual(size.height, shape.new_height, "\(shape)")
    }
  }

  /// Decode + resize of picture3.jpg (2241 x 1500 -> 1024 x 685), the preprocessing cost of one
  /// photo, as wall time and as this thread's CPU time (the machine is shared and noisy, so the
  /// CPU time is the steadier number). The bound is loose; it catches an unoptimized build.
  func testDecodeAndResizeTime() throws {
    let url = Fixtures.url("images/picture3.jpg")
    var best = (
      decodeWall: Double.infinity, decodeCPU: Double.infinity, resizeWall: Double.infinity,
      resizeCPU: Double.infinity
    )
    for _ in 0..<5 {
      let start = Clock.now()
      let image = try ImageDecoder.decode(contentsOf: url)
      let decoded = Clock.now()
      let size = longestSideSize(width: image.width, height: image.height)
      let resized = resizeBilinearLikePillow(image, width: size.width, height: size.height)
      let end = Clock.now()
      XCTAssertEqual(resized.width, 1024)
      best.decodeWall = min(best.decodeWall, decoded.wall - start.wall)
      best.decodeCPU = min(best.decodeCPU, decoded.cpu - start.cpu)
      best.resizeWall = min(best.resizeWall, end.wall - decoded.wall)
      best.resizeCPU = min(best.resizeCPU, end.cpu - decoded.cpu)
    }
    print(
      String(
        format:
          "picture3.jpg (best of 5): decode %.1f ms wall / %.1f ms CPU, resize to 1024x685 %.1f ms wall / %.1f ms CPU",
        best.decodeWall, best.decodeCPU, best.resizeWall, best.resizeCPU))
    XCTAssertLessThan(best.decodeCPU + best.resizeCPU, 500)
  }
}

/// Milliseconds of wall time and of this thread's CPU time.
private enum Clock {
  static func now() -> (wall: Double, cpu: Double) {
    var cpu = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu)
    let wall = Double(DispatchTime.now().uptimeNanoseconds) / 1e6
    return (wall, Double(cpu.tv_sec) * 1e3 + Double(cpu.tv_nsec) / 1e6)
  }
}
