import Foundation
import GRDB
import TestSupport
import XCTest

final class ExportCLITests: XCTestCase {
  /// The example job (COCO + JSON Lines manifests) run with the fake segmenter into a temporary
  /// database.
  func runExample() throws -> (job: String, database: URL) {
    let job = Fixtures.repository.appendingPathComponent("Jobs/example.yaml").path
    let database = try temporaryDirectory().appendingPathComponent("example.db")
    let result = try runSambatch(
      ["run", job, "--database", database.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    return (job, database)
  }

  func testCOCOExportRoundTrips() throws {
    let (job, database) = try runExample()
    let out = try temporaryDirectory().appendingPathComponent("export.json")
    let result = try runSambatch([
      "export", job, "--database", database.path, "--format", "coco", "--out", out.path,
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
    let images = try XCTUnwrap(document["images"] as? [[String: Any]])
    let annotations = try XCTUnwrap(document["annotations"] as? [[String: Any]])
    let categories = try XCTUnwrap(document["categories"] as? [[String: Any]])
    let stored = try DatabaseQueue(path: database.path).read {
      try Row.fetchAll($0, sql: "SELECT * FROM results ORDER BY image_id, prompt_index, mask_index")
    }
    XCTAssertEqual(annotations.count, stored.count)
    XCTAssertEqual(
      Set(annotations.map { $0["id"] as! Int }).count, annotations.count, "annotation ids are unique")
    let imageById = Dictionary(uniqueKeysWithValues: images.map { ($0["id"] as! Int, $0) })
    let categoryIds = Set(categories.map { $0["id"] as! Int })
    for (a, row) in zip(annotations, stored) {
      let image = try XCTUnwrap(imageById[a["image_id"] as! Int])
      XCTAssertEqual(image["file_name"] as? String, row["image"] as String)
      let segmentation = try XCTUnwrap(a["segmentation"] as? [String: Any])
      XCTAssertEqual(segmentation["size"] as? [Int], [row["height"] as Int, row["width"] as Int])
      XCTAssertEqual(segmentation["counts"] as? String, row["rle"] as String)
      let mask = try decodeRLE(segmentation["counts"] as! String, height: row["height"], width: row["width"])
      XCTAssertEqual(mask.area, a["area"] as? Int)
      XCTAssertEqual(mask.bbox, a["bbox"] as? [Double])
      // 1e-12: the file holds the exact shortest form (pycocotools reads it back exactly, see
      // Scripts/check_coco_export.py), but Foundation's JSON reader on Linux rounds the last digits.
      XCTAssertEqual(a["score"] as! Double, row["score"] as Double, accuracy: 1e-12)
      XCTAssertTrue(categoryIds.contains(a["category_id"] as! Int))
    }
    // COCO annotations keep their ids as source_id; a JSON Lines label naming a COCO category
    // shares its id; the COCO images keep their source ids (1, 3, 5) although a JSON Lines
    // manifest is in the job, and its image is numbered after the largest.
    let car = try XCTUnwrap(annotations.first { $0["source_id"] as? Int == 103 })
    XCTAssertEqual(car["category_id"] as? Int, 1)
    XCTAssertEqual(annotations.first { $0["source_id"] as? String == "car" }?["category_id"] as? Int, 1)
    XCTAssertEqual(categories.first { $0["id"] as? Int == 1 }?["name"] as? String, "car")
    XCTAssertEqual(images.map { $0["id"] as! Int }, [1, 3, 5, 6])
  }

  func testCOCOExportKeepsSourceImageIdsWhenAllImagesHaveOne() throws {
    let job = Fixtures.repository.appendingPathComponent("Jobs/example-detections.yaml").path
    let dir = try temporaryDirectory()
    let run = try runSambatch(
      ["run", job, "--database", dir.appendingPathComponent("d.db").path],
      environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(run.status, 0, run.stderr)
    let out = dir.appendingPathComponent("d.json")
    let result = try runSambatch(
      [
        "export", job, "--database", dir.appendingPathComponent("d.db").path, "--format", "coco", "--out",
        out.path,
      ])
    XCTAssertEqual(result.status, 0, result.stderr)
    let document = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
    let images = try XCTUnwrap(document["images"] as? [[String: Any]])
    XCTAssertEqual(images.map { $0["id"] as! Int }, [1, 3, 5])
    let annotations = try XCTUnwrap(document["annotations"] as? [[String: Any]])
    // min_score 0.3 leaves out the detections scored below it; multimask + keep all: 3 masks each.
    XCTAssertEqual(annotations.count % 3, 0)
    XCTAssertTrue(annotations.allSatisfy { ($0["detector_score"] as! Double) >= 0.3 })
  }

  func testPNGExportWritesOneFilePerStoredMask() throws {
    let (job, database) = try runExample()
    let out = try temporaryDirectory().appendingPathComponent("masks")
    let result = try runSambatch([
      "export", job, "--database", database.path, "--format", "png", "--out", out.path,
    ])
    XCTAssertEqual(result.status, 0, result.stderr)
    let count = try DatabaseQueue(path: database.path).read {
      try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM results")
    }
    let csv = try String(contentsOf: out.appendingPathComponent("masks.csv"), encoding: .utf8)
    let files = csv.split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
    XCTAssertEqual(files.count, count)
    for file in files {
      let data = try Data(contentsOf: out.appendingPathComponent(file))
      XCTAssertEqual(Array(data.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], file)
    }
  }

  func testExportOfAJobNeverRunIsAClearError() throws {
    let job = Fixtures.repository.appendingPathComponent("Jobs/example.yaml").path
    let missing = try temporaryDirectory().appendingPathComponent("none.db")
    let result = try runSambatch([
      "export", job, "--database", missing.path, "--format", "coco", "--out", "/tmp/x.json",
    ])
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stderr.contains("none.db"), result.stderr)
  }
}

/// An independent COCO RLE decoder (area and toBbox), so that the export is not only checked with
/// the code that wrote it. pycocotools checks it too: Scripts/check_coco_export.py.
func decodeRLE(_ counts: String, height: Int, width: Int) throws -> (area: Int, bbox: [Double]) {
  var runs: [Int] = []
  var p = counts.utf8.makeIterator()
  while let first = p.next() {
    var x = 0
    var k = 0
    var c = Int(first) - 48
    while true {
      x |= (c & 0x1f) << (5 * k)
      k += 1
      if c & 0x20 == 0 {
        if c & 0x10 != 0 { x |= -1 << (5 * k) }
        break
      }
      guard let next = p.next() else { throw CocoaError(.coderReadCorrupt) }
      c = Int(next) - 48
    }
    if runs.count > 2 { x += runs[runs.count - 2] }
    runs.append(x)
  }
  var area = 0
  var (x0, y0, x1, y1) = (Int.max, Int.max, -1, -1)
  var index = 0
  for (i, run) in runs.enumerated() {
    if i % 2 == 1 && run > 0 {
      area += run
      for j in [index, index + run - 1] {
        x0 = min(x0, j / height)
        x1 = max(x1, j / height)
      }
      // A run crossing a column covers every row.
      if index / height != (index + run - 1) / height {
        y0 = 0
        y1 = height - 1
      } else {
        y0 = min(y0, index % height)
        y1 = max(y1, (index + run - 1) % height)
      }
    }
    index += run
  }
  XCTAssertEqual(index, width * height)
  return area == 0
    ? (0, [0, 0, 0, 0]) : (area, [Double(x0), Double(y0), Double(x1 - x0 + 1), Double(y1 - y0 + 1)])
}
