import Foundation
import GRDB
import TestSupport
import XCTest

/// `sambatch run` and `status` as a user calls them, on the sample photos.
final class RunCLITests: XCTestCase {
  let fake = ["SAMBATCH_FAKE_SEGMENTER": "1"]

  func writeJob(_ dir: URL, manifest: String, format: String, multimask: Bool = false, extra: String = "")
    throws
    -> URL
  {
    let name = format == "jsonl" ? "m.jsonl" : "m.json"
    try manifest.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    database: out/results.db
    images: \(Fixtures.url("images").path)
    manifests:
      - path: \(name)
        format: \(format)
    prompts:
      multimask: \(multimask)
      keep: \(multimask ? "all" : "best")
    workers: 2
    \(extra)
    """.write(to: job, atomically: true, encoding: .utf8)
    return job
  }

  func testCOCOJobEndToEnd() throws {
    let dir = try temporaryDirectory()
    let coco = """
      {"images": [{"id": 3, "file_name": "picture3.jpg"}, {"id": 5, "file_name": "picture5.jpg"}],
       "annotations": [{"id": 1, "image_id": 3, "bbox": [265, 710, 1235, 490], "category_id": 1},
                       {"id": 2, "image_id": 3, "bbox": [1920, 790, 260, 410], "category_id": 2},
                       {"id": 3, "image_id": 5, "bbox": [1126, 448, 540, 747], "category_id": 4}],
       "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bicycle"}, {"id": 4, "name": "bear"}]}
      """
    let job = try writeJob(dir, manifest: coco, format: "coco")
    let result = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertTrue(result.stdout.contains("Processed 2 images"), result.stdout)
    XCTAssertTrue(result.stdout.contains("sqlite3"), "the summary ends with a query to try")
    XCTAssertTrue(result.stderr.contains("fake segmenter"), "the run says it is not using a model")
    let db = dir.appendingPathComponent("out/results.db")
    let rows = try DatabaseQueue(path: db.path).read {
      try Row.fetchAll(
        $0,
        sql: "SELECT image, source_id, category, width, height, area, bbox_w FROM results ORDER BY source_id")
    }
    XCTAssertEqual(rows.map { $0["image"] as String }, ["picture3.jpg", "picture3.jpg", "picture5.jpg"])
    XCTAssertEqual(rows.map { $0["category"] as String }, ["car", "bicycle", "bear"])
    XCTAssertEqual(rows.map { $0["width"] as Int }, [2241, 2241, 2068])
    XCTAssertEqual(rows.map { $0["bbox_w"] as Double }, [1235, 260, 540], "the fake masks fill the boxes")

    let status = try runSambatch(["status", job.path])
    XCTAssertEqual(status.status, 0)
    XCTAssertTrue(status.stdout.contains("2 done, 0 failed, 0 left"), status.stdout)
    XCTAssertTrue(status.stdout.contains("mean per image: read"), status.stdout)
    XCTAssertTrue(status.stdout.contains("complete"), status.stdout)
    let again = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(again.status, 0)
    XCTAssertTrue(again.stdout.contains("Nothing to do"), again.stdout)
  }

  func testJSONLinesJobWithFailuresExitsWithTwoAndStatusListsThem() throws {
    let dir = try temporaryDirectory()
    let lines = """
      {"image": "picture1.jpg", "objects": [{"id": "s", "label": "sign", "box": [120, 265, 637, 513]}, {"id": "p", "points": [[400, 400, 1], [50, 50, 0]]}, {"id": "n", "box": [NaN, 0, 10, 10]}]}
      {"image": "nope.jpg", "objects": [{"box": [0, 0, 5, 5]}]}
      {"image": 
      """
    let job = try writeJob(dir, manifest: lines, format: "jsonl")
    let result = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
    XCTAssertTrue(result.stdout.contains("1 done, 1 failed"), result.stdout)
    XCTAssertTrue(result.stdout.contains("1 rejected"), result.stdout)
    let status = try runSambatch(["status", job.path])
    XCTAssertTrue(status.stdout.contains("failed: nope.jpg"), status.stdout)
    XCTAssertTrue(status.stdout.contains("rejected: picture1.jpg prompt 2"), status.stdout)
    XCTAssertTrue(status.stdout.contains("unreadable manifest entries: 1"), status.stdout)
    let db = dir.appendingPathComponent("out/results.db")
    let count = try DatabaseQueue(path: db.path).read {
      try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM results")
    }
    XCTAssertEqual(count, 2)
  }

  /// ArgumentParser's own errors (a missing argument, a bad value, an unknown command) read as
  /// every other error: `sambatch <command>: error:` first, its usage after, exit status 64.
  func testArgumentErrorsStartWithTheCommandName() throws {
    let cases: [([String], String)] = [
      (["run"], "sambatch run: error: Missing expected argument '<job>'"),
      (["export", "job.yaml", "--format", "tiff", "--out", "x"], "sambatch export: error: The value 'tiff'"),
      (["status", "job.yaml", "--failures", "many"], "sambatch status: error: The value 'many'"),
      (["segment"], "sambatch: error: Unexpected argument 'segment'"),
    ]
    for (arguments, start) in cases {
      let result = try runSambatch(arguments)
      XCTAssertEqual(result.status, 64, "\(arguments): \(result.stderr)")
      XCTAssertTrue(result.stderr.hasPrefix(start), "\(arguments): \(result.stderr)")
      XCTAssertTrue(result.stderr.contains("Usage: sambatch"), "\(arguments): \(result.stderr)")
    }
    let help = try runSambatch(["merge", "--help"])
    XCTAssertEqual(help.status, 0)
    XCTAssertTrue(help.stdout.hasPrefix("OVERVIEW: "), help.stdout)
  }

  func testJobErrorsNameKeyAndLineAndExitOne() throws {
    let dir = try temporaryDirectory()
    let job = try writeJob(dir, manifest: "", format: "jsonl", extra: "prompts2: {}\n")
    let result = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stderr.contains("job.yaml:11: 'prompts2': unknown key"), result.stderr)
  }

  func testUnreadableJobAndManifestFilesAreNamedWithThePlainCause() throws {
    let dir = try temporaryDirectory()
    let missing = dir.appendingPathComponent("nope.yaml")
    let result = try runSambatch(["run", missing.path], environment: fake)
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stderr.contains("\(missing.path): cannot read the job file ("), result.stderr)
    XCTAssertTrue(result.stderr.lowercased().contains("no such file"), result.stderr)
    XCTAssertFalse(result.stderr.contains("Domain"), result.stderr)

    let folder = dir.appendingPathComponent("detections.jsonl")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    images: \(Fixtures.url("images").path)
    manifests:
      - {path: detections.jsonl, format: jsonl}
    """.write(to: job, atomically: true, encoding: .utf8)
    let run = try runSambatch(["run", job.path], environment: fake)
    XCTAssertEqual(run.status, 1)
    XCTAssertTrue(
      run.stderr.contains("\(folder.path): cannot read the manifest (it is a folder, not a file)"), run.stderr
    )
    XCTAssertFalse(run.stderr.contains("Domain"), run.stderr)
  }

  func testStatusOfAJobNeverRunSaysSo() throws {
    let dir = try temporaryDirectory()
    let job = try writeJob(dir, manifest: #"{"image": "picture1.jpg", "objects": []}"#, format: "jsonl")
    let status = try runSambatch(["status", job.path])
    XCTAssertEqual(status.status, 1)
    XCTAssertTrue(status.stderr.contains("has the job been run?"), status.stderr)
  }

  func testMissingModelIsAClearError() throws {
    let dir = try temporaryDirectory()
    let job = try writeJob(dir, manifest: #"{"image": "picture1.jpg", "objects": []}"#, format: "jsonl")
    let result = try runSambatch(["run", job.path])
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(
      result.stderr.contains("no 'model:' in the job and SAMBATCH_MODEL is not set"), result.stderr)
    let overridden = try runSambatch(
      ["run", job.path], environment: ["SAMBATCH_MODEL": dir.appendingPathComponent("x.pt").path])
    XCTAssertEqual(overridden.status, 1)
    XCTAssertTrue(overridden.stderr.contains("SAMBATCH_MODEL is set"), overridden.stderr)
    XCTAssertTrue(overridden.stderr.contains("x.pt"), overridden.stderr)
  }

  /// The real model and the fixture checkpoint against the reference's outputs for the same
  /// prompts (Tests/Fixtures/reference/cases.json, from SamPredictor): every case without a mask
  /// input becomes one object of a JSON Lines manifest, single-mask cases in one job and
  /// multimask cases (keep: all) in another.
  func testRealModelMatchesTheReferenceCases() throws {
    let checkpoint = Fixtures.url("reference/mobile_sam_random.pt")
    guard FileManager.default.fileExists(atPath: checkpoint.path) else {
      throw MissingFixture(path: checkpoint.path)
    }
    let document = try XCTUnwrap(
      JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("reference/cases.json")))
        as? [String: Any])
    let cases = try XCTUnwrap(document["cases"] as? [[String: Any]]).filter { $0["mask_input"] is NSNull }
    for multimask in [false, true] {
      let selected = cases.filter { ($0["multimask"] as? Bool) == multimask }
      XCTAssertFalse(selected.isEmpty)
      var lines: [String] = []
      for c in selected {
        let image = (c["image"] as! String).replacingOccurrences(of: "images/", with: "")
        var object: [String: Any] = ["id": c["name"] as! String]
        if let box = c["box"] as? [Double] { object["box"] = box }
        if let points = c["points"] as? [[Double]], !points.isEmpty { object["points"] = points }
        let line: [String: Any] = ["image": image, "objects": [object]]
        lines.append(String(decoding: try JSONSerialization.data(withJSONObject: line), as: UTF8.self))
      }
      let dir = try temporaryDirectory()
      let job = try writeJob(
        dir, manifest: lines.joined(separator: "\n"), format: "jsonl", multimask: multimask,
        extra: "model: \(checkpoint.path)\n")
      let result = try runSambatch(["run", job.path])
      XCTAssertEqual(result.status, 0, result.stderr)
      let rows = try DatabaseQueue(path: dir.appendingPathComponent("out/results.db").path).read {
        try Row.fetchAll($0, sql: "SELECT source_id, mask_index, score, area, width, height FROM results")
      }
      // The default plan (workers side by side, their loops inline) and the model's calls taking
      // turns on both threads split every loop the same way: the same bits, mask for mask.
      let turns = dir.appendingPathComponent("out/turns.db").path
      let again = try runSambatch(["run", job.path, "--thread-plan", "turns", "--database", turns])
      XCTAssertEqual(again.status, 0, again.stderr)
      let everyColumn =
        "SELECT image_id, prompt_index, mask_index, score, area, bbox_x, bbox_y, bbox_w, bbox_h, rle "
        + "FROM results ORDER BY 1, 2, 3"
      let sideBySideRows = try DatabaseQueue(path: dir.appendingPathComponent("out/results.db").path).read {
        try Row.fetchAll($0, sql: everyColumn)
      }
      XCTAssertEqual(sideBySideRows.count, rows.count)
      XCTAssertEqual(
        try DatabaseQueue(path: turns).read { try Row.fetchAll($0, sql: everyColumn) }, sideBySideRows)
      for c in selected {
        let name = c["name"] as! String
        let mine = rows.filter { $0["source_id"] as String == name }.sorted {
          ($0["mask_index"] as Int) < $1["mask_index"]
        }
        let scores = c["scores"] as! [Double]
        let areas = c["areas"] as! [Int]
        XCTAssertEqual(mine.map { $0["mask_index"] as Int }, Array(0..<scores.count), name)
        for (row, (score, area)) in zip(mine, zip(scores, areas)) {
          // End to end, not a parity test (the model's own tests are tighter): 1e-2 on the IoU
          // prediction and 2% of the area allow float32 reordering and boundary pixels, and still
          // catch a prompt fed wrongly (wrong box convention, swapped axes, lost points).
          XCTAssertEqual(row["score"] as Double, score, accuracy: 1e-2, name)
          XCTAssertEqual(Double(row["area"] as Int), Double(area), accuracy: 0.02 * Double(area) + 1, name)
          XCTAssertEqual(row["width"] as Int, c["width"] as? Int, name)
          XCTAssertEqual(row["height"] as Int, c["height"] as? Int, name)
        }
      }
    }
  }
}
