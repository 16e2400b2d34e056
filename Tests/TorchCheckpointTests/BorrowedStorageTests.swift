import Foundation
import SAMTensor
import TestSupport
import XCTest

@testable import TorchCheckpoint

/// Float32 storages used in place in the file's mapping (`Checkpoint.load`'s default for storages
/// of 1 MB and more; the fixtures are smaller, so these tests lower the bound) load to the same
/// tensors as copied ones, outlive their checkpoint, and are never written.
final class BorrowedStorageTests: XCTestCase {
  private func load(_ name: String, smallestBorrowed: Int) throws -> Checkpoint {
    try Checkpoint.load(contentsOf: Fixtures.url(name), memoryLimit: .max, smallestBorrowed: smallestBorrowed)
  }

  func testBorrowedAndCopiedStoragesLoadTheSameTensors() throws {
    for name in [
      "checkpoints/dtypes.pt", "checkpoints/views.pt", "checkpoints/parameters.pt",
      "checkpoints/module_other_prefix.pt",
    ] {
      let borrowed = try load(name, smallestBorrowed: 0)
      let copied = try load(name, smallestBorrowed: .max)
      XCTAssertEqual(Set(borrowed.tensors.keys), Set(copied.tensors.keys), name)
      for (key, tensor) in copied.tensors {
        let other = try XCTUnwrap(borrowed.tensors[key], "\(name) \(key)")
        XCTAssertFalse(tensor.isBorrowed, "\(name) \(key)")
        XCTAssertEqual(other.shape, tensor.shape, "\(name) \(key)")
        // Bit patterns: the fixtures hold NaNs, and -0 must stay -0.
        XCTAssertEqual(other.data.map(\.bitPattern), tensor.data.map(\.bitPattern), "\(name) \(key)")
      }
      XCTAssertTrue(borrowed.tensors.values.contains { $0.isBorrowed }, name)
    }
  }

  func testOnlyWholeFloat32StoragesAreBorrowed() throws {
    let dtypes = try load("checkpoints/dtypes.pt", smallestBorrowed: 0).tensors
    XCTAssertEqual(dtypes["float32"]?.isBorrowed, true)
    XCTAssertEqual(dtypes["scalar"]?.isBorrowed, true)
    XCTAssertEqual(dtypes["float16"]?.isBorrowed, false, "converted")
    XCTAssertEqual(dtypes["int64"]?.isBorrowed, false, "converted")
    let views = try load("checkpoints/views.pt", smallestBorrowed: 0).tensors
    XCTAssertEqual(views["shared_whole"]?.isBorrowed, true)
    XCTAssertEqual(views["shared_tail"]?.isBorrowed, false, "a part of its storage: copied")
    XCTAssertEqual(views["transposed"]?.isBorrowed, false, "strided: gathered")
    // The default bound leaves these small storages as arrays.
    let small = try Checkpoint.load(contentsOf: Fixtures.url("checkpoints/dtypes.pt")).tensors
    XCTAssertFalse(small.values.contains { $0.isBorrowed })
  }

  /// The mapping is released with the last tensor that borrows from it, not with the checkpoint
  /// (reading the values after an early unmap would crash this test).
  func testBorrowedTensorsOutliveTheirCheckpoint() throws {
    var kept: Tensor?
    do {
      let checkpoint = try load("checkpoints/dtypes.pt", smallestBorrowed: 0)
      kept = checkpoint.tensors["float32"]
    }
    let tensor = try XCTUnwrap(kept)
    XCTAssertTrue(tensor.isBorrowed)
    XCTAssertEqual(tensor.data, (0..<24).map { Float($0) * 0.5 - 3 })
    XCTAssertEqual(
      linear(Tensor(shape: [1, 4], data: [1, 0, 0, 0]), weight: tensor.reshaped([6, 4]), bias: nil).data,
      [-3, -1, 1, 3, 5, 7])
  }

  func testWritingABorrowedTensorLeavesTheFileAlone() throws {
    let url = Fixtures.url("checkpoints/dtypes.pt")
    let before = try Data(contentsOf: url)
    let checkpoint = try load("checkpoints/dtypes.pt", smallestBorrowed: 0)
    var tensor = try XCTUnwrap(checkpoint.tensors["float32"])
    tensor.data[0] = 42
    XCTAssertEqual(tensor.data[0], 42)
    XCTAssertEqual(checkpoint.tensors["float32"]?.data[0], -3)
    XCTAssertEqual(try load("checkpoints/dtypes.pt", smallestBorrowed: 0).tensors["float32"]?.data[0], -3)
    XCTAssertEqual(try Data(contentsOf: url), before)
  }
}
