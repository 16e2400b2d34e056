import Foundation
import MobileSAM
import SAMImage
import TestSupport
import XCTest

/// The ViT encoder (SAM vit_b/l/h) against segment_anything's outputs: Tests/Fixtures/vit, a small
/// ViT written by Scripts/make_vit_fixtures.py. With SAMBATCH_VIT_REFERENCE=DIR the same checks run
/// on the cases.json that Scripts/make_vit_checkpoints.py wrote into DIR (full-size random
/// ViT-B/L/H, not committed). Tolerances are ParityTests'.
final class ViTParityTests: XCTestCase {
  final class Reference: @unchecked Sendable {
    static let shared = Result { try Reference() }
    let base: URL
    let cases: ReferenceCases
    let model: MobileSAMModel
    private var embeddings: [String: ImageEmbedding] = [:]
    private let lock = NSLock()

    private init() throws {
      // Paths in cases.json are relative to the folder it names them from (Tests/Fixtures for
      // the committed fixture) or absolute.
      let url: URL
      if let directory = ProcessInfo.processInfo.environment["SAMBATCH_VIT_REFERENCE"] {
        base = URL(fileURLWithPath: directory, isDirectory: true)
        url = base.appendingPathComponent("cases.json")
      } else {
        base = Fixtures.root
        url = Fixtures.url("vit/cases.json")
      }
      guard FileManager.default.fileExists(atPath: url.path) else { throw MissingFixture(path: url.path) }
      let cases = try JSONDecoder().decode(ReferenceCases.self, from: Data(contentsOf: url))
      self.cases = cases
      model = try MobileSAMModel(checkpoint: Self.resolve(cases.checkpoint, base: base))
    }

    func resolve(_ path: String) -> URL { Self.resolve(path, base: base) }

    static func resolve(_ path: String, base: URL) -> URL {
      path.hasPrefix("/") ? URL(fileURLWithPath: path) : base.appendingPathComponent(path)
    }

    func embedding(_ path: String) throws -> ImageEmbedding {
      lock.lock()
      defer { lock.unlock() }
      if let embedding = embeddings[path] { return embedding }
      let embedding = try model.embed(try ImageDecoder.decode(contentsOf: resolve(path)))
      embeddings[path] = embedding
      return embedding
    }
  }

  private func reference() throws -> Reference { try Reference.shared.get() }

  func testModelIsRecognizedAsViT() throws {
    let reference = try reference()
    if ProcessInfo.processInfo.environment["SAMBATCH_VIT_REFERENCE"] == nil {
      // width 64, depth 4: not one of the official sizes.
      XCTAssertEqual(reference.model.kind, .vitCustom)
    } else {
      XCTAssertNotEqual(reference.model.kind, .vitT)
    }
    print("model kind \(reference.model.kind.rawValue)")
  }

  /// 1e-3: float32 GEMMs summed in another order over the blocks. The fixture stores the first
  /// channels of the embedding (the neck mixes all of the encoder's channels into each).
  func testImageEmbeddingMatchesReference() throws {
    let reference = try reference()
    XCTAssertFalse(reference.cases.embeddings.isEmpty)
    for expected in reference.cases.embeddings {
      let want = try readFloat32Npy(reference.resolve(expected.file))
      XCTAssertEqual(want.shape.count, 4)
      let got = try reference.embedding(expected.image).channelsFirstFeatures
      let diff = maxAbsDifference(Array(got.prefix(want.values.count)), want.values)
      print("ViT embedding \(expected.image) (\(want.shape[1]) channels): max |diff| \(diff)")
      XCTAssertLessThanOrEqual(diff, 1e-3, "embedding of \(expected.image)")
    }
  }

  /// Scores within 1e-3, low-res logits within 1e-2, masks IoU >= 0.995, stability within 1e-3.
  func testPredictionsMatchReference() throws {
    let reference = try reference()
    XCTAssertGreaterThan(reference.cases.cases.count, 0)
    for testCase in reference.cases.cases {
      let embedding = try reference.embedding(testCase.image)
      let prediction = try reference.model.predict(
        embedding, prompts: [testCase.prompt], multimask: testCase.multimask)[0]
      XCTAssertEqual(prediction.scores.count, testCase.scores.count, testCase.name)
      var scoreDiff: Float = 0
      for (got, want) in zip(prediction.scores, testCase.scores) {
        scoreDiff = max(scoreDiff, abs(got - want))
        XCTAssertEqual(got, want, accuracy: 1e-3, "\(testCase.name): score")
      }
      for (got, want) in zip(prediction.stabilityScores, testCase.stability) {
        XCTAssertEqual(got ?? -1, want, accuracy: 1e-3, "\(testCase.name): stability score")
      }
      let logits = try readFloat32Npy(reference.resolve(testCase.logits))
      let logitDiff = maxAbsDifference(prediction.lowResLogits.flatMap { $0 }, logits.values)
      XCTAssertLessThanOrEqual(logitDiff, 1e-2, "\(testCase.name): low-res logits")
      var worstIoU = 1.0
      for (mask, rle) in zip(prediction.masks, testCase.masks) {
        XCTAssertEqual([mask.height, mask.width], rle.size, testCase.name)
        let want = BinaryMask(
          width: rle.size[1], height: rle.size[0],
          pixels: try decodeCOCORLE(rle.counts, width: rle.size[1], height: rle.size[0]))
        worstIoU = min(worstIoU, maskIoU(mask, want))
      }
      print(
        "ViT \(testCase.name): score max |diff| \(scoreDiff), logits max |diff| \(logitDiff),"
          + " worst mask IoU \(worstIoU)")
      XCTAssertGreaterThanOrEqual(worstIoU, 0.995, "\(testCase.name): mask IoU")
    }
  }
}
