import SAMTensor
import TorchCheckpoint
import XCTest

final class CheckpointWeightsTests: XCTestCase {
  private func weights() -> CheckpointWeights {
    let checkpoint = Checkpoint(tensors: [
      "encoder.conv.weight": Tensor(shape: [2, 3], data: [1, 2, 3, 4, 5, 6]),
      "encoder.conv.bias": Tensor(shape: [2], data: [7, 8]),
      "encoder.bn.num_batches_tracked": Tensor(shape: [], data: [3]),
      "head.weight": Tensor(shape: [1], data: [9]),
    ])
    return CheckpointWeights(checkpoint, source: "model.pt")
  }

  func testTakeIgnoreFinish() throws {
    let weights = weights()
    let conv = try weights.take("encoder.conv.weight", shape: [2, 3])
    XCTAssertEqual(conv.data, [1, 2, 3, 4, 5, 6])
    XCTAssertEqual(try weights.take("encoder.conv.bias", shape: [2]).data, [7, 8])
    weights.ignore(prefix: "head.")
    weights.ignore(suffix: ".num_batches_tracked")
    XCTAssertNoThrow(try weights.finish())
  }

  func testMissingKeyNamesKeyAndFile() {
    XCTAssertThrowsError(try weights().take("decoder.weight", shape: [1])) { error in
      XCTAssertEqual(error.localizedDescription, "missing key decoder.weight in model.pt")
    }
  }

  func testWrongShapeNamesBothShapes() {
    XCTAssertThrowsError(try weights().take("encoder.conv.weight", shape: [3, 2])) { error in
      XCTAssertEqual(
        error.localizedDescription, "encoder.conv.weight in model.pt has shape [2, 3], expected [3, 2]")
    }
  }

  func testLeftoversAreAnErrorListingThem() throws {
    let weights = weights()
    _ = try weights.take("encoder.conv.bias", shape: [2])
    weights.ignore(suffix: ".num_batches_tracked")
    XCTAssertEqual(weights.unusedKeys, ["encoder.conv.weight", "head.weight"])
    XCTAssertThrowsError(try weights.finish()) { error in
      let message = error.localizedDescription
      XCTAssertTrue(message.hasPrefix("2 unused key(s) in model.pt"), message)
      XCTAssertTrue(message.contains("encoder.conv.weight, head.weight"), message)
    }
  }

  func testManyLeftoversAreSummarized() {
    var tensors: [String: Tensor] = [:]
    for index in 0..<12 { tensors[String(format: "k%02d", index)] = Tensor(zeros: [1]) }
    let weights = CheckpointWeights(Checkpoint(tensors: tensors), source: "big.pt")
    XCTAssertThrowsError(try weights.finish()) { error in
      XCTAssertEqual(
        error.localizedDescription, "12 unused key(s) in big.pt: k00, k01, k02, k03, k04, ... (7 more)")
    }
  }

  func testTakingTwiceIsAnError() throws {
    let weights = weights()
    _ = try weights.take("head.weight", shape: [1])
    XCTAssertThrowsError(try weights.take("head.weight", shape: [1])) { error in
      XCTAssertTrue(error.localizedDescription.contains("taken twice"), error.localizedDescription)
    }
  }

  func testContains() {
    XCTAssertTrue(weights().contains("head.weight"))
    XCTAssertFalse(weights().contains("head.bias"))
  }
}
