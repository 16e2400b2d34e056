import Foundation
import TestSupport
import XCTest

final class ShardCLITests: XCTestCase {
  let fake = ["SAMBATCH_FAKE_SEGMENTER": "1"]

  func testShardsMergeToTheWholeRun() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 7)
    let whole = dir.appendingPathComponent("whole.db")
    XCTAssertEqual(try runSambatch(["run", job.path, "--database", whole.path], environment: fake).status, 2)
    var shardFiles: [String] = []
    var seen = 0
    for i in 0..<3 {
      let result = try runSambatch(["run", job.path, "--shard", "\(i)/3"], environment: fake)
      XCTAssertNotEqual(result.status, 1, result.stderr)
      let file = dir.appendingPathComponent("results.shard-\(i)-of-3.db")
      XCTAssertTrue(FileManager.default.fileExists(atPath: file.path), "the shard's own database")
      let n: Int = try query(file, "SELECT COUNT(*) FROM images") ?? 0
      let wrong: Int = try query(file, "SELECT COUNT(*) FROM images WHERE id % 3 != \(i)") ?? -1
      XCTAssertEqual(wrong, 0, "shard \(i) holds images id % 3 == \(i)")
      seen += n
      shardFiles.append(file.path)
    }
    XCTAssertEqual(seen, 8, "7 images + the missing one, each in exactly one shard")
    let merged = dir.appendingPathComponent("merged.db")
    let result = try runSambatch(["merge", merged.path] + shardFiles.reversed())
    XCTAssertEqual(result.status, 0, result.stderr)
    assertSameRows(try resultDump(merged), try resultDump(whole))
    // The merged database answers status like a whole run.
    let status = try runSambatch(["status", job.path, "--database", merged.path])
    XCTAssertTrue(status.stdout.contains("7 done, 1 failed, 0 left"), status.stdout)
  }

  func testMergeRefusesMixedJobsAndDuplicates() throws {
    let dir = try temporaryDirectory()
    let job = try makeSampleJob(in: dir, count: 3)
    XCTAssertNotEqual(try runSambatch(["run", job.path, "--shard", "0/2"], environment: fake).status, 1)
    let shard0 = dir.appendingPathComponent("results.shard-0-of-2.db").path
    let twice = try runSambatch(["merge", dir.appendingPathComponent("m1.db").path, shard0, shard0])
    XCTAssertEqual(twice.status, 1)
    XCTAssertTrue(twice.stderr.contains("are both shard 0/2"), twice.stderr)

    let other = try temporaryDirectory()
    let otherJob = try makeSampleJob(in: other, count: 3, extra: "exif: false")
    XCTAssertNotEqual(try runSambatch(["run", otherJob.path, "--shard", "1/2"], environment: fake).status, 1)
    let mixed = try runSambatch([
      "merge", dir.appendingPathComponent("m2.db").path, shard0,
      other.appendingPathComponent("results.shard-1-of-2.db").path,
    ])
    XCTAssertEqual(mixed.status, 1)
    XCTAssertTrue(mixed.stderr.contains("not a shard of the same job"), mixed.stderr)
    XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("m2.db").path))

    let partial = try runSambatch(["merge", dir.appendingPathComponent("m3.db").path, shard0])
    XCTAssertEqual(partial.status, 2)
    XCTAssertTrue(partial.stderr.contains("shard 1 is missing"), partial.stderr)
    // The partial merge holds images 0 and 2 of 4: status and a rerun see the other two as to do.
    let m3 = dir.appendingPathComponent("m3.db").path
    let before = try runSambatch(["status", job.path, "--database", m3])
    XCTAssertTrue(before.stdout.contains("images: 4 ("), before.stdout)
    XCTAssertTrue(before.stdout.contains("2 left"), before.stdout)
    let rerun = try runSambatch(["run", job.path, "--database", m3], environment: fake)
    XCTAssertNotEqual(rerun.status, 1, rerun.stderr)
    XCTAssertFalse(rerun.stdout.contains("Nothing to do"), rerun.stdout)
    XCTAssertTrue(rerun.stdout.contains("Processed 2 images"), rerun.stdout)
    let pending: Int =
      try query(URL(fileURLWithPath: m3), "SELECT COUNT(*) FROM images WHERE status = 'pending'") ?? -1
    let all: Int = try query(URL(fileURLWithPath: m3), "SELECT COUNT(*) FROM images") ?? -1
    XCTAssertEqual(pending, 0)
    XCTAssertEqual(all, 4)
    let after = try runSambatch(["status", job.path, "--database", m3])
    XCTAssertTrue(after.stdout.contains("images: 4 ("), after.stdout)
    XCTAssertTrue(after.stdout.contains("0 left"), after.stdout)

    let badShard = try runSambatch(["run", job.path, "--shard", "2/2"], environment: fake)
    XCTAssertEqual(badShard.status, 1)
    XCTAssertTrue(badShard.stderr.contains("0 <= I < N"), badShard.stderr)
  }
}
