import Foundation
import GRDB
import MobileSAM
import SAMImage
import TestSupport
import XCTest

@testable import SAMBatch
@testable import SAMBatchFakes

/// A model source whose model never loads.
struct UnloadableSource: SegmenterSource {
  func identify() throws -> ModelIdentity { ModelIdentity(path: "/models/broken.pt", sha256: "broken") }
  func load() throws -> any Segmenter {
    throw SAMBatchError.model(path: "/models/broken.pt", cause: "not a usable checkpoint")
  }
}

/// A growing dataset, mistakes in a job, and what status says about both (issue 6, defects 2 and 3).
final class JobChangeTests: XCTestCase {
  let lines = [
    #"{"image": "picture1.jpg", "objects": [{"id": "a", "box": [120, 265, 637, 513]}]}"#,
    #"{"image": "picture2.jpg", "objects": [{"id": "b", "box": [338, 124, 402, 505]}]}"#,
  ]

  func write(_ lines: [String], _ job: TestJob) throws {
    try lines.joined(separator: "\n").write(
      to: job.dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
  }

  func finishedAt(_ job: TestJob) throws -> [String] {
    try DatabaseQueue(path: job.database.path).read {
      try String.fetchAll($0, sql: "SELECT COALESCE(finished_at, '-') FROM images ORDER BY id")
    }
  }

  func testAppendedImagesAndPromptsAreAddedKeepingDoneWork() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    XCTAssertEqual(try job.run().counts.done, 2)
    let before = try finishedAt(job)
    // A new image, and one more prompt for picture2 (a second line for the same image).
    try write(
      lines + [
        #"{"image": "picture3.jpg", "objects": [{"id": "c", "box": [265, 710, 1500, 1200]}]}"#,
        #"{"image": "picture2.jpg", "objects": [{"id": "b2", "box": [10, 10, 200, 200]}]}"#,
      ], job)
    let status = try job.status()
    XCTAssertEqual(status.nextRun, .extends(added: 1, redo: 1))
    XCTAssertEqual([status.counts.done, status.counts.pending], [1, 2])
    XCTAssertFalse(status.isComplete)

    let summary = try job.run()
    XCTAssertEqual(summary.processed, 2, "the new image and the changed one, not the unchanged one")
    XCTAssertEqual(summary.counts, StatusCounts(done: 3, prompts: 4, masks: 4))
    let after = try finishedAt(job)
    XCTAssertEqual(after[0], before[0], "picture1 was kept as it was")
    XCTAssertNotEqual(after[1], before[1], "picture2 was redone")
    XCTAssertTrue(try job.status().isComplete)

    // The database now holds what a fresh run of the grown job writes.
    let fresh = try TestJob(manifests: [
      ("m.jsonl", "jsonl", try String(contentsOf: job.dir.appendingPathComponent("m.jsonl"), encoding: .utf8))
    ])
    _ = try fresh.run()
    XCTAssertEqual(try resultDump(job.database), try resultDump(fresh.database))
  }

  func testAnInPlaceEditIsNotComplete() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    _ = try job.run()
    XCTAssertTrue(try job.status().isComplete)
    try write([lines[0].replacingOccurrences(of: "637", with: "600"), lines[1]], job)
    let status = try job.status()
    XCTAssertFalse(status.isComplete)
    XCTAssertEqual(status.nextRun, .extends(added: 0, redo: 1))
    let summary = try job.run()
    XCTAssertEqual(summary.processed, 1)
    let x1 = try DatabaseQueue(path: job.database.path).read {
      try Double.fetchOne($0, sql: "SELECT box_x1 FROM prompts WHERE image_id = 0")
    }
    XCTAssertEqual(x1, 600)
  }

  func testRemovedOrReorderedImagesAreRefusedByRunAndStatusAlike() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    _ = try job.run()
    try write([lines[1], lines[0]], job)
    guard case .refuses(let changes) = try job.status().nextRun else {
      return XCTFail("status must say that run refuses")
    }
    XCTAssertTrue(changes.joined().contains("removed or reordered"), changes.joined())
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue($0.localizedDescription.contains("removed or reordered"), $0.localizedDescription)
    }
  }

  func testAModelThatDoesNotLoadStampsNothing() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    XCTAssertThrowsError(try job.run(model: UnloadableSource())) {
      XCTAssertTrue($0.localizedDescription.contains("broken.pt"), $0.localizedDescription)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: job.database.path), "nothing recorded")
    XCTAssertEqual(try job.run(model: FakeSegmenterSource(sha256: "the right one")).counts.done, 2)
  }

  func testAWrongImagesFolderDoesNotLockTheJob() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    let yaml = try String(contentsOf: job.jobURL, encoding: .utf8)
    // A folder that does not exist: refused before anything is written.
    try yaml.replacingOccurrences(of: Fixtures.url("images").path, with: "/nonexistent/images")
      .write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue(
        $0.localizedDescription.contains("/nonexistent/images does not exist"), $0.localizedDescription)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: job.database.path))
    // A file where the folder goes: said so, not "does not exist".
    try yaml.replacingOccurrences(of: Fixtures.url("images").path, with: job.jobURL.path)
      .write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue(
        $0.localizedDescription.contains("which is a file, not a folder"), $0.localizedDescription)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: job.database.path))
    // A folder that exists but holds other files: every image fails.
    try yaml.replacingOccurrences(of: Fixtures.url("images").path, with: job.dir.path)
      .write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertEqual(try job.run().counts.failed, 2)
    // Fixed: no result was ever stored, so the plan is replaced (no --retry-failed needed).
    try yaml.write(to: job.jobURL, atomically: true, encoding: .utf8)
    guard case .replaces = try job.status().nextRun else {
      return XCTFail("status must say run starts afresh: \(try job.status().nextRun)")
    }
    let fixed = try job.run()
    XCTAssertEqual(fixed.counts, StatusCounts(done: 2, prompts: 2, masks: 2))
    // Once results exist, a settings change is refused as before.
    try (yaml + "exif: false\n").write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run(retryFailed: true)) {
      XCTAssertTrue($0.localizedDescription.contains("exif: true then, false now"), $0.localizedDescription)
    }
  }

  func testAnEmptyManifestIsAnError() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", "\n")])
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue($0.localizedDescription.contains("list no images"), $0.localizedDescription)
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: job.database.path))
  }

  func testDetectionsBelowMinScoreAreCountedPerImage() throws {
    let manifest = [
      #"{"image": "picture1.jpg", "objects": [{"box": [1, 1, 50, 50], "score": 0.2}, {"box": [1, 1, 60, 60], "score": 0.9}, {"box": [1, 1, 70, 70], "score": 0.1}]}"#,
      #"{"image": "picture2.jpg", "objects": [{"box": [1, 1, 50, 50], "score": 0.8}]}"#,
    ]
    let job = try TestJob(
      manifests: [("m.jsonl", "jsonl", manifest.joined(separator: "\n"))],
      extra: "prompts: {min_score: 0.5}\n")
    let logged = LogLines()
    let summary = try job.run(log: logged.append)
    XCTAssertEqual(summary.counts.belowMinScore, 2)
    XCTAssertEqual(summary.counts.prompts, 2)
    let perImage = try DatabaseQueue(path: job.database.path).read {
      try Int.fetchAll($0, sql: "SELECT below_min_score FROM images ORDER BY id")
    }
    XCTAssertEqual(perImage, [2, 0])
    XCTAssertEqual(try job.status().counts.belowMinScore, 2)
    XCTAssertTrue(logged.lines.contains { $0.hasPrefix("2 detections left out") }, "\(logged.lines)")
    XCTAssertTrue(logged.lines.contains { $0.contains(", 2 workers side by side,") }, "\(logged.lines)")
  }

  func testMessagesCountInTheSingular() throws {
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines[0])])
    let yaml = try String(contentsOf: job.jobURL, encoding: .utf8).replacingOccurrences(
      of: "workers: 2", with: "workers: 1")
    try yaml.write(to: job.jobURL, atomically: true, encoding: .utf8)
    let logged = LogLines()
    _ = try job.run(log: logged.append)
    XCTAssertTrue(logged.lines.contains { $0.hasPrefix("1 of 1 image to do, 1 worker,") }, "\(logged.lines)")
  }

  func testAFailedImageNamesItsPathOnce() throws {
    let job = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "missing-photo.jpg", "objects": [{"box": [1, 1, 5, 5]}]}"#)
    ])
    _ = try job.run()
    let error = try DatabaseQueue(path: job.database.path).read {
      try String.fetchOne($0, sql: "SELECT error FROM images")
    }
    XCTAssertEqual(error?.components(separatedBy: "missing-photo.jpg").count, 2, error ?? "")
  }

  /// The library swaps its model only through the source it is given.
  func testTheLibraryDoesNotReadTheFakeSegmenterVariable() throws {
    let folder = Fixtures.repository.appendingPathComponent("Sources/SAMBatch")
    for name in try FileManager.default.contentsOfDirectory(atPath: folder.path)
    where name.hasSuffix(".swift") {
      let text = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
      XCTAssertFalse(text.contains("SAMBATCH_FAKE"), "\(name) reads the fake segmenter's variable")
      XCTAssertFalse(text.contains("FakeSegmenter"), "\(name) knows the fake segmenter")
    }
  }
}

final class LogLines: @unchecked Sendable {
  private let lock = NSLock()
  private var _lines: [String] = []
  var lines: [String] { lock.withLock { _lines } }
  func append(_ line: String) { lock.withLock { _lines.append(line) } }
}

/// Issue 7, items 8 and 11: huge inputs are quoted, not echoed; manifest problems are listed.
final class MessageSizeTests: XCTestCase {
  func testAHugeImagePathIsQuotedInErrorsAndStatus() throws {
    let long = String(repeating: "very-long-folder-name/", count: 500) + "photo.jpg"  // 11,009 characters
    let job = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "\#(long)", "objects": [{"box": [1, 1, 5, 5]}]}"#)
    ])
    XCTAssertEqual(try job.run().counts.failed, 1)
    let error = try XCTUnwrap(
      try DatabaseQueue(path: job.database.path).read {
        try String.fetchOne($0, sql: "SELECT error FROM images")
      })
    XCTAssertLessThan(error.count, 600, error)
    XCTAssertTrue(error.contains("very-long-folder-name/very-long"), error)
    let status = try job.status()
    XCTAssertLessThan(status.failedImages[0].path.count + status.failedImages[0].error.count, 1200)
  }

  func testAHugeYAMLLineIsQuoted() throws {
    let yaml = "version: 1\nmanifests: [" + String(repeating: "[", count: 200_000) + "\n"
    XCTAssertThrowsError(try JobFile.parse(yaml: yaml, jobURL: URL(fileURLWithPath: "/tmp/job.yaml"))) {
      XCTAssertLessThan($0.localizedDescription.count, 1000, String($0.localizedDescription.prefix(300)))
    }
  }

  func testTheRunSummaryListsTheFirstManifestProblems() throws {
    let lines = (0..<8).map { "{broken \($0)" } + [#"{"image": "picture1.jpg", "objects": []}"#]
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    let summary = try job.run()
    XCTAssertEqual(summary.counts.manifestProblems, 8)
    XCTAssertEqual(summary.problems.map(\.line), [1, 2, 3, 4, 5])
    XCTAssertTrue(summary.problems.allSatisfy { $0.file.hasSuffix("m.jsonl") })
    XCTAssertEqual(try job.status().problems.count, 5)
  }
}

/// Issue 7, item 10: the image size limit is a job setting.
final class PixelLimitTests: XCTestCase {
  func testMaxImagePixelsIsAJobSetting() throws {
    let line = #"{"image": "picture1.jpg", "objects": [{"box": [10, 20, 60, 70]}]}"#  // 769x770
    let small = try TestJob(manifests: [("m.jsonl", "jsonl", line)], extra: "max_image_pixels: 500000\n")
    XCTAssertEqual(try small.run().counts.failed, 1)
    let error = try DatabaseQueue(path: small.database.path).read {
      try String.fetchOne($0, sql: "SELECT error FROM images")
    }
    XCTAssertTrue(error?.contains("more than the limit of 500000") ?? false, error ?? "")
    XCTAssertTrue(error?.contains("max_image_pixels") ?? false, error ?? "")
    let enough = try TestJob(manifests: [("m.jsonl", "jsonl", line)], extra: "max_image_pixels: 592130\n")
    XCTAssertEqual(try enough.run().counts.done, 1)
    XCTAssertThrowsError(
      try JobFile.parse(
        yaml: "version: 1\nmax_image_pixels: 0\nmanifests: [{path: m.jsonl, format: jsonl}]\n",
        jobURL: URL(fileURLWithPath: "/tmp/job.yaml"))
    ) {
      XCTAssertTrue(
        $0.localizedDescription.contains("'max_image_pixels': must be at least 1"), $0.localizedDescription)
    }
  }
}

/// Issue 7, item 4: a finished rerun and status do not read manifests whose size and
/// modification time are those the plan was checked against.
final class ManifestStatsTests: XCTestCase {
  func testUnchangedManifestsAreNotReadAgain() throws {
    let line = #"{"image": "picture1.jpg", "objects": [{"box": [10, 20, 60, 70]}]}"#
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", line)])
    XCTAssertEqual(try job.run().counts.done, 1)
    let manifest = job.dir.appendingPathComponent("m.jsonl")
    let modified = try XCTUnwrap(
      try FileManager.default.attributesOfItem(atPath: manifest.path)[.modificationDate] as? Date)
    // Same size, same time, other bytes: taken as unchanged, so never read (it would not parse).
    try String(repeating: "#", count: line.utf8.count).write(to: manifest, atomically: false, encoding: .utf8)
    try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: manifest.path)
    XCTAssertTrue(try job.run().nothingToDo)
    XCTAssertTrue(try job.status().isComplete)
    // A new modification time: read and compared (the image is gone from it).
    try FileManager.default.setAttributes(
      [.modificationDate: modified.addingTimeInterval(10)], ofItemAtPath: manifest.path)
    guard case .refuses = try job.status().nextRun else {
      return XCTFail("the changed manifest must be read: \(try job.status().nextRun)")
    }
  }
}
