import Foundation
import SAMBatch
import TestSupport
import XCTest

final class JobFileTests: XCTestCase {
  let jobURL = URL(fileURLWithPath: "/data/jobs/job.yaml")

  func testMinimalFormFromTheIssueParsesAsWritten() throws {
    let yaml = """
      version: 1
      model: /path/to/mobile_sam.pt
      database: results.db
      images: images/
      manifests:
        - path: instances.json
          format: coco
      prompts:
        multimask: false
        keep: best
      workers: 2
      """
    let job = try JobFile.parse(yaml: yaml, jobURL: jobURL)
    XCTAssertEqual(job.version, 1)
    XCTAssertEqual(job.model?.path, "/path/to/mobile_sam.pt")
    XCTAssertEqual(job.database.path, "/data/jobs/results.db")
    XCTAssertEqual(job.images.path, "/data/jobs/images")
    XCTAssertEqual(
      job.manifests,
      [
        ManifestSpec(
          path: URL(fileURLWithPath: "/data/jobs/instances.json"), format: .coco, images: nil, box: .xywh)
      ])
    XCTAssertEqual(job.prompts.multimask, false)
    XCTAssertEqual(job.prompts.keep, .best)
    XCTAssertNil(job.prompts.minScore)
    XCTAssertEqual(job.workers, 2)
    XCTAssertTrue(job.exif)
  }

  func testUnknownKeyNamesKeyAndLine() {
    let yaml =
      "version: 1\nmanifests:\n  - path: a.json\n    format: coco\nprompts:\n  multimask: true\n  keeep: all\n"
    assertJobError(yaml, line: 7, key: "prompts.keeep", contains: "unknown key")
    assertJobError("version: 1\nmodle: x.pt\nmanifests: []\n", line: 2, key: "modle", contains: "unknown key")
    assertJobError(
      "version: 1\nmanifests:\n  - path: a.json\n    format: coco\n    bx: xyxy\n", line: 5,
      key: "manifests[0].bx",
      contains: "unknown key")
  }

  func testWrongTypesNameKeyAndLine() {
    let head = "version: 1\nmanifests:\n  - path: a.json\n    format: coco\n"
    assertJobError(head + "workers: two\n", line: 5, key: "workers", contains: "integer")
    assertJobError(head + "workers: 0\n", line: 5, key: "workers", contains: "at least 1")
    assertJobError(
      head + "prompts:\n  multimask: maybe\n", line: 6, key: "prompts.multimask", contains: "true or false")
    assertJobError(head + "prompts:\n  keep: first\n", line: 6, key: "prompts.keep", contains: "best, all")
    assertJobError(
      head + "prompts:\n  min_score: high\n", line: 6, key: "prompts.min_score", contains: "number")
    assertJobError(head + "model: [a, b]\n", line: 5, key: "model", contains: "string")
    assertJobError(head + "prompts: 3\n", line: 5, key: "prompts", contains: "mapping")
    assertJobError("version: 2\nmanifests: []\n", line: 1, key: "version", contains: "must be 1")
    assertJobError(
      "version: 1\nmanifests:\n  - path: a.json\n    format: csv\n", line: 4, key: "manifests[0].format",
      contains: "coco")
    assertJobError(
      "version: 1\nmanifests:\n  - path: a.json\n    format: coco-results\n", line: 3,
      key: "manifests[0].images",
      contains: "required")
    assertJobError("version: 1\n", line: 1, key: "manifests", contains: "required")
  }

  func testInvalidYAMLIsAnErrorNotACrash() {
    XCTAssertThrowsError(try JobFile.parse(yaml: "version: [1\n", jobURL: jobURL))
    XCTAssertThrowsError(try JobFile.parse(yaml: "", jobURL: jobURL))
    XCTAssertThrowsError(try JobFile.parse(yaml: "- a\n- b\n", jobURL: jobURL))
  }

  func testBoxConventionsAndDefaults() throws {
    let yaml = """
      version: 1
      manifests:
        - {path: a.jsonl, format: jsonl}
        - {path: d.json, format: coco-results, images: /abs/i.json, box: cxcywh-normalized}
      """
    let job = try JobFile.parse(yaml: yaml, jobURL: jobURL)
    XCTAssertEqual(job.manifests[0].box, .xyxy)
    XCTAssertEqual(job.manifests[1].box, .cxcywhNormalized)
    XCTAssertEqual(job.manifests[1].images?.path, "/abs/i.json")
    XCTAssertEqual(job.database.path, "/data/jobs/results.db")
    XCTAssertEqual(job.images.path, "/data/jobs")
  }

  func testBoxConventionConversions() {
    XCTAssertEqual(BoxConvention.xywh.corners([10, 20, 30, 40], width: 100, height: 100), [10, 20, 40, 60])
    XCTAssertEqual(BoxConvention.xyxy.corners([10, 20, 30, 40], width: 100, height: 100), [10, 20, 30, 40])
    XCTAssertEqual(
      BoxConvention.cxcywh.corners([50, 50, 20, 10], width: 100, height: 100), [40, 45, 60, 55])
    XCTAssertEqual(
      BoxConvention.cxcywhNormalized.corners([0.5, 0.5, 0.5, 0.25], width: 200, height: 100),
      [50, 37.5, 150, 62.5])
    XCTAssertEqual(
      BoxConvention.xyxyNormalized.corners([0.1, 0.2, 0.5, 1], width: 200, height: 100), [20, 20, 100, 100])
  }

  private func assertJobError(
    _ yaml: String, line: Int, key: String, contains text: String, file: StaticString = #filePath,
    lineNumber: UInt = #line
  ) {
    XCTAssertThrowsError(try JobFile.parse(yaml: yaml, jobURL: jobURL), file: file, line: lineNumber) {
      error in
      guard case SAMBatchError.job(let f, let l, let k, let message) = error else {
        return XCTFail("unexpected error \(error)", file: file, line: lineNumber)
      }
      XCTAssertEqual(f, jobURL.path, file: file, line: lineNumber)
      XCTAssertEqual(l, line, "line of \(message)", file: file, line: lineNumber)
      XCTAssertEqual(k, key, file: file, line: lineNumber)
      XCTAssertTrue(
        message.contains(text), "'\(message)' should contain '\(text)'", file: file, line: lineNumber)
      XCTAssertTrue(error.localizedDescription.contains("job.yaml:\(line)"), file: file, line: lineNumber)
    }
  }
}
