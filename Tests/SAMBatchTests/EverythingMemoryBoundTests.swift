import Foundation
import MobileSAM
import SAMImage
import TestSupport
import XCTest

@testable import SAMBatch

/// The generator's memory budget (issue 10): masks whose runs were forgotten before NMS are made
/// again from their point alone, and the result is exactly the one of an unbounded run (runs,
/// boxes, scores, stability, points, crops and order), with crops, with `min_mask_region_area`
/// and with both thresholds at 0. Fixture checkpoint: random weights, so noisy masks.
final class EverythingMemoryBoundTests: XCTestCase {
  private struct Cases: Decodable {
    struct Case: Decodable {
      let name: String
      let image: String
      let parameters: EverythingParameters
    }
    let cases: [Case]
  }

  private static let model = Result {
    try MobileSAMModel(checkpoint: Fixtures.url("reference/mobile_sam_random.pt"))
  }

  /// Two of the parity fixture's cases (small regions; crops with small regions), then every mask
  /// passing the filters and no NMS over crops, with small regions: a hundred noisy masks.
  private func parameterSets() throws -> [(name: String, image: String, parameters: EverythingParameters)] {
    let url = Fixtures.url("everything/cases.json")
    guard let data = try? Data(contentsOf: url) else { throw MissingFixture(path: url.path) }
    var sets = try JSONDecoder().decode(Cases.self, from: data).cases
      .filter { ["picture2_small_regions", "picture3_crops"].contains($0.name) }
      .map { ($0.name, $0.image, $0.parameters) }
    XCTAssertEqual(sets.count, 2, "the parity fixture's cases were renamed")
    var everyMask = EverythingParameters()
    everyMask.pointsPerSide = 6
    everyMask.pointsPerBatch = 7
    everyMask.predIouThresh = 0
    everyMask.stabilityScoreThresh = 0
    everyMask.cropNLayers = 1
    everyMask.boxNmsThresh = 1
    everyMask.cropNmsThresh = 1
    everyMask.minMaskRegionArea = 30
    sets.append(("every mask, crops, no NMS, small regions", "picture5_crops.png", everyMask))
    return sets
  }

  func testMasksMadeAgainEqualTheUnboundedOnes() throws {
    let model = try Self.model.get()
    var total = (masks: 0, partly: 0)
    for set in try parameterSets() {
      let image = try ImageDecoder.decode(contentsOf: Fixtures.url("everything/\(set.image)"))
      var generator = try AutomaticMaskGenerator(model: model, parameters: set.parameters)
      generator.keptRunsBudget = .max
      let unbounded = try generator.generate(image)
      XCTAssertEqual(unbounded.decodedAgain, 0, set.name)
      // 0 forgets every mask; half the runs of the result keeps some masks and forgets others.
      let half = unbounded.masks.reduce(0) { $0 + $1.runs.count * MemoryLayout<Int>.stride } / 2
      for budget in [0, half] {
        generator.keptRunsBudget = budget
        let bounded = try generator.generate(image)
        XCTAssertEqual(bounded.masks.count, unbounded.masks.count, "\(set.name), budget \(budget)")
        for (i, (ours, expected)) in zip(bounded.masks, unbounded.masks).enumerated() {
          XCTAssertEqual(ours, expected, "\(set.name), budget \(budget), mask \(i)")
        }
        if budget == 0 {
          // min_mask_region_area's NMS runs after the masks are made again, so it may drop some.
          XCTAssertGreaterThanOrEqual(bounded.decodedAgain, bounded.masks.count, set.name)
        } else if bounded.decodedAgain > 0 && bounded.decodedAgain < unbounded.masks.count {
          total.partly += 1
        }
        print(
          "\(set.name), budget \(budget): \(bounded.masks.count) masks, \(bounded.decodedAgain) made again")
      }
      total.masks += unbounded.masks.count
    }
    XCTAssertGreaterThanOrEqual(total.masks, 100, "the sets should keep a hundred masks to compare")
    XCTAssertGreaterThan(total.partly, 0, "some set should keep some runs and forget others")
  }
}
