import Foundation
import TestSupport
import XCTest

/// Kills `sambatch run` with SIGKILL at several points and checks that rerunning ends with the
/// same database as an uninterrupted run.
final class ResumeCLITests: XCTestCase {
  let fake = ["SAMBATCH_FAKE_SEGMENTER": "1"]

  func testKilledRunsResumeToTheSameDatabase() throws {
    let count = 12
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: count)
    // The uninterrupted run writes beside it (error messages name the image paths, so the same
    // folder keeps them equal).
    let referenceDB = dir.appendingPathComponent("reference.db")
    let whole = try runSambatch(["run", job.path, "--database", referenceDB.path], environment: fake)
    XCTAssertEqual(whole.status, 2, "a missing image and a bad prompt: " + whole.stderr)
    let expected = try resultDump(referenceDB)
    XCTAssertEqual(expected.filter { $0.hasPrefix("image ") }.count, count + 1)

    let database = dir.appendingPathComponent("results.db")
    // 150 ms per image in the fake encoder, so that the kills land mid-job: one right at the
    // start (before or while the plan is written), then each time a few more images are written.
    var env = fake
    env["SAMBATCH_FAKE_DELAY_MS"] = "150"
    var killsMidJob = 0
    for target in [-1, 1, 3, 4, 7, 9, 12] {
      let condition: (() -> Bool)? = target < 0 ? nil : { processedImages(database) >= target }
      let result = try runSambatch(
        ["run", job.path], environment: env, killAfter: target < 0 ? 0.02 : nil, killWhen: condition)
      if !result.killed { break }
      // A kill can land before the database exists, or before its schema is committed.
      let planned: Int =
        FileManager.default.fileExists(atPath: database.path)
        ? try query(database, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'images'") ?? 0 : 0
      if planned == 1 {
        let done: Int = try query(database, "SELECT COUNT(*) FROM images WHERE status != 'pending'") ?? 0
        if done > 0 && done < count + 1 { killsMidJob += 1 }
        // Never an image marked processed without its rows, never rows of an unprocessed image.
        let orphans: Int =
          try query(
            database,
            "SELECT COUNT(*) FROM prompts p JOIN images i ON i.id = p.image_id WHERE i.status = 'pending'")
          ?? -1
        XCTAssertEqual(orphans, 0)
        let doneWithoutPrompts: Int =
          try query(
            database,
            """
            SELECT COUNT(*) FROM images i WHERE i.status = 'done' AND i.prompt_count > 0
            AND NOT EXISTS (SELECT 1 FROM prompts p WHERE p.image_id = i.id)
            """) ?? -1
        XCTAssertEqual(doneWithoutPrompts, 0)
      }
    }
    XCTAssertGreaterThanOrEqual(killsMidJob, 3, "the kills should land mid-job")
    let last = try runSambatch(["run", job.path], environment: env)
    XCTAssertFalse(last.killed)
    XCTAssertEqual(last.status, 2, last.stderr)
    assertSameRows(try resultDump(database), expected)
    let runs: Int = try query(database, "SELECT COUNT(*) FROM runs") ?? 0
    XCTAssertGreaterThan(runs, 1, "the job was done in several runs")

    let again = try runSambatch(["run", job.path], environment: env)
    XCTAssertTrue(again.stdout.contains("Nothing to do"), again.stdout)
    assertSameRows(try resultDump(database), expected)
  }
}

/// Images the run has finished (done or failed), or 0 while the database is not there yet.
func processedImages(_ database: URL) -> Int {
  guard FileManager.default.fileExists(atPath: database.path) else { return 0 }
  let planned: Int? = try? query(database, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'images'")
  guard planned == 1 else { return 0 }
  return (try? query(database, "SELECT COUNT(*) FROM images WHERE status != 'pending'")) ?? 0
}
