import Foundation
import GRDB
import TestSupport
import XCTest

/// Everything jobs through the built binary: bad parameters refused before the model loads
/// (exit 64), kill -9 and resume, shards, status and exports with the fake segmenter, and the real
/// model's stored masks against `predict --everything`.
final class EverythingJobCLITests: XCTestCase {
  let fake = ["SAMBATCH_FAKE_SEGMENTER": "1"]

  /// `count` small images in nested folders (copies of the everything fixtures), and a job over
  /// them with `everything` as its section.
  private func makeJob(count: Int, everything: String, model: String = "/nonexistent/mobile_sam.pt") throws
    -> (dir: URL, job: URL)
  {
    let dir = try temporaryDirectory()
    let fixtures = [
      "picture1_filters.png", "picture2_small_regions.png", "picture3_crops.png", "picture5_crops.png",
    ]
    for i in 0..<count {
      let url = dir.appendingPathComponent("images/set\(i % 3)/img\(i).png")
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try FileManager.default.copyItem(
        at: Fixtures.url("everything/\(fixtures[i % fixtures.count])"), to: url)
    }
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    model: \(model)
    database: results.db
    images: images
    workers: 2
    everything: \(everything)

    """.write(to: job, atomically: true, encoding: .utf8)
    return (dir, job)
  }

  func testBadParametersExit64NamingTheKeyBeforeTheModelLoads() throws {
    let cases: [(String, String)] = [
      ("{points_per_side: 0}", "points_per_side 0"),
      ("{points_per_side: 10000}", "points_per_side 10000"),
      ("{pred_iou_thresh: .nan}", "pred_iou_thresh nan"),
      ("{stability_score_thresh: .nan}", "stability_score_thresh nan"),
      ("{crop_overlap_ratio: -0.5}", "crop_overlap_ratio -0.5"),
      ("{points_per_sid: 4}", "everything.points_per_sid"),
      ("{crop_n_layers: one}", "everything.crop_n_layers"),
    ]
    for (section, fragment) in cases {
      let (_, job) = try makeJob(count: 1, everything: section)
      for command in ["run", "validate", "status"] {
        let result = try runSambatch([command, job.path])
        XCTAssertEqual(result.status, 64, "\(command) \(section): \(result.stderr)")
        XCTAssertTrue(result.stderr.contains(fragment), "\(command) \(section): \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("job.yaml:6"), "the key's line: \(result.stderr)")
      }
    }
  }

  /// The run's summary for an everything job counts masks (its images have no prompts to count)
  /// and suggests a query that groups by image (its masks have no category). The image list, saved
  /// by a Windows editor (BOM, CRLF) and naming one image twice (relative and absolute), takes
  /// each image once; a settings change then names the integer as written (4, not 4.0).
  func testSummaryImageListAndSettingsChangeReadAsWritten() throws {
    let (dir, job) = try makeJob(count: 3, everything: "{points_per_side: 4, pred_iou_thresh: 0.6}")
    let absolute = dir.appendingPathComponent("images/set1/img1.png").path
    try Data("\u{FEFF}set2/img2.png\r\nset1/img1.png\r\n\(absolute)\r\n".utf8).write(
      to: dir.appendingPathComponent("list.txt"))
    try (String(contentsOf: job, encoding: .utf8) + "image_list: list.txt\n").write(
      to: job, atomically: true, encoding: .utf8)
    let result = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(result.status, 2, "the duplicate is a problem: \(result.stdout)\(result.stderr)")
    XCTAssertTrue(result.stdout.contains("Job: 2 done, 0 failed, 0 pending of 2 images; "), result.stdout)
    XCTAssertTrue(
      result.stdout.contains(" masks; 1 image list problem.\nImage list problems (1):"), result.stdout)
    XCTAssertFalse(result.stdout.contains("prompts"), result.stdout)
    XCTAssertTrue(
      result.stdout.contains("list.txt:3: '\(absolute)' is listed on line 2 already"), result.stdout)
    XCTAssertTrue(result.stdout.contains("FROM results GROUP BY image"), result.stdout)
    let paths: [String] =
      try DatabaseQueue(path: dir.appendingPathComponent("results.db").path).read {
        try String.fetchAll($0, sql: "SELECT path FROM images ORDER BY id")
      }
    XCTAssertEqual(paths, ["set2/img2.png", "set1/img1.png"])
    let validate = try runSambatch(["validate", job.path], environment: fake)
    XCTAssertEqual(validate.status, 2, validate.stdout)
    XCTAssertTrue(
      validate.stdout.contains("2 images (0 unreadable), 1 image list problem\n"), validate.stdout)
    let status = try runSambatch(["status", job.path], environment: fake)
    XCTAssertTrue(status.stdout.contains("\n  masks: "), status.stdout)
    XCTAssertTrue(status.stdout.contains("\n  image list problems: 1\n"), status.stdout)
    XCTAssertFalse(status.stdout.contains("prompts"), status.stdout)

    // A line appended to the list: new images, in the words of a job without prompts.
    let list = dir.appendingPathComponent("list.txt")
    try (String(contentsOf: list, encoding: .utf8) + "set0/img0.png\r\n").write(
      to: list, atomically: true, encoding: .utf8)
    let grownStatus = try runSambatch(["status", job.path], environment: fake)
    XCTAssertTrue(
      grownStatus.stdout.contains("the images changed since the last run: 1 new image (`sambatch run` adds"),
      grownStatus.stdout)
    let grown = try runSambatch(["run", job.path], environment: fake)
    XCTAssertTrue(
      grown.stderr.contains("the images changed: 1 new image: adding them, keeping the rest"), grown.stderr)
    XCTAssertTrue(grown.stdout.contains("Job: 3 done, 0 failed, 0 pending of 3 images; "), grown.stdout)

    try String(contentsOf: job, encoding: .utf8).replacingOccurrences(
      of: "points_per_side: 4", with: "points_per_side: 5"
    ).write(to: job, atomically: true, encoding: .utf8)
    let changed = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(changed.status, 1)
    XCTAssertTrue(
      changed.stderr.contains("sambatch run: error: ")
        && changed.stderr.contains("everything.points_per_side: 4 then, 5 now)"), changed.stderr)
  }

  func testKilledFakeRunResumesShardsMergeAndExportsIncludeTheMasks() throws {
    let count = 10
    let (dir, job) = try makeJob(
      count: count, everything: "{points_per_side: 4, pred_iou_thresh: 0.6, stability_score_thresh: 0.3}")
    let referenceDB = dir.appendingPathComponent("reference.db")
    let whole = try runSambatch(["run", job.path, "--database", referenceDB.path], environment: fake)
    XCTAssertEqual(whole.status, 0, whole.stderr)
    let expected = try resultDump(referenceDB)
    let masks: Int = try query(referenceDB, "SELECT COUNT(*) FROM masks") ?? 0
    XCTAssertGreaterThan(masks, count)

    // Killed mid-job (150 ms per image in the fake), then resumed.
    let database = dir.appendingPathComponent("results.db")
    var env = fake
    env["SAMBATCH_FAKE_DELAY_MS"] = "150"
    var killsMidJob = 0
    for target in [2, 5] {
      let result = try runSambatch(
        ["run", job.path], environment: env, killWhen: { processedImages(database) >= target })
      if result.killed && processedImages(database) < count { killsMidJob += 1 }
    }
    XCTAssertGreaterThanOrEqual(killsMidJob, 1, "a kill should land mid-job")
    let last = try runSambatch(["run", job.path], environment: env)
    XCTAssertEqual(last.status, 0, last.stderr)
    assertSameRows(try resultDump(database), expected)

    let status = try runSambatch(["status", job.path], environment: fake)
    XCTAssertEqual(status.status, 0, status.stderr)
    XCTAssertTrue(status.stdout.contains("masks: \(masks)"), status.stdout)
    XCTAssertTrue(status.stdout.contains("\(count) done"), status.stdout)

    // Two shards merge into what one run wrote.
    var shards: [String] = []
    for i in 0..<2 {
      XCTAssertEqual(try runSambatch(["run", job.path, "--shard", "\(i)/2"], environment: fake).status, 0)
      shards.append(dir.appendingPathComponent("results.shard-\(i)-of-2.db").path)
    }
    let merged = dir.appendingPathComponent("merged.db")
    XCTAssertEqual(try runSambatch(["merge", merged.path] + shards).status, 0)
    assertSameRows(try resultDump(merged), expected)

    // COCO: every mask, under "object", with the reference's point_coords and crop_box.
    let out = dir.appendingPathComponent("coco.json")
    let export = try runSambatch(["export", job.path, "--format", "coco", "--out", out.path])
    XCTAssertEqual(export.status, 0, export.stderr)
    let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
    let annotations = try XCTUnwrap(document["annotations"] as? [[String: Any]])
    XCTAssertEqual(annotations.count, masks)
    let categories = try XCTUnwrap(document["categories"] as? [[String: Any]])
    XCTAssertEqual(categories.map { $0["name"] as? String }, ["object"])
    let rows = try DatabaseQueue(path: database.path).read {
      try Row.fetchAll($0, sql: "SELECT * FROM results ORDER BY image_id, prompt_index, mask_index")
    }
    for (a, row) in zip(annotations, rows) {
      XCTAssertEqual(a["point_coords"] as? [[Double]], [[row["point_x"], row["point_y"]]])
      XCTAssertEqual(a["crop_box"] as? [Int], [row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]])
      XCTAssertNil(row["category"] as String?)
    }
    // PNG and polygons exports take them too.
    let png = try runSambatch([
      "export", job.path, "--format", "png", "--out", dir.appendingPathComponent("png").path,
    ])
    XCTAssertEqual(png.status, 0, png.stderr)
    let csv = try String(contentsOf: dir.appendingPathComponent("png/masks.csv"), encoding: .utf8)
    XCTAssertEqual(csv.split(separator: "\n").count, masks + 1)
    let polygons = try runSambatch([
      "export", job.path, "--format", "coco", "--polygons", "--out",
      dir.appendingPathComponent("p.json").path,
    ])
    XCTAssertEqual(polygons.status, 0, polygons.stderr)
    let yolo = try runSambatch([
      "export", job.path, "--format", "yolo", "--out", dir.appendingPathComponent("yolo").path,
    ])
    XCTAssertEqual(yolo.status, 0, yolo.stderr)
    XCTAssertTrue(yolo.stdout.contains("Wrote \(count) images and "), yolo.stdout)
    XCTAssertFalse(yolo.stdout.contains(" 0 polygons"), yolo.stdout)
    let overlay = try runSambatch([
      "export", job.path, "--format", "overlay", "--out", dir.appendingPathComponent("overlay").path,
    ])
    XCTAssertEqual(overlay.status, 0, overlay.stderr)
    XCTAssertTrue(overlay.stdout.contains("Wrote \(count) overlay images"), overlay.stdout)
  }

  /// The stored masks of a job with the fixture checkpoint are those `predict --everything`
  /// prints for the image (the parity fixture's thresholds, low enough that random weights keep
  /// masks); thresholds nothing passes leave the image done with zero masks.
  func testRealModelStoresWhatPredictEverythingPrints() throws {
    let model = Fixtures.url("reference/mobile_sam_random.pt").path
    let (dir, job) = try makeJob(
      count: 1,
      everything:
        "{points_per_side: 8, points_per_batch: 10, pred_iou_thresh: 0, stability_score_thresh: 0.21,"
        + " box_nms_thresh: 1.0}", model: model)
    let image = dir.appendingPathComponent("images/set0/img0.png").path
    let run = try runSambatch(["run", job.path])
    XCTAssertEqual(run.status, 0, run.stderr)
    let predict = try runSambatch([
      "predict", "--everything", "--model", model, "--image", image, "--points-per-side", "8",
      "--points-per-batch", "10", "--pred-iou-thresh", "0", "--stability-score-thresh", "0.21",
      "--box-nms-thresh", "1.0",
    ])
    XCTAssertEqual(predict.status, 0, predict.stderr)
    let printed = try XCTUnwrap(
      try JSONSerialization.jsonObject(with: Data(predict.stdout.utf8)) as? [String: Any])
    let expected = try XCTUnwrap(printed["masks"] as? [[String: Any]])
    XCTAssertEqual(expected.count, 24, "the parity fixture's case keeps 24 masks")
    let rows = try DatabaseQueue(path: dir.appendingPathComponent("results.db").path).read {
      try Row.fetchAll($0, sql: "SELECT * FROM results ORDER BY mask_index")
    }
    XCTAssertEqual(rows.count, expected.count)
    for (row, mask) in zip(rows, expected) {
      let rle = try XCTUnwrap(mask["rle"] as? [String: Any])
      XCTAssertEqual(row["rle"] as String, rle["counts"] as? String)
      XCTAssertEqual(row["area"] as Int, mask["area"] as? Int)
      // Exact as Float: the same Float in both, stored as a Double and printed to 16 digits.
      XCTAssertEqual(Float(row["score"] as Double), (mask["predicted_iou"] as? Double).map(Float.init))
      XCTAssertEqual(
        (row["stability_score"] as Double?).map(Float.init),
        (mask["stability_score"] as? Double).map(Float.init))
      XCTAssertEqual([row["point_x"], row["point_y"]], (mask["point_coords"] as? [[Double]])?.first)
      XCTAssertEqual(
        [row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]], mask["crop_box"] as? [Int])
      XCTAssertNil(row["category"] as String?)
    }

    // Nothing passes (no predicted IoU above 1 with these weights: `predict --everything` with the
    // same flags prints no mask), with crop layers and small-region removal, where the reference
    // crashes on an empty list: the image is done with zero masks.
    let (emptyDir, emptyJob) = try makeJob(
      count: 1,
      everything: "{points_per_side: 2, pred_iou_thresh: 1, stability_score_thresh: 1, crop_n_layers: 1,"
        + " min_mask_region_area: 10}", model: model)
    let empty = try runSambatch(["run", emptyJob.path])
    XCTAssertEqual(empty.status, 0, empty.stderr)
    XCTAssertTrue(empty.stdout.contains("Job: 1 done, 0 failed, 0 pending"), empty.stdout)
    let database = emptyDir.appendingPathComponent("results.db")
    XCTAssertEqual(try query(database, "SELECT COUNT(*) FROM masks") as Int?, 0)
    XCTAssertEqual(try query(database, "SELECT status FROM images") as String?, "done")
  }
}
