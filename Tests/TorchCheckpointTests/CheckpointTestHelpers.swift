import Foundation
import TestSupport
import TorchCheckpoint
import XCTest

/// Loads `Tests/Fixtures/checkpoints/<name>` (written by Scripts/make_checkpoint_fixtures.py).
func loadFixture(_ name: String) throws -> Checkpoint {
  try Checkpoint.load(contentsOf: Fixtures.url("checkpoints/\(name)"))
}

/// Asserts that loading the fixture fails with a TorchCheckpointError whose message names the
/// file and contains every fragment (the cause, key, opcode or global).
func assertRefused(
  _ name: String, mentioning fragments: [String], file: StaticString = #filePath, line: UInt = #line
) {
  do {
    let checkpoint = try loadFixture(name)
    XCTFail("\(name) loaded \(checkpoint.tensors.count) tensors; expected an error", file: file, line: line)
  } catch let error as TorchCheckpointError {
    let message = error.localizedDescription
    XCTAssertTrue(
      message.contains(name), "message does not name the file: \(message)", file: file, line: line)
    for fragment in fragments {
      XCTAssertTrue(
        message.contains(fragment), "message lacks \"\(fragment)\": \(message)", file: file, line: line)
    }
  } catch {
    XCTFail("\(name): expected a TorchCheckpointError, got \(error)", file: file, line: line)
  }
}
