import Foundation
import SAMBatch
import TestSupport
import XCTest

/// The automatic mask generator's helpers against the reference's own values
/// (Tests/Fixtures/everything/units.json, written by Scripts/make_everything_fixtures.py with
/// numpy 2.4, torchvision 0.29 and OpenCV 5.0) and against naive versions.
final class EverythingUnitTests: XCTestCase {
  private struct Units: Decodable {
    struct Grid: Decodable {
      let n: Int
      let points: [[Double]]
    }
    struct Crops: Decodable {
      let width: Int
      let height: Int
      let n_layers: Int
      let overlap_ratio: Double
      let boxes: [[Int]]
      let layers: [Int]
    }
    struct NMS: Decodable {
      let boxes: [[Int]]
      let scores: [Float]
      let threshold: Double
      let keep: [Int]
    }
    struct Regions: Decodable {
      let height: Int
      let width: Int
      let area: Int
      let mask: [[UInt8]]
      let holes: [[UInt8]]
      let holes_changed: Bool
      let islands: [[UInt8]]
      let islands_changed: Bool
    }
    let point_grids: [Grid]
    let crop_boxes: [Crops]
    let batched_nms: [NMS]
    let remove_small_regions: [Regions]
  }

  private func units() throws -> Units {
    let url = Fixtures.url("everything/units.json")
    guard let data = try? Data(contentsOf: url) else { throw MissingFixture(path: url.path) }
    return try JSONDecoder().decode(Units.self, from: data)
  }

  /// Exact: numpy's linspace is reproduced operation by operation in float64.
  func testPointGridsEqualNumpy() throws {
    for grid in try units().point_grids {
      let ours = EverythingGeometry.pointGrid(grid.n)
      XCTAssertEqual(ours.count, grid.points.count, "n \(grid.n)")
      for (a, b) in zip(ours, grid.points) {
        XCTAssertEqual(a.x, b[0], "n \(grid.n)")
        XCTAssertEqual(a.y, b[1], "n \(grid.n)")
      }
    }
  }

  func testCropBoxesEqualReference() throws {
    for c in try units().crop_boxes {
      let ours = EverythingGeometry.cropBoxes(
        width: c.width, height: c.height, layers: c.n_layers, overlapRatio: c.overlap_ratio)
      XCTAssertEqual(
        ours.map { [$0.box.x0, $0.box.y0, $0.box.x1, $0.box.y1] }, c.boxes, "\(c.width)x\(c.height)")
      XCTAssertEqual(ours.map(\.layer), c.layers)
    }
  }

  /// Scores with many ties: the kept indices and their order equal torchvision's.
  func testNMSKeepsWhatTorchvisionKeepsInItsOrder() throws {
    for c in try units().batched_nms {
      let boxes = c.boxes.map { PixelBox(x0: $0[0], y0: $0[1], x1: $0[2], y1: $0[3]) }
      let keep = EverythingGeometry.nonMaximumSuppression(
        boxes: boxes, scores: c.scores, threshold: c.threshold)
      XCTAssertEqual(keep, c.keep, "\(boxes.count) boxes, threshold \(c.threshold)")
    }
  }

  func testNMSTiesGoToTheEarlierBox() {
    let same = PixelBox(x0: 0, y0: 0, x1: 10, y1: 10)
    let keep = EverythingGeometry.nonMaximumSuppression(
      boxes: [same, same, PixelBox(x0: 50, y0: 50, x1: 60, y1: 60), same], scores: [1, 2, 2, 2],
      threshold: 0.5)
    XCTAssertEqual(keep, [1, 2])
    // IoU exactly 1 is not above a threshold of 1: nothing is suppressed.
    XCTAssertEqual(
      EverythingGeometry.nonMaximumSuppression(boxes: [same, same], scores: [0, 0], threshold: 1), [0, 1])
  }

  func testRemoveSmallRegionsEqualsOpenCVBased() throws {
    for c in try units().remove_small_regions {
      let mask = c.mask.flatMap { $0 }
      let holes = MaskRegions.removeSmall(mask, width: c.width, height: c.height, area: c.area, mode: .holes)
      XCTAssertEqual(holes.mask, c.holes.flatMap { $0 }, "holes \(c.width)x\(c.height) area \(c.area)")
      XCTAssertEqual(holes.changed, c.holes_changed)
      let islands = MaskRegions.removeSmall(
        mask, width: c.width, height: c.height, area: c.area, mode: .islands)
      XCTAssertEqual(islands.mask, c.islands.flatMap { $0 }, "islands \(c.width)x\(c.height) area \(c.area)")
      XCTAssertEqual(islands.changed, c.islands_changed)
    }
  }

  /// Diagonal neighbours are connected (8-connectivity); when every island is small the first
  /// largest stays.
  func testRegionsAreEightConnected() {
    let mask: [UInt8] = [
      1, 0, 0, 0, 1,
      0, 1, 0, 0, 1,
      0, 0, 0, 0, 0,
      1, 1, 0, 0, 0,
    ]
    // Islands: {0, 6} (2 pixels, diagonal), {4, 9} (2), {15, 16} (2): all below 3.
    let islands = MaskRegions.removeSmall(mask, width: 5, height: 4, area: 3, mode: .islands)
    XCTAssertTrue(islands.changed)
    XCTAssertEqual(islands.mask, [1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    let kept = MaskRegions.removeSmall(mask, width: 5, height: 4, area: 2, mode: .islands)
    XCTAssertFalse(kept.changed)
    XCTAssertEqual(kept.mask, mask)
    // A one-pixel hole closed diagonally is still a hole; the background touching it is not.
    let ring: [UInt8] = [
      1, 1, 1, 0,
      1, 0, 1, 0,
      1, 1, 1, 0,
    ]
    let filled = MaskRegions.removeSmall(ring, width: 4, height: 3, area: 2, mode: .holes)
    XCTAssertEqual(filled.mask, [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0])
    XCTAssertTrue(filled.changed)
  }

  func testParametersOutOfRangeAreNamed() {
    var p = EverythingParameters()
    XCTAssertEqual(p.problems(naming: .flags), [])
    p.pointsPerSide = 0
    XCTAssertEqual(p.problems(naming: .flags).first?.hasPrefix("--points-per-side 0:"), true)
    p.pointsPerSide = 10_000
    XCTAssertEqual(p.problems(naming: .keys).first?.hasPrefix("points_per_side 10000:"), true)
    p = EverythingParameters()
    p.predIouThresh = .nan
    p.cropOverlapRatio = -0.1
    let problems = p.problems(naming: .flags)
    XCTAssertEqual(problems.count, 2)
    XCTAssertTrue(problems[0].hasPrefix("--pred-iou-thresh nan"))
    XCTAssertTrue(problems[1].hasPrefix("--crop-overlap-ratio -0.1"))
    p = EverythingParameters()
    p.pointsPerSide = 4
    p.cropNLayers = 1
    p.cropNPointsDownscaleFactor = 8
    XCTAssertEqual(p.problems(naming: .flags).first?.contains("no point in crop layer 1"), true)
  }
}
