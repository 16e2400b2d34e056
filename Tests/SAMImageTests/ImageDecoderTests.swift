import Foundation
import SAMImage
import TestSupport
import XCTest

final class ImageDecoderTests: XCTestCase {
  private func decode(_ relative: String, exif: Bool = true) throws -> RGBImage {
    try ImageDecoder.decode(contentsOf: Fixtures.url(relative), applyEXIFOrientation: exif)
  }

  private func assertMatches(
    _ expected: ExpectedFixtures.Image, file: StaticString = #filePath, line: UInt = #line
  )
    throws
  {
    let image = try decode(expected.file)
    XCTAssertEqual(image.width, expected.width, expected.file, file: file, line: line)
    XCTAssertEqual(image.height, expected.height, expected.file, file: file, line: line)
    XCTAssertEqual(
      fnv1a64(image.pixels), expected.fnv1a64, "\(expected.file) differs from \(expected.reference)",
      file: file, line: line)
  }

  /// The sample photos decode to exactly Pillow's pixels (the fixture script checked that OpenCV
  /// agrees with Pillow on them).
  func testPhotosDecodeLikePillow() throws {
    let expected = try ExpectedFixtures.load()
    XCTAssertEqual(expected.photos.count, 4)
    for photo in expected.photos { try assertMatches(photo) }
  }

  /// Every format variant (gray/CMYK/progressive JPEG; palette, alpha, gray, 1-bit, 16-bit and
  /// interlaced PNG; EXIF orientations; malformed EXIF) decodes to the reference pixels exactly.
  func testEveryFormatDecodesToTheReferencePixels() throws {
    let expected = try ExpectedFixtures.load()
    let names = Set(expected.formats.map { ($0.file as NSString).lastPathComponent })
    for required in [
      "gray.jpg", "cmyk.jpg", "ycck.jpg", "cmyk_no_adobe.jpg", "progressive.jpg", "palette.png", "rgba.png",
      "gray.png", "gray_alpha.png",
      "rgb16.png", "gray16.png", "interlaced.png", "bilevel.png", "orientation_6.png", "exif_bad_offset.jpg",
      "exif_cut_ifd.jpg", "png_named.jpg",
    ] {
      XCTAssertTrue(names.contains(required), "expected.json lacks \(required)")
    }
    for image in expected.formats { try assertMatches(image) }
  }

  func testEachEXIFOrientation() throws {
    let expected = try ExpectedFixtures.load()
    let stored = try decode("formats/baseline.jpg")  // the same pixels, no EXIF
    for value in 1...8 {
      let name = "formats/orientation_\(value).jpg"
      guard let reference = expected.formats.first(where: { $0.file == name }) else {
        return XCTFail("expected.json lacks \(name)")
      }
      try assertMatches(reference)
      let upright = try decode(name)
      // Orientations 5-8 swap the axes of the 300x200 stored image.
      XCTAssertEqual(upright.width, value >= 5 ? 200 : 300, name)
      XCTAssertEqual(upright.height, value >= 5 ? 300 : 200, name)
      let data = try Data(contentsOf: Fixtures.url(name))
      XCTAssertEqual(EXIFOrientation.read(from: data, format: .jpeg).rawValue, value, name)
      // With orientation off, every file gives the stored pixels.
      let unrotated = try decode(name, exif: false)
      XCTAssertTrue(unrotated == stored, "\(name): \(describeDifference(unrotated, stored))")
    }
  }

  func testOrientationOffKeepsStoredPixelsOfPNG() throws {
    let rotated = try decode("formats/orientation_6.png")
    let stored = try decode("formats/orientation_6.png", exif: false)
    XCTAssertEqual(stored.width, 300)
    XCTAssertEqual(rotated.width, 200)
    // Rotating 90 degrees clockwise: the upright top-left pixel is the stored bottom-left one.
    XCTAssertEqual(Array(rotated.pixels[0..<3]), Array(stored.pixels[(199 * 300 * 3)..<(199 * 300 * 3 + 3)]))
  }

  /// The Exif parser sees every truncation and many corruptions of a real Exif block; it must
  /// return some orientation and never trap.
  func testMalformedEXIFNeverCrashes() throws {
    let data = try Data(contentsOf: Fixtures.url("formats/orientation_6.jpg"))
    let header = Array(data.prefix(200))
    for length in 0..<header.count {
      _ = EXIFOrientation.read(from: Data(header.prefix(length)), format: .jpeg)
    }
    var generator = SplitMix64(seed: 3)
    for _ in 0..<2000 {
      var bytes = header
      for _ in 0..<3 { bytes[2 + Int(generator.next() % 150)] = UInt8(truncatingIfNeeded: generator.next()) }
      let value = EXIFOrientation.read(from: Data(bytes), format: .jpeg)
      XCTAssertTrue((1...8).contains(value.rawValue))
    }
    let png = try Data(contentsOf: Fixtures.url("formats/orientation_6.png"))
    XCTAssertEqual(EXIFOrientation.read(from: png, format: .png), .right)
    for length in stride(from: 0, to: 400, by: 1) {
      _ = EXIFOrientation.read(from: png.prefix(length), format: .png)
    }
  }

  func testFormatComesFromBytesNotExtension() throws {
    let named = try decode("formats/png_named.jpg")
    let png = try decode("formats/gray.png")
    XCTAssertTrue(named == png, describeDifference(named, png))
  }

  // MARK: - Errors

  private func assertError(
    _ relative: String, file: StaticString = #filePath, line: UInt = #line,
    _ check: (ImageError, String) -> Void
  ) {
    let url = Fixtures.url(relative)
    XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: url), relative, file: file, line: line) {
      error in
      guard let imageError = error as? ImageError else {
        return XCTFail("\(relative): \(error) is not an ImageError", file: file, line: line)
      }
      let message = imageError.localizedDescription
      XCTAssertTrue(
        message.contains(url.path), "message does not name the file: \(message)", file: file, line: line)
      check(imageError, message)
    }
  }

  func testTruncatedJPEGIsAnError() {
    assertError("formats/truncated.jpg") { error, message in
      guard case .corrupt(_, "JPEG", let detail) = error else { return XCTFail("\(error)") }
      XCTAssertTrue(detail.contains("Premature end of JPEG file"), message)
    }
    assertError("formats/truncated_progressive.jpg") { error, message in
      guard case .corrupt(_, "JPEG", _) = error else { return XCTFail(message) }
    }
  }

  func testCorruptPNGIsAnError() {
    assertError("formats/bad_crc.png") { error, message in
      guard case .corrupt(_, "PNG", let detail) = error else { return XCTFail(message) }
      XCTAssertTrue(detail.contains("CRC error"), message)
    }
    assertError("formats/corrupt_data.png") { error, message in
      guard case .corrupt(_, "PNG", _) = error else { return XCTFail(message) }
    }
    assertError("formats/truncated.png") { error, message in
      guard case .corrupt(_, "PNG", let detail) = error else { return XCTFail(message) }
      XCTAssertTrue(detail.contains("truncated"), message)
    }
  }

  func testNonImageIsUnsupported() {
    assertError("formats/not_an_image.jpg") { error, message in
      guard case .unsupportedFormat = error else { return XCTFail(message) }
      XCTAssertTrue(message.contains("unsupported image format"), message)
    }
    XCTAssertThrowsError(try ImageDecoder.decode(data: Data(), name: "empty.png")) { error in
      XCTAssertEqual(
        error as? ImageError, .unsupportedFormat(name: "empty.png", detail: "the file is empty"))
    }
    XCTAssertThrowsError(try ImageDecoder.decode(data: Data("GIF89a....".utf8), name: "a.gif")) { error in
      XCTAssertTrue(error.localizedDescription.contains("looks like GIF"), "\(error)")
    }
  }

  func testMissingFileAndDirectory() {
    assertError("formats/no_such_file.jpg") { error, _ in
      guard case .fileNotFound = error else { return XCTFail("\(error)") }
    }
    assertError("formats") { error, message in
      guard case .unreadable = error else { return XCTFail(message) }
    }
  }

  /// A named pipe called x.jpg is refused by its type, at once: reading it would wait for a
  /// writer forever. Both the decoder and the header-only size are checked; should either block,
  /// the test opens the pipe for writing to end the read, and fails.
  func testNamedPipeIsRefusedWithoutWaiting() throws {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let pipe = folder.appendingPathComponent("x.jpg")
    XCTAssertEqual(mkfifo(pipe.path, 0o644), 0, "mkfifo")
    for headerOnly in [false, true] {
      let finished = DispatchSemaphore(value: 0)
      let outcome = Outcome()
      DispatchQueue.global().async {
        do {
          if headerOnly {
            _ = try ImageDecoder.size(contentsOf: pipe)
          } else {
            _ = try ImageDecoder.decode(contentsOf: pipe)
          }
          outcome.message = "decoded"
        } catch {
          outcome.message = error.localizedDescription
        }
        finished.signal()
      }
      if finished.wait(timeout: .now() + 20) == .timedOut {
        let writer = open(pipe.path, O_WRONLY)
        if writer >= 0 { close(writer) }
        finished.wait()
        XCTFail("reading a named pipe waited for a writer (headerOnly: \(headerOnly))")
      }
      XCTAssertEqual(
        outcome.message, "\(pipe.path): cannot read the image file: it is a named pipe, not a regular file")
    }
  }

  private final class Outcome: @unchecked Sendable { var message = "" }

  /// Cut or damaged files: each decode either fails with an ImageError or returns an image of
  /// the right size; the test process survives all of them.
  func testDamagedFilesNeverCrash() throws {
    for name in [
      "formats/baseline.jpg", "formats/progressive.jpg", "formats/palette.png", "formats/interlaced.png",
    ] {
      let data = try Data(contentsOf: Fixtures.url(name))
      var generator = SplitMix64(seed: 5)
      var variants: [Data] = stride(from: 0, to: data.count, by: max(1, data.count / 60)).map {
        data.prefix($0)
      }
      for _ in 0..<40 {
        var bytes = [UInt8](data)
        for _ in 0..<4 {
          bytes[Int(generator.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: generator.next())
        }
        variants.append(Data(bytes))
      }
      for variant in variants {
        do {
          let image = try ImageDecoder.decode(data: variant, name: name, applyEXIFOrientation: false)
          XCTAssertEqual(image.pixels.count, image.width * image.height * 3)
        } catch {
          XCTAssertTrue(error is ImageError, "\(error)")
        }
      }
    }
  }

  // MARK: - Pixel limit

  /// A PNG whose IHDR claims 100000 x 100000 (30 GB of RGB) and holds no pixel data: refused
  /// from the header alone.
  func testPixelLimitRefusesHugePNGHeader() {
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    var ihdr: [UInt8] = []
    ihdr += bigEndian32(100_000) + bigEndian32(100_000)
    ihdr += [8, 2, 0, 0, 0]  // 8-bit RGB, deflate, no filter variant, not interlaced
    png += pngChunk("IHDR", ihdr) + pngChunk("IEND", [])
    XCTAssertThrowsError(try ImageDecoder.decode(data: Data(png), name: "bomb.png")) { error in
      XCTAssertEqual(
        error as? ImageError,
        .tooManyPixels(
          name: "bomb.png", width: 100_000, height: 100_000, limit: ImageDecoder.defaultMaxPixels))
      XCTAssertTrue(error.localizedDescription.contains("bomb.png"))
    }
  }

  /// A real JPEG whose SOF0 is patched to claim 60000 x 60000.
  func testPixelLimitRefusesHugeJPEGHeader() throws {
    var bytes = [UInt8](try Data(contentsOf: Fixtures.url("formats/baseline.jpg")))
    guard let sof = (0..<(bytes.count - 1)).first(where: { bytes[$0] == 0xFF && bytes[$0 + 1] == 0xC0 })
    else {
      return XCTFail("baseline.jpg has no SOF0")
    }
    // FF C0, length (2), precision (1), height (2), width (2).
    XCTAssertEqual(Array(bytes[(sof + 5)..<(sof + 9)]), [0, 200, 1, 44])  // 200 x 300 before patching
    bytes.replaceSubrange((sof + 5)..<(sof + 9), with: [0xEA, 0x60, 0xEA, 0x60])
    XCTAssertThrowsError(try ImageDecoder.decode(data: Data(bytes), name: "bomb.jpg")) { error in
      XCTAssertEqual(
        error as? ImageError,
        .tooManyPixels(name: "bomb.jpg", width: 60000, height: 60000, limit: ImageDecoder.defaultMaxPixels))
    }
  }

  func testPixelLimitIsInclusive() throws {
    let url = Fixtures.url("images/picture1.jpg")  // 769 x 770
    XCTAssertNoThrow(try ImageDecoder.decode(contentsOf: url, maxPixels: 769 * 770))
    XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: url, maxPixels: 769 * 770 - 1)) { error in
      guard case .tooManyPixels(_, 769, 770, _) = error as? ImageError else { return XCTFail("\(error)") }
    }
    let png = Fixtures.url("formats/gray.png")  // 300 x 200
    XCTAssertThrowsError(try ImageDecoder.decode(contentsOf: png, maxPixels: 59_999))
  }
}

/// A small deterministic generator for the corruption tests.
struct SplitMix64 {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

func bigEndian32(_ value: UInt32) -> [UInt8] {
  [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit: only a few bytes are hashed.
func crc32(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
  }
  return crc ^ 0xFFFF_FFFF
}

func pngChunk(_ type: String, _ payload: [UInt8]) -> [UInt8] {
  let kind = Array(type.utf8)
  return bigEndian32(UInt32(payload.count)) + kind + payload + bigEndian32(crc32(kind + payload))
}
