import Foundation
import GRDB
import TestSupport
import XCTest

@testable import SAMBatch

final class StoreTests: XCTestCase {
  /// sqlite_master (type, name, tbl_name, normalized sql) of a database, without GRDB's own table.
  func schemaRows(_ db: DatabaseQueue) throws -> [String] {
    try db.read { db in
      try Row.fetchAll(
        db,
        sql: """
          SELECT type, name, tbl_name, sql FROM sqlite_master
          WHERE name NOT LIKE 'sqlite_%' AND name NOT LIKE 'grdb_%' ORDER BY type, name
          """
      ).map { row in
        let sql = (row["sql"] as String?) ?? ""
        let normalized = sql.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return "\(row["type"] as String) \(row["name"] as String) \(row["tbl_name"] as String): \(normalized)"
      }
    }
  }

  func testMigrationsMatchSchemasStoreSQL() throws {
    let dir = try temporaryDirectory()
    let store = try ResultStore(url: dir.appendingPathComponent("migrated.db"))
    let sql = try String(
      contentsOf: Fixtures.repository.appendingPathComponent("Schemas/store.sql"), encoding: .utf8)
    let fromFile = try DatabaseQueue(path: dir.appendingPathComponent("from-sql.db").path)
    try fromFile.write { try $0.execute(sql: sql) }
    let migrated = try schemaRows(store.queue)
    XCTAssertEqual(migrated, try schemaRows(fromFile))
    XCTAssertTrue(migrated.contains { $0.hasPrefix("view results ") })
    XCTAssertTrue(migrated.contains { $0.hasPrefix("table masks ") })
  }

  func testDatabaseIsWAL() throws {
    let store = try ResultStore(url: try temporaryDirectory().appendingPathComponent("w.db"))
    let mode = try store.queue.read { try String.fetchOne($0, sql: "PRAGMA journal_mode") }
    XCTAssertEqual(mode, "wal")
  }

  func testOpeningAMissingDatabaseWithoutCreateIsAnError() throws {
    let url = try temporaryDirectory().appendingPathComponent("none.db")
    XCTAssertThrowsError(try ResultStore(url: url, access: .readWrite)) {
      XCTAssertTrue($0.localizedDescription.contains("none.db"))
    }
  }

  func testShardParsing() throws {
    XCTAssertEqual(try Shard(parsing: "2/4"), Shard(index: 2, count: 4))
    for bad in ["4/4", "-1/2", "1", "a/b", "0/0", "1/2/3"] {
      XCTAssertThrowsError(try Shard(parsing: bad), bad)
    }
    XCTAssertEqual(
      Shard(index: 1, count: 3).database(for: URL(fileURLWithPath: "/a/results.db")).path,
      "/a/results.shard-1-of-3.db")
  }

  func testASecondRunIsRefusedWhileTheFirstLivesAndTakesOverAGoneOne() throws {
    let store = try ResultStore(url: try temporaryDirectory().appendingPathComponent("r.db"))
    defer { store.close() }
    let first = try store.startRun(host: "node1", pid: 4242, version: "v", workers: 2, modelPath: "m").id
    XCTAssertThrowsError(
      try store.startRun(
        host: "node1", pid: 99, version: "v", workers: 2, modelPath: "m", isAlive: { $0 == 4242 })
    ) {
      let message = $0.localizedDescription
      XCTAssertTrue(message.contains("pid 4242 on node1, started 20"), message)
    }
    // Another host's run is alive while it writes; the same host's dead pid is gone at once.
    let second = try store.startRun(
      host: "node1", pid: 99, version: "v", workers: 2, modelPath: "m", isAlive: { _ in false })
    XCTAssertEqual(second.tookOver.map(\.id), [first])
    XCTAssertThrowsError(try store.startRun(host: "node2", pid: 7, version: "v", workers: 2, modelPath: "m"))
    let third = try store.startRun(
      host: "node2", pid: 7, version: "v", workers: 2, modelPath: "m", staleAfter: 0)
    XCTAssertEqual(third.tookOver.map(\.id), [second.id])
    let runs = try store.runs()
    XCTAssertEqual(runs.map { $0.endedAt == nil }, [false, false, true])
    XCTAssertTrue(runs[0].endReason?.contains("taken over") ?? false)
  }

  func testAFinishedDatabaseIsReadOnStorageThatCannotBeWritten() throws {
    let dir = try temporaryDirectory()
    let url = dir.appendingPathComponent("done.db")
    let store = try ResultStore(url: url)
    try store.writePlan(
      job: JobRecord(
        jobFile: "j", modelPath: "m", modelSHA256: "x", modelKind: "fake", manifestSHA256: "s",
        settings: "{}",
        shard: .whole, imageCount: 1),
      images: [
        ImagePlan(
          id: 0, path: "a.jpg", sourceImageId: nil, promptCount: 0, belowMinScore: 0, promptsSHA256: "")
      ],
      problems: [], replace: false)
    store.close()
    let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
    let reader = try ResultStore(url: url, access: .readOnly, writableStorage: false)
    XCTAssertEqual(try reader.counts().pending, 1)
    XCTAssertEqual(try reader.jobRecord()?.modelKind, "fake")
    reader.close()
    XCTAssertEqual(
      try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), files, "nothing written")
  }

  /// A database written before the v2 columns existed reads as before (status after an upgrade).
  func testAnOlderDatabaseIsReadAfterAnUpgrade() throws {
    let url = try temporaryDirectory().appendingPathComponent("old.db")
    let old = try DatabaseQueue(path: url.path)
    try StoreSchema.migrator.migrate(
      old, upTo: "v1: jobs, runs, images, prompts, masks, manifest_problems, results view")
    try old.close()
    let reader = try ResultStore(url: url, access: .readOnly)
    XCTAssertEqual(try reader.counts(), StatusCounts())
    XCTAssertNil(try reader.meanTimings())
    reader.close()
  }
}
