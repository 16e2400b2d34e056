import Foundation
import MobileSAM
import SAMTensor
import TestSupport
import TorchCheckpoint
import XCTest

/// The model's load step on top of the generic checkpoint reader: strict about keys and shapes.
final class CheckpointLoadingTests: XCTestCase {
  private static let checkpoint = Result {
    try Checkpoint.load(contentsOf: Fixtures.url("reference/mobile_sam_random.pt"))
  }

  private func expectLoadError(_ tensors: [String: Tensor], mentions words: [String]) throws {
    XCTAssertThrowsError(try MobileSAMModel(checkpoint: Checkpoint(tensors: tensors), source: "edited.pt")) {
      error in
      let message = error.localizedDescription
      for word in words { XCTAssertTrue(message.contains(word), "\"\(word)\" missing from: \(message)") }
    }
  }

  func testTheReferenceCheckpointLoadsWithItsIgnoredKeys() throws {
    let checkpoint = try Self.checkpoint.get()
    // The classification head and the BatchNorm counters are in the file and deliberately unused.
    XCTAssertNotNil(checkpoint.tensors["image_encoder.head.weight"])
    XCTAssertEqual(checkpoint.tensors.keys.filter { $0.hasSuffix(".num_batches_tracked") }.count, 27)
    XCTAssertNoThrow(try MobileSAMModel(checkpoint: checkpoint, source: "mobile_sam_random.pt"))
  }

  func testMissingKeyIsNamed() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["mask_decoder.iou_token.weight"] = nil
    try expectLoadError(tensors, mentions: ["edited.pt", "mask_decoder.iou_token.weight", "missing"])
  }

  func testWrongShapeNamesKeyAndBothShapes() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.layers.1.blocks.0.attn.attention_biases"] = Tensor(zeros: [4, 48])
    try expectLoadError(
      tensors, mentions: ["image_encoder.layers.1.blocks.0.attn.attention_biases", "[4, 48]", "[4, 49]"])
  }

  func testUnexpectedKeyIsAnError() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.extra_adapter.weight"] = Tensor(zeros: [3])
    try expectLoadError(tensors, mentions: ["image_encoder.extra_adapter.weight"])
  }

  func testForeignStateDictIsAnError() throws {
    let tensors = ["model.fc.weight": Tensor(zeros: [2, 2])]
    try expectLoadError(tensors, mentions: ["edited.pt", "missing"])
  }

  /// The float32 storage path against the float16 one: the small float32 file holds the same
  /// values (each representable in float16), so they must be equal exactly.
  func testFloat32CheckpointEqualsTheFloat16Values() throws {
    let float16 = try Self.checkpoint.get()
    let float32 = try Checkpoint.load(contentsOf: Fixtures.url("reference/small_float32.pt"))
    XCTAssertGreaterThan(float32.tensors.count, 10)
    for (key, tensor) in float32.tensors {
      XCTAssertEqual(float32.scalarTypes[key], .float32, key)
      XCTAssertEqual(float16.scalarTypes[key], .float16, key)
      XCTAssertEqual(tensor, float16.tensors[key], key)
    }
  }

  func testNotACheckpointFileIsAClearError() {
    let url = Fixtures.url("images/picture1.jpg")
    XCTAssertThrowsError(try MobileSAMModel(checkpoint: url)) { error in
      let message = error.localizedDescription
      XCTAssertTrue(message.contains("picture1.jpg"), message)
    }
  }
}
