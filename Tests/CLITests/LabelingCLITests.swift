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
    XCTAssertEqual(bad.status, 1)
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
