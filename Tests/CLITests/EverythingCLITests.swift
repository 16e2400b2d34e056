import Foundation
import TestSupport
import XCTest

/// `sambatch predict --everything` run as a built binary: parameters out of range are refused
/// naming the flag, before the model loads (exit 64); a run prints the reference's fields.
final class EverythingCLITests: XCTestCase {
  private let image = Fixtures.url("everything/picture3_crops.png").path
  /// Does not exist: a refusal with exit 64 shows the model was never opened.
  private let absentModel = "/nonexistent/mobile_sam.pt"

  private func predict(_ arguments: [String]) throws -> BinaryResult {
    try BinaryRunner.run(["predict"] + arguments, environment: ["SAMBATCH_MODEL": nil], timeout: 120)
  }

  func testParametersOutOfRangeAreRefusedBeforeTheModelLoads() throws {
    let cases: [([String], String)] = [
      (["--points-per-side", "0"], "--points-per-side 0"),
      (["--points-per-side", "10000"], "--points-per-side 10000"),
      (["--pred-iou-thresh", "nan"], "--pred-iou-thresh nan"),
      (["--stability-score-thresh", "1.5"], "--stability-score-thresh 1.5"),
      (["--crop-overlap-ratio=-0.5"], "--crop-overlap-ratio -0.5"),
      (["--box-nms-thresh", "inf"], "--box-nms-thresh inf"),
      (
        ["--crop-n-layers", "1", "--points-per-side", "2", "--crop-n-points-downscale-factor", "4"],
        "no point"
      ),
      (["--points-per-batch", "0"], "--points-per-batch 0"),
      (["--min-mask-region-area=-1"], "--min-mask-region-area -1"),
      (["--box", "1,2,3,4"], "--box"),
      (["--multimask"], "--multimask"),
    ]
    for (arguments, fragment) in cases {
      let result = try predict(["--everything", "--model", absentModel, "--image", image] + arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
      XCTAssertTrue(
        result.stderr.contains(fragment), "\(arguments): stderr \"\(result.stderr)\" lacks \(fragment)")
      XCTAssertEqual(result.stdout, "")
    }
    let stray = try predict([
      "--model", absentModel, "--image", image, "--box", "1,2,3,4", "--points-per-side", "4",
    ])
    XCTAssertEqual(stray.status, 64)
    XCTAssertTrue(stray.stderr.contains("--points-per-side only apply with --everything"), stray.stderr)
  }

  func testPrintsTheReferenceFields() throws {
    let result = try predict([
      "--everything", "--model", Fixtures.url("reference/mobile_sam_random.pt").path, "--image", image,
      "--points-per-side", "3", "--pred-iou-thresh", "0", "--stability-score-thresh", "0",
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    let json = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
    XCTAssertEqual(json["width"] as? Int, 64)
    XCTAssertEqual(json["height"] as? Int, 43)
    let masks = try XCTUnwrap(json["masks"] as? [[String: Any]])
    XCTAssertFalse(masks.isEmpty)
    for mask in masks {
      XCTAssertEqual(
        Set(mask.keys),
        ["rle", "area", "bbox", "predicted_iou", "stability_score", "point_coords", "crop_box"])
      XCTAssertEqual((mask["rle"] as? [String: Any])?["size"] as? [Int], [43, 64])
      XCTAssertEqual(mask["crop_box"] as? [Int], [0, 0, 64, 43])
      XCTAssertEqual((mask["point_coords"] as? [[Double]])?.first?.count, 2)
    }
    let timings = try XCTUnwrap(json["timings_ms"] as? [String: Double])
    XCTAssertEqual(
      Set(timings.keys), ["load_model", "decode_image", "embed", "decode", "postprocess", "total"])
  }
}
