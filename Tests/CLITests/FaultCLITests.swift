import Foundation
import GRDB
import TestSupport
import XCTest

/// A `sambatch` process left running in the background.
final class BackgroundRun {
  let process = Process()
  let stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sambatch-bg-\(UUID().uuidString)")

  init(_ arguments: [String], environment: [String: String]) throws {
    process.executableURL = try sambatchBinary()
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env.removeValue(forKey: "SAMBATCH_MODEL")
    for (k, v) in environment { env[k] = v }
    process.environment = env
    _ = FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
    process.standardError = try FileHandle(forWritingTo: stderrURL)
    process.standardOutput = FileHandle.nullDevice
    try process.run()
  }

  var pid: Int32 { process.processIdentifier }

  /// Polls `condition` every 20 ms for at most `seconds`.
  func wait(until condition: () -> Bool, seconds: Double = 60) {
    let deadline = Date().addingTimeInterval(seconds)
    while process.isRunning && !condition() && Date() < deadline { usleep(20_000) }
  }

  func finish() -> (status: Int32, stderr: String) {
    process.waitUntilExit()
    defer { try? FileManager.default.removeItem(at: stderrURL) }
    return (process.terminationStatus, (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "")
  }
}

/// Faults of issue 7: two runs on one database, signals.
final class FaultCLITests: XCTestCase {
  let slow = ["SAMBATCH_FAKE_SEGMENTER": "1", "SAMBATCH_FAKE_DELAY_MS": "250"]

  func processedImages(_ db: URL) -> Int {
    guard FileManager.default.fileExists(atPath: db.path) else { return 0 }
    return (try? query(db, "SELECT COUNT(*) FROM images WHERE status != 'pending'")) ?? 0
  }

  func testASecondRunRefusesWhileTheFirstLivesAndTakesOverWhenItIsGone() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 12)
    let db = dir.appendingPathComponent("results.db")
    let first = try BackgroundRun(["run", job.path], environment: slow)
    first.wait(until: { processedImages(db) >= 1 })
    let second = try runSambatch(["run", job.path], environment: slow)
    XCTAssertEqual(second.status, 1, second.stderr)
    XCTAssertTrue(
      second.stderr.contains("in use by another run of this job: pid \(first.pid) on "), second.stderr)
    kill(first.pid, SIGKILL)
    _ = first.finish()
    let third = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(third.status, 2, third.stderr)  // the sample job has a missing image and a bad prompt
    XCTAssertTrue(third.stderr.contains("(pid \(first.pid) on"), third.stderr)
    XCTAssertTrue(third.stderr.contains("is gone: taking over"), third.stderr)
    let open: Int = try query(db, "SELECT COUNT(*) FROM runs WHERE ended_at IS NULL") ?? -1
    XCTAssertEqual(open, 0, "the killed run is closed by the one that took over")
    let pending: Int = try query(db, "SELECT COUNT(*) FROM images WHERE status = 'pending'") ?? -1
    XCTAssertEqual(pending, 0)
  }

  /// Three runs started together on a job with no database yet (all three plan it): one records
  /// itself and processes every image, the other two refuse naming it; no image is written twice.
  func testThreeRunsStartedTogetherProcessEachImageOnce() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 8)
    let db = dir.appendingPathComponent("results.db")
    // 8 images at 600 ms: the working run is still busy when a late starter on a loaded machine checks in.
    let slower = ["SAMBATCH_FAKE_SEGMENTER": "1", "SAMBATCH_FAKE_DELAY_MS": "600"]
    let runs = try (0..<3).map { _ in try BackgroundRun(["run", job.path], environment: slower) }
    let outcomes = runs.map { $0.finish() }
    let statuses = outcomes.map(\.status).sorted()
    XCTAssertEqual(statuses, [1, 1, 2], outcomes.map(\.stderr).joined(separator: "\n---\n"))
    let worker = try XCTUnwrap(runs.indices.first { outcomes[$0].status == 2 })
    for i in runs.indices where i != worker {
      XCTAssertTrue(
        outcomes[i].stderr.contains("in use by another run of this job: pid \(runs[worker].pid) on "),
        outcomes[i].stderr)
    }
    let recorded: Int = try query(db, "SELECT COUNT(*) FROM runs") ?? -1
    XCTAssertEqual(recorded, 1, "a refused run records nothing")
    let written: Int = try query(db, "SELECT SUM(images_done + images_failed) FROM runs") ?? -1
    XCTAssertEqual(written, 9, "8 images and a missing one, each written once")
    let pending: Int = try query(db, "SELECT COUNT(*) FROM images WHERE status = 'pending'") ?? -1
    XCTAssertEqual(pending, 0)
  }

  func testSIGTERMFinishesTheImagesInFlightRecordsTheRunAndSaysHowToResume() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 12)
    let db = dir.appendingPathComponent("results.db")
    let run = try BackgroundRun(["run", job.path], environment: slow)
    run.wait(until: { processedImages(db) >= 2 })
    kill(run.pid, SIGTERM)
    let (status, stderr) = run.finish()
    XCTAssertEqual(status, 143, stderr)
    XCTAssertTrue(stderr.contains("SIGTERM: stopping after the images in flight"), stderr)
    XCTAssertTrue(stderr.contains("Run the same command again to continue"), stderr)
    let row = try DatabaseQueue(path: db.path).read {
      try Row.fetchOne($0, sql: "SELECT ended_at, end_reason, images_done, images_failed FROM runs")
    }
    XCTAssertNotNil(row?["ended_at"] as String?)
    XCTAssertEqual(row?["end_reason"] as String?, "interrupted (SIGTERM)")
    let done = (row?["images_done"] as Int? ?? 0) + (row?["images_failed"] as Int? ?? 0)
    XCTAssertEqual(done, processedImages(db), "the run's counts match the images it wrote")
    XCTAssertLessThan(done, 13, "it stopped early")
    let resumed = try runSambatch(["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1"])
    XCTAssertEqual(resumed.status, 2, resumed.stderr)
    XCTAssertFalse(resumed.stderr.contains("taking over"), "the interrupted run was closed")
  }

  func testASecondSIGINTStopsAtOnce() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 12)
    let db = dir.appendingPathComponent("results.db")
    let run = try BackgroundRun(
      ["run", job.path], environment: ["SAMBATCH_FAKE_SEGMENTER": "1", "SAMBATCH_FAKE_DELAY_MS": "3000"])
    run.wait(until: {
      FileManager.default.fileExists(atPath: db.path)
        && ((try? query(db, "SELECT COUNT(*) FROM runs") as Int?) ?? 0) >= 1
    })
    kill(run.pid, SIGINT)
    usleep(200_000)
    kill(run.pid, SIGINT)
    let (status, stderr) = run.finish()
    XCTAssertEqual(status, 130, stderr)
    XCTAssertTrue(stderr.contains("SIGINT again: stopping now"), stderr)
  }

  func testFailedRunsLeaveNoDatabase() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(
      in: dir, count: 2, extra: "model: \(dir.appendingPathComponent("absent.pt").path)")
    let result = try runSambatch(["run", job.path])
    XCTAssertEqual(result.status, 1)
    XCTAssertTrue(result.stderr.hasPrefix("sambatch run: error: "), result.stderr)
    XCTAssertTrue(result.stderr.contains("absent.pt"), result.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.db").path))
  }

  func testABadCheckpointIsNamedOnce() throws {
    let dir = try temporaryDirectory()
    let model = dir.appendingPathComponent("not-a-model.pt")
    try Data("definitely not a zip".utf8).write(to: model)
    let job = try makeSampleJob(in: dir, count: 1, extra: "model: \(model.path)")
    let result = try runSambatch(["run", job.path])
    XCTAssertEqual(result.status, 1)
    XCTAssertEqual(result.stderr.components(separatedBy: "not-a-model.pt").count, 2, result.stderr)
    XCTAssertTrue(
      result.stderr.contains("not a usable SAM checkpoint (vit_t, vit_b, vit_l or vit_h)"), result.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.db").path))
  }
}
