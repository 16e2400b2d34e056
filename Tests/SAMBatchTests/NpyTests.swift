import Foundation
import SAMBatch
import TestSupport
import XCTest

/// Npy against files numpy 2.4 wrote (Tests/Fixtures/npy, from Scripts/make_npy_fixtures.py).
/// Values are compared exactly: `arange(n) * 0.25 - 1` is exact in float32.
final class NpyTests: XCTestCase {
  private func expectedValues(_ count: Int) -> [Float] { (0..<count).map { Float($0) * 0.25 - 1 } }

  func testReadsWhatNumpyWrites() throws {
    let cases: [(String, [Int])] = [
      ("f4_2x3.npy", [2, 3]), ("f4_1x4x4.npy", [1, 4, 4]), ("f4_scalar.npy", []), ("f4_7.npy", [7]),
      ("f4_v2_3x2.npy", [3, 2]),
    ]
    for (file, shape) in cases {
      let array = try Npy.read(contentsOf: Fixtures.url("npy/\(file)"))
      XCTAssertEqual(array.shape, shape, file)
      XCTAssertEqual(array.values, expectedValues(shape.reduce(1, *)), file)
    }
  }

  func testWritesExactlyWhatNumpyWrites() throws {
    // Version 1.0 files only: numpy.save picks 1.0 whenever the header fits.
    for (file, shape) in [
      ("f4_2x3.npy", [2, 3]), ("f4_1x4x4.npy", [1, 4, 4]), ("f4_scalar.npy", []), ("f4_7.npy", [7]),
    ] {
      let numpyBytes = try Data(contentsOf: Fixtures.url("npy/\(file)"))
      let ours = Npy.encode(NpyArray(shape: shape, values: expectedValues(shape.reduce(1, *))))
      XCTAssertEqual(ours, numpyBytes, file)
    }
  }

  func testRoundTripAndHeaderAlignment() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("npy-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    for shape in [[2, 3, 256, 256], [1, 256, 256], [12_345_678_901, 0], [0]] {
      let count = shape.reduce(1, *)
      let values = (0..<count).map { Float(sin(Double($0))) }
      let url = dir.appendingPathComponent("a.npy")
      try Npy.write(NpyArray(shape: shape, values: values), to: url)
      let data = try Data(contentsOf: url)
      let headerLength = Int(data[8]) | Int(data[9]) << 8
      XCTAssertEqual((10 + headerLength) % 64, 0, "\(shape)")
      XCTAssertEqual(data[10 + headerLength - 1], UInt8(ascii: "\n"))
      let back = try Npy.read(contentsOf: url)
      XCTAssertEqual(back.shape, shape)
      XCTAssertEqual(back.values, values)
    }
  }

  func testRejectsWhatItCannotRead() {
    let cases: [(String, String)] = [
      ("f8_2x3.npy", "'<f8' is not supported"),
      ("i4_2x3.npy", "'<i4' is not supported"),
      ("be_f4_2x3.npy", "'>f4' is not supported"),
      ("fortran_2x3.npy", "Fortran-order"),
      ("truncated_2x3.npy", "truncated"),
      ("extra_bytes_2x3.npy", "the file holds 28"),
      ("not_npy.npy", "not a .npy file"),
      ("does_not_exist.npy", "no such file"),
    ]
    for (file, fragment) in cases {
      XCTAssertThrowsError(try Npy.read(contentsOf: Fixtures.url("npy/\(file)")), file) { error in
        let message = error.localizedDescription
        XCTAssertTrue(message.contains(file), "message \"\(message)\" does not name the file")
        XCTAssertTrue(message.contains(fragment), "message \"\(message)\" lacks \"\(fragment)\"")
      }
    }
  }

  func testRejectsMalformedHeaders() throws {
    let good = try Data(contentsOf: Fixtures.url("npy/f4_2x3.npy"))
    let header = String(decoding: good[10..<(10 + 118)], as: UTF8.self)
    let broken: [(String, String)] = [
      (header.replacingOccurrences(of: "(2, 3)", with: "(2, x)"), "malformed header"),
      (header.replacingOccurrences(of: "'shape'", with: "'shapf'"), "no 'shape'"),
      (header.replacingOccurrences(of: "False", with: "Maybe"), "malformed header"),
      (header.replacingOccurrences(of: "(2, 3)", with: "(2, -3)"), "negative dimension"),
      (header.replacingOccurrences(of: "(2, 3)", with: "(99999, 99999)"), "truncated"),
    ]
    for (text, fragment) in broken {
      var data = good.prefix(10)
      data.append(contentsOf: Array(text.utf8))
      data.append(good.suffix(from: 128))
      XCTAssertThrowsError(try Npy.read(data: data, name: "x.npy")) { error in
        XCTAssertTrue(
          error.localizedDescription.contains(fragment), "\(error.localizedDescription) lacks \(fragment)")
      }
    }
  }
}
