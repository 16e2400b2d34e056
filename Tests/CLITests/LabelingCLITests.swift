import Foundation
import GRDB
import TestSupport
import XCTest

/// `export --format yolo | coco --polygons | overlay` and `review`, on jobs run with the fake
/// segmenter (each mask fills its prompt's box).
final class LabelingCLITests: XCTestCase {
  func runSample() throws -> (job: URL, dir: URL) {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 3)
    let run = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(run.status, 2, "a missing image and a bad prompt: " + run.stderr)
    return (job, dir)
  }

  func testYOLOSegExport() throws {
    let (job, dir) = try runSample()
    let out = dir.appendingPathComponent("yolo")
    let result = try runSambatch(["export", job.path, "--format", "yolo", "--out", out.path])
    XCTAssertEqual(result.status, 0, result.stderr)
    XCTAssertTrue(result.stdout.contains("data.yaml"), result.stdout)
    let yaml = try String(contentsOf: out.appendingPathComponent("data.yaml"), encoding: .utf8)
    XCTAssertTrue(yaml.contains("names:\n  0: \"obj0\"\n  1: \"obj1\"\n"), yaml)
    let database = dir.appendingPathComponent("results.db")
    for i in 0..<3 {
      let name = "img\(i)-picture\([1, 2, 3][i]).jpg"
      let image = out.appendingPathComponent("images/\(name)")
      XCTAssertTrue(FileManager.default.fileExists(atPath: image.path), "\(name) reachable through its link")
      let label = try String(
        contentsOf: out.appendingPathComponent("labels/\((name as NSString).deletingPathExtension).txt"),
        encoding: .utf8)
      let lines = label.split(separator: "\n")
      let masks: Int? = try query(
        database, "SELECT COUNT(*) FROM results WHERE image = '\(name)'")
      XCTAssertEqual(lines.count, masks, name)
      for line in lines {
        let fields = line.split(separator: " ")
        XCTAssertGreaterThanOrEqual(fields.count, 7)
        XCTAssertEqual(fields.count % 2, 1)
        XCTAssertTrue(fields.dropFirst().allSatisfy { (0...1).contains(Double($0) ?? -1) }, String(line))
      }
    }
    // The fake masks are boxes: each polygon is the box's four corner pixels (centres).
    let width: Int = try XCTUnwrap(
      query(database, "SELECT width FROM images WHERE path = 'img1-picture2.jpg'"))
    let first = try String(
      contentsOf: out.appendingPathComponent("labels/img1-picture2.txt"), encoding: .utf8
    )
    .split(separator: "\n")[0].split(separator: " ").dropFirst().map { Double($0)! }
    XCTAssertEqual(first.count, 8)
    let bboxX: Double = try XCTUnwrap(
      query(
        database,
        "SELECT bbox_x FROM results WHERE image = 'img1-picture2.jpg' ORDER BY prompt_index, mask_index"))
    XCTAssertEqual(
      first.enumerated().filter { $0.offset % 2 == 0 }.map(\.element).min()!, (bboxX + 0.5) / Double(width),
      accuracy: 1e-6)

    let again = try runSambatch(["export", job.path, "--format", "yolo", "--out", out.path])
    XCTAssertEqual(again.status, 1)
    XCTAssertTrue(again.stderr.contains("already holds a data.yaml"), again.stderr)
  }

  func testCOCOPolygonExport() throws {
    let (job, dir) = try runSample()
    let out = dir.appendingPathComponent("polygons.json")
    let result = try runSambatch(["export", job.path, "--format", "coco", "--polygons", "--out", out.path])
    XCTAssertEqual(result.status, 0, result.stderr)
    let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
    let annotations = try XCTUnwrap(document["annotations"] as? [[String: Any]])
    XCTAssertFalse(annotations.isEmpty)
    for a in annotations {
      let polygons = try XCTUnwrap(a["segmentation"] as? [[Double]], "box masks have no holes: polygons")
      XCTAssertEqual(polygons.count, 1)
      // A polygon along the pixel edges encloses exactly the mask's area.
      let p = polygons[0]
      var twice = 0.0
      for i in stride(from: 0, to: p.count, by: 2) {
        let j = (i + 2) % p.count
        twice += p[i] * p[j + 1] - p[j] * p[i + 1]
      }
      XCTAssertEqual(abs(twice) / 2, Double(a["area"] as! Int))
    }
  }

  func testOverlayExport() throws {
    let (job, dir) = try runSample()
    let out = dir.appendingPathComponent("overlays")
    let result = try runSambatch([
      "export", job.path, "--format", "overlay", "--out", out.path, "--max-side", "200",
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    let files = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
    XCTAssertEqual(files, ["0-img0-picture1.jpg", "1-img1-picture2.jpg", "2-img2-picture3.jpg"])
    let jpeg = try Data(contentsOf: out.appendingPathComponent(files[0]))
    XCTAssertEqual(Array(jpeg.prefix(3)), [0xFF, 0xD8, 0xFF])
    let png = try runSambatch(
      [
        "export", job.path, "--format", "overlay", "--out", out.path, "--image-format", "png", "--max-side",
        "100",
      ])
    XCTAssertEqual(png.status, 0, png.stderr)
    XCTAssertTrue(
      FileManager.default.fileExists(atPath: out.appendingPathComponent("0-img0-picture1.png").path))
    let bad = try runSambatch([
      "export", job.path, "--format", "overlay", "--out", out.path, "--max-side", "0",
    ])
    XCTAssertEqual(bad.status, 64, "a usage error")
    XCTAssertTrue(bad.stderr.contains("--max-side"), bad.stderr)
  }

  /// `sambatch review` opened in headless Chromium: it renders, runs its script without errors and
  /// shows every done image.
  func testReviewOpensInChromium() throws {
    let (job, dir) = try runSample()
    let out = dir.appendingPathComponent("review")
    let result = try runSambatch(["review", job.path, "--out", out.path, "--max-side", "300"])
    XCTAssertEqual(result.status, 0, result.stderr)
    let page = out.appendingPathComponent("index.html")
    let html = try String(contentsOf: page, encoding: .utf8)
    XCTAssertTrue(html.contains("missing.jpg"), "the failed image is listed with its reason")
    XCTAssertTrue(html.contains("prompt"), "the rejected prompt is listed")
    guard let chromium = Chromium.binary() else {
      print("LabelingCLITests.testReviewOpensInChromium: browser part skipped: \(Chromium.missingReason)")
      throw XCTSkip(Chromium.missingReason)
    }
    let dom = try Chromium.run(chromium, page: page, arguments: ["--dump-dom"], scratch: dir)
    XCTAssertEqual(Chromium.consoleErrors(dom.stderr), [])
    XCTAssertTrue(dom.stdout.contains("3 of 3 images shown"), String(dom.stdout.suffix(1500)))
    let shot = dir.appendingPathComponent("shot.png")
    let run = try Chromium.run(
      chromium, page: page, arguments: ["--screenshot=\(shot.path)", "--window-size=1200,1400"], scratch: dir)
    XCTAssertEqual(Chromium.consoleErrors(run.stderr), [])
    XCTAssertGreaterThan(try Data(contentsOf: shot).count, 20_000, "a blank 1200x1400 PNG is a few KB")
  }
}

/// `format: yolo` manifests: YOLO detection label folders as `yolo predict save_txt=True
/// save_conf=True` writes them.
final class YOLOManifestCLITests: XCTestCase {
  func makeYOLOJob(names: String = "names: [car, bear]\n") throws -> (job: URL, dir: URL) {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    let labels = dir.appendingPathComponent("labels")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(at: labels, withIntermediateDirectories: true)
    for (name, photo) in [
      ("a.jpg", "picture1.jpg"), ("b.jpg", "picture3.jpg"), ("c.jpg", "picture5.jpg"),
      ("d.jpg", "picture2.jpg"),
    ] {
      try FileManager.default.createSymbolicLink(
        at: images.appendingPathComponent(name), withDestinationURL: Fixtures.url("images/\(photo)"))
    }
    try "0 0.5 0.5 0.4 0.3 0.91\n1 0.25 0.25 0.2 0.2 0.40\n".write(
      to: labels.appendingPathComponent("a.txt"), atomically: true, encoding: .utf8)
    // b: a good line between bad ones (4 fields, class past the names, outside 0-1, NaN).
    try "0 0.5 0.5 0.2\n1 0.5 0.5 0.3 0.3\n7 0.5 0.5 0.2 0.2\n0 1.2 0.5 0.2 0.2\n0 nan 0.5 0.2 0.2\n".write(
      to: labels.appendingPathComponent("b.txt"), atomically: true, encoding: .utf8)
    try "".write(to: labels.appendingPathComponent("c.txt"), atomically: true, encoding: .utf8)
    // d.jpg has no label file; orphan.txt has no image.
    try "0 0.5 0.5 0.2 0.2\n".write(
      to: labels.appendingPathComponent("orphan.txt"), atomically: true, encoding: .utf8)
    try names.write(to: dir.appendingPathComponent("data.yaml"), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    database: results.db
    images: images
    manifests:
      - {path: labels/, format: yolo, names: data.yaml}
    """.write(to: job, atomically: true, encoding: .utf8)
    return (job, dir)
  }

  func testYOLOLabelsRunWithProblemsRecordedAndEmptyImagesDone() throws {
    let (job, dir) = try makeYOLOJob()
    let run = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(run.status, 2, "manifest problems: " + run.stderr)
    let db = dir.appendingPathComponent("results.db")
    XCTAssertEqual(try query(db, "SELECT COUNT(*) FROM images WHERE status = 'done'") as Int?, 4)
    XCTAssertEqual(try query(db, "SELECT prompt_count FROM images WHERE path = 'a.jpg'") as Int?, 2)
    XCTAssertEqual(try query(db, "SELECT prompt_count FROM images WHERE path = 'b.jpg'") as Int?, 1)
    XCTAssertEqual(
      try query(db, "SELECT prompt_count FROM images WHERE path = 'c.jpg'") as Int?, 0, "empty label file")
    XCTAssertEqual(
      try query(db, "SELECT prompt_count FROM images WHERE path = 'd.jpg'") as Int?, 0, "no label file")
    XCTAssertEqual(
      try query(db, "SELECT category FROM prompts WHERE source_id = 'a.txt:2'") as String?, "bear")
    XCTAssertEqual(try query(db, "SELECT category_id FROM prompts WHERE source_id = 'a.txt:2'") as Int?, 1)
    XCTAssertEqual(
      try query(db, "SELECT detector_score FROM prompts WHERE source_id = 'a.txt:1'") as Double?, 0.91)
    // The box: centre (0.5, 0.5), size (0.4, 0.3) of the decoded image.
    let width: Int = try XCTUnwrap(query(db, "SELECT width FROM images WHERE path = 'a.jpg'"))
    let x0: Double = try XCTUnwrap(query(db, "SELECT box_x0 FROM prompts WHERE source_id = 'a.txt:1'"))
    XCTAssertEqual(x0, 0.3 * Double(width), accuracy: 1e-9)
    let problems = try DatabaseQueue(path: db.path).read {
      try Row.fetchAll($0, sql: "SELECT file, line, message FROM manifest_problems ORDER BY file, line")
    }
    XCTAssertEqual(
      problems.map { ($0["file"] as String).split(separator: "/").last.map(String.init) ?? "" },
      ["b.txt", "b.txt", "b.txt", "b.txt", "orphan.txt"])
    XCTAssertEqual(problems.map { $0["line"] as Int? }, [1, 3, 4, 5, nil])
    let status = try runSambatch(["status", job.path])
    XCTAssertTrue(status.stdout.contains("images with no detections (done, no prompts): 2"), status.stdout)
  }

  func testBadDatasetYAMLStopsBeforeAnyWork() throws {
    let (job, dir) = try makeYOLOJob(names: "nc: 2\n")
    let run = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(run.status, 1)
    XCTAssertTrue(run.stderr.contains("data.yaml") && run.stderr.contains("'names'"), run.stderr)
    XCTAssertFalse(
      FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.db").path),
      "no database is created for a job that cannot start")
  }
}

/// `sambatch eval`: IoU with COCO ground-truth segmentations, stored in masks.gt_iou.
final class EvalCLITests: XCTestCase {
  func testEvalStoresIoUAndPrintsMeans() throws {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      at: images.appendingPathComponent("p2.jpg"), withDestinationURL: Fixtures.url("images/picture2.jpg"))
    let size: (w: Int, h: Int) = (769, 770)
    // The fake segmenter fills each box: a box-shaped ground truth gives IoU 1, its left half 0.5
    // (a small object), a crowd region covering the whole box intersection over the mask: 1.
    let runs = [100 * size.h, 20 * size.h, (size.w - 120) * size.h]  // columns 100-119, all rows
    let coco = """
      {"images": [{"id": 7, "file_name": "p2.jpg", "width": \(size.w), "height": \(size.h)}],
       "categories": [{"id": 1, "name": "bus"}, {"id": 2, "name": "person"}],
       "annotations": [
        {"id": 1, "image_id": 7, "category_id": 1, "bbox": [200, 300, 400, 200], "area": 80000,
         "segmentation": [[200, 300, 600, 300, 600, 500, 200, 500]], "iscrowd": 0},
        {"id": 2, "image_id": 7, "category_id": 2, "bbox": [700, 300, 20, 40], "area": 400,
         "segmentation": [[700, 300, 710, 300, 710, 340, 700, 340]], "iscrowd": 0},
        {"id": 3, "image_id": 7, "category_id": 2, "bbox": [100, 100, 20, 100], "area": 15400,
         "segmentation": {"size": [\(size.h), \(size.w)], "counts": \(runs)}, "iscrowd": 1},
        {"id": 4, "image_id": 7, "category_id": 2, "bbox": [300, 600, 40, 40], "area": 1600}
       ]}
      """
    try coco.write(to: dir.appendingPathComponent("gt.json"), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    database: results.db
    images: images
    manifests:
      - {path: gt.json, format: coco}
    """.write(to: job, atomically: true, encoding: .utf8)
    let run = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(run.status, 0, run.stderr)
    let width: Int? = try query(dir.appendingPathComponent("results.db"), "SELECT width FROM images")
    XCTAssertEqual(width, size.w, "the fixture's size must be the photo's")

    let result = try runSambatch(["eval", job.path])
    XCTAssertEqual(result.status, 0, result.stderr)
    let db = dir.appendingPathComponent("results.db")
    func gtIoU(_ source: String) throws -> Double? {
      try query(db, "SELECT gt_iou FROM results WHERE source_id = '\(source)'")
    }
    XCTAssertEqual(try gtIoU("1"), 1)
    XCTAssertEqual(try gtIoU("2"), 0.5)
    XCTAssertEqual(try gtIoU("3"), 1, "crowd: intersection over the mask's area")
    XCTAssertNil(try gtIoU("4"), "no segmentation, no gt_iou")
    XCTAssertTrue(result.stdout.contains("mIoU 0.7500 over 2 prompts"), result.stdout)
    XCTAssertTrue(result.stdout.contains("(1 crowd annotations left out of the means)"), result.stdout)
    XCTAssertTrue(
      result.stdout.range(of: #"small\s+0\.5000  \(1\)"#, options: .regularExpression) != nil, result.stdout)
    XCTAssertTrue(
      result.stdout.range(of: #"large\s+1\.0000  \(1\)"#, options: .regularExpression) != nil, result.stdout)
    XCTAssertTrue(
      result.stdout.range(of: #"bus\s+1\.0000  \(1\)"#, options: .regularExpression) != nil, result.stdout)
  }
}

/// `sambatch validate`: the run's checks before the model loads, writing nothing.
final class ValidateCLITests: XCTestCase {
  func testValidateReportsEveryProblemAndWritesNothing() throws {
    let dir = try temporaryDirectory()
    // The sample job has a missing image and a zero-area box; add a box partly outside.
    let job = try makeSampleJob(in: dir, count: 2)
    let manifest = dir.appendingPathComponent("m.jsonl")
    var text = try String(contentsOf: manifest, encoding: .utf8)
    text +=
      "\n" + #"{"image": "img1-picture2.jpg", "objects": [{"id": "wide", "box": [700, 10, 900, 50]}]}"# + "\n"
    text += "{not json\n"
    try text.write(to: manifest, atomically: true, encoding: .utf8)
    try Data("not an image".utf8).write(to: dir.appendingPathComponent("images/broken.jpg"))
    text += #"{"image": "broken.jpg", "objects": [{"box": [1, 1, 5, 5]}]}"# + "\n"
    try text.write(to: manifest, atomically: true, encoding: .utf8)

    let result = try runSambatch(["validate", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
    let out = result.stdout
    XCTAssertTrue(
      out.contains("problem: missing.jpg: ") && out.contains("missing.jpg: no such image file"), out)
    XCTAssertTrue(out.contains("problem: broken.jpg: ") && out.contains("unsupported image format"), out)
    XCTAssertTrue(out.contains("problem: img0-picture1.jpg prompt 2 (bad): the box"), out)
    XCTAssertTrue(out.contains("zero or negative area"), out)
    XCTAssertTrue(out.contains("warning: img1-picture2.jpg prompt 1 (wide): the box"), out)
    XCTAssertTrue(
      out.range(of: #"m\.jsonl:\d+: "#, options: .regularExpression) != nil, "the bad line: " + out)
    XCTAssertTrue(
      out.contains("4 images (2 unreadable), 5 prompts (1 rejected, 1 clipped), 1 manifest problems"), out)
    XCTAssertFalse(
      FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.db").path),
      "validate creates no database")

    // Without the fake segmenter and with no model anywhere, that is a problem too.
    let noModel = try runSambatch(
      ["validate", job.path], environment: ["SAMBATCH_MODEL": dir.appendingPathComponent("none.pt").path])
    XCTAssertTrue(
      noModel.stdout.contains("problem: model: \(dir.appendingPathComponent("none.pt").path) does not exist"),
      noModel.stdout)
  }

  func testValidateOfACleanJobSaysOK() throws {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    try FileManager.default.createSymbolicLink(
      at: images.appendingPathComponent("a.jpg"), withDestinationURL: Fixtures.url("images/picture1.jpg"))
    try #"{"image": "a.jpg", "objects": [{"box": [10, 10, 100, 100]}]}"#.write(
      to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    try "version: 1\ndatabase: r.db\nimages: images\nmanifests:\n  - {path: m.jsonl, format: jsonl}\n".write(
      to: job, atomically: true, encoding: .utf8)
    let result = try runSambatch(["validate", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    XCTAssertTrue(
      result.stdout.contains("1 images (0 unreadable), 1 prompts (0 rejected, 0 clipped)"), result.stdout)
    XCTAssertTrue(result.stdout.contains("OK: the job can run."), result.stdout)
    let bad = try runSambatch(["validate", dir.appendingPathComponent("none.yaml").path])
    XCTAssertEqual(bad.status, 1)
  }
}
