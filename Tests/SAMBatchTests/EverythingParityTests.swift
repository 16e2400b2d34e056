import Foundation
import MobileSAM
import SAMBatch
import SAMImage
import TestSupport
import XCTest

/// The automatic mask generator against the reference's (`SamAutomaticMaskGenerator`, coco_rle,
/// Tests/Fixtures/everything/cases.json from Scripts/make_everything_fixtures.py) with the random
/// fixture checkpoint. A mask matches when IoU >= 0.99 and predicted IoU and stability are within
/// 1e-3 (float32 reordering in the encoder moves logits by ~1e-5); >= 97% of the reference's masks
/// and of ours must match, since a filter or NMS decision at a threshold may flip on a tiny
/// difference.
final class EverythingParityTests: XCTestCase {
  private struct Cases: Decodable {
    struct Case: Decodable {
      let name: String
      let image: String
      let width: Int
      let height: Int
      let parameters: EverythingParameters
      let masks: [Mask]
    }
    struct Mask: Decodable {
      struct RLE: Decodable {
        let size: [Int]
        let counts: String
      }
      let rle: RLE
      let area: Int
      let bbox: [Int]
      let predicted_iou: Double
      let stability_score: Double
      let point_coords: [[Double]]
      let crop_box: [Int]
    }
    let checkpoint: String
    let cases: [Case]
  }

  private func cases() throws -> Cases {
    let url = Fixtures.url("everything/cases.json")
    guard let data = try? Data(contentsOf: url) else { throw MissingFixture(path: url.path) }
    return try JSONDecoder().decode(Cases.self, from: data)
  }

  private static let model = Result {
    try MobileSAMModel(checkpoint: Fixtures.url("reference/mobile_sam_random.pt"))
  }

  func testMasksMatchTheReference() throws {
    let fixture = try cases()
    XCTAssertEqual(fixture.checkpoint, "Tests/Fixtures/reference/mobile_sam_random.pt")
    let model = try Self.model.get()
    var totalReference = 0
    for c in fixture.cases {
      let image = try ImageDecoder.decode(contentsOf: Fixtures.url("everything/\(c.image)"))
      XCTAssertEqual([image.width, image.height], [c.width, c.height])
      let result = try AutomaticMaskGenerator(model: model, parameters: c.parameters).generate(image)
      let ours = try result.masks.map {
        try MaskRLE.mask(fromRuns: $0.runs, width: c.width, height: c.height)
      }
      let theirs = try c.masks.map { try MaskRLE.decode($0.rle.counts, width: c.width, height: c.height) }
      var used = Set<Int>()
      var matched = 0
      var worst = (iou: 1.0, score: 0.0, stability: 0.0)
      for (j, reference) in c.masks.enumerated() {
        let candidates = result.masks.indices.filter { i in
          guard !used.contains(i) else { return false }
          let mask = result.masks[i]
          return abs(Double(mask.predictedIou) - reference.predicted_iou) <= 1e-3
            && abs(Double(mask.stabilityScore ?? .nan) - reference.stability_score) <= 1e-3
            && [
              mask.cropBox.x0, mask.cropBox.y0, mask.cropBox.x1 - mask.cropBox.x0,
              mask.cropBox.y1 - mask.cropBox.y0,
            ]
              == reference.crop_box
        }
        guard let best = candidates.max(by: { iou(ours[$0], theirs[j]) < iou(ours[$1], theirs[j]) }),
          iou(ours[best], theirs[j]) >= 0.99
        else { continue }
        used.insert(best)
        matched += 1
        let mask = result.masks[best]
        worst.iou = min(worst.iou, iou(ours[best], theirs[j]))
        worst.score = max(worst.score, abs(Double(mask.predictedIou) - reference.predicted_iou))
        worst.stability = max(
          worst.stability, abs(Double(mask.stabilityScore ?? .nan) - reference.stability_score))
        // What the reference reports alongside, for the matched mask.
        XCTAssertEqual(mask.box.xywh, reference.bbox, "\(c.name): bbox")
        XCTAssertEqual(mask.area, reference.area, "\(c.name): area")
        XCTAssertEqual(mask.pointX, reference.point_coords[0][0], accuracy: 1e-9, "\(c.name): point x")
        XCTAssertEqual(mask.pointY, reference.point_coords[0][1], accuracy: 1e-9, "\(c.name): point y")
      }
      print(
        "\(c.name): reference \(c.masks.count) masks, ours \(result.masks.count), matched \(matched);"
          + " worst IoU \(worst.iou), |predicted IoU diff| \(worst.score), |stability diff| \(worst.stability)"
      )
      XCTAssertGreaterThanOrEqual(
        Double(matched), 0.97 * Double(c.masks.count), "\(c.name): reference masks matched (stale fixture?)")
      XCTAssertGreaterThanOrEqual(
        Double(matched), 0.97 * Double(result.masks.count), "\(c.name): our masks matched")
      totalReference += c.masks.count
    }
    XCTAssertGreaterThanOrEqual(totalReference, 60, "the fixture should keep a few dozen masks per case")
  }

  /// The reference crashes when no mask passes with crops; we give zero masks.
  func testNothingPassesGivesZeroMasks() throws {
    let model = try Self.model.get()
    let image = try ImageDecoder.decode(contentsOf: Fixtures.url("everything/picture3_crops.png"))
    var parameters = EverythingParameters()
    parameters.pointsPerSide = 4
    parameters.cropNLayers = 1
    parameters.minMaskRegionArea = 10
    // The random weights' predicted IoUs are all negative.
    parameters.predIouThresh = 0.5
    let result = try AutomaticMaskGenerator(model: model, parameters: parameters).generate(image)
    XCTAssertEqual(result.masks.count, 0)
    XCTAssertEqual([result.width, result.height], [image.width, image.height])
  }

  /// Points decoded as a batch give what `predict` gives for each point alone (multimask), and
  /// points whose three scores are all at or below `scoreAbove` get zero logits while the others
  /// keep theirs. 1e-4: float64 coordinates here, float32 in `predict` (~1e-7 relative in the
  /// positional encoding), and another batch composition.
  func testPointDecodingEqualsPredictAndSkipsOnlyFailingPoints() throws {
    let model = try Self.model.get()
    let image = try ImageDecoder.decode(contentsOf: Fixtures.url("everything/picture3_crops.png"))
    let embedding = try model.embed(image)
    let points: [(x: Double, y: Double)] = [(4, 5), (32, 21.5), (60.25, 40), (10, 30), (50, 8)]
    let all = model.decodePoints(embedding, points: points)
    let plane = 256 * 256
    for (i, point) in points.enumerated() {
      let alone = try model.predict(
        embedding, prompts: [Prompt(points: [PromptPoint(x: Float(point.x), y: Float(point.y), label: 1)])],
        multimask: true)[0]
      for m in 0..<3 {
        XCTAssertEqual(all.scores[i * 3 + m], alone.scores[m], accuracy: 1e-4)
        let ours = all.lowResLogits.data[((i * 3 + m) * plane)..<((i * 3 + m + 1) * plane)]
        let worst = zip(ours, alone.lowResLogits[m]).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, 1e-4, "point \(i + 1), mask \(m + 1)")
      }
    }
    let best = (0..<points.count).map { i in all.scores[(i * 3)..<(i * 3 + 3)].max()! }
    let threshold = best.sorted()[points.count / 2]
    let some = model.decodePoints(embedding, points: points, scoreAbove: threshold)
    XCTAssertEqual(some.scores, all.scores)
    var skipped = 0
    for i in points.indices {
      let range = (i * 3 * plane)..<((i + 1) * 3 * plane)
      if best[i] > threshold {
        XCTAssertEqual(
          Array(some.lowResLogits.data[range]), Array(all.lowResLogits.data[range]), "point \(i + 1)")
      } else {
        skipped += 1
        XCTAssertTrue(some.lowResLogits.data[range].allSatisfy { $0 == 0 }, "point \(i + 1)")
      }
    }
    XCTAssertGreaterThan(skipped, 0)
    XCTAssertLessThan(skipped, points.count)
    // Only the logits the masks read (as the generator asks): the same planes, the rest NaN.
    let masksOnly = model.decodePoints(embedding, points: points, coverage: .masksOnly)
    XCTAssertEqual(masksOnly.scores, all.scores)
    let computed = zip(masksOnly.lowResLogits.data, all.lowResLogits.data).filter { !$0.0.isNaN }
    XCTAssertTrue(computed.allSatisfy { $0.0.bitPattern == $0.1.bitPattern }, "computed logits differ")
    XCTAssertLessThan(computed.count, all.lowResLogits.count, "a \(image.width)x\(image.height) image")
    XCTAssertEqual(
      MaskUpscaling.planes(masksOnly.lowResLogits, embedding: embedding, threshold: 0, offset: 1),
      MaskUpscaling.planes(all.lowResLogits, embedding: embedding, threshold: 0, offset: 1))
  }

  func testBadParametersAreRefused() throws {
    var parameters = EverythingParameters()
    parameters.stabilityScoreThresh = .nan
    XCTAssertThrowsError(try AutomaticMaskGenerator(model: try Self.model.get(), parameters: parameters)) {
      XCTAssertTrue(($0 as? LocalizedError)?.errorDescription?.contains("--stability-score-thresh") == true)
    }
  }
}

private func iou(_ a: BinaryMask, _ b: BinaryMask) -> Double {
  var (intersection, union) = (0, 0)
  for (x, y) in zip(a.pixels, b.pixels) {
    intersection += (x != 0 && y != 0) ? 1 : 0
    union += (x != 0 || y != 0) ? 1 : 0
  }
  return union == 0 ? 1 : Double(intersection) / Double(union)
}
