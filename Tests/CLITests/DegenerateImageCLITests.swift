import Foundation
import GRDB
import TestSupport
import XCTest

/// Degenerate images must give an error, never a crash (issue 2: "a corrupt image ... is
/// an error, not a crash"; issue 3: "bad input never stops the job").
final class DegenerateImageCLITests: XCTestCase {
  private let checkpoint = Fixtures.url("reference/mobile_sam_random.pt")
  /// 1x3000: the longest side becomes 1024 and the other `int(1 * 1024 / 3000 + 0.5) == 0`.
  private let thin = Fixtures.url("degenerate/thin_1x3000.png")

  func testPredictOnAnImageTooThinToResizeIsAnError() throws {
    let result = try runSambatch([
      "predict", "--model", checkpoint.path, "--image", thin.path, "--point", "0,10,1",
    ])
    XCTAssertEqual(result.status, 1, "an error exit, not a signal: \(result.stderr.prefix(300))")
    XCTAssertTrue(
      result.stderr.contains(thin.path), "the message names the image: \(result.stderr.prefix(300))")
  }

  func testJobWithAnImageTooThinToResizeGoesOn() throws {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: thin, to: images.appendingPathComponent("thin.png"))
    try FileManager.default.copyItem(
      at: Fixtures.url("images/picture1.jpg"), to: images.appendingPathComponent("picture1.jpg"))
    try """
    {"image": "thin.png", "objects": [{"box": [0, 0, 1, 100]}]}
    {"image": "picture1.jpg", "objects": [{"box": [120, 265, 637, 513]}]}
    """.write(to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    try """
    version: 1
    model: \(checkpoint.path)
    database: results.db
    images: images
    manifests:
      - path: m.jsonl
        format: jsonl
    workers: 2
    """.write(to: job, atomically: true, encoding: .utf8)
    let result = try runSambatch(["run", job.path])
    XCTAssertEqual(result.status, 2, "finished with one failed image: \(result.stderr.suffix(300))")
    let database = dir.appendingPathComponent("results.db")
    guard FileManager.default.fileExists(atPath: database.path) else { return XCTFail("no database") }
    let statuses = try DatabaseQueue(path: database.path).read {
      try Row.fetchAll($0, sql: "SELECT path, status FROM images ORDER BY id").map {
        "\($0["path"] as String)=\($0["status"] as String)"
      }
    }
    XCTAssertEqual(statuses, ["thin.png=failed", "picture1.jpg=done"])
  }
}
