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
    XCTAssertThrowsError(try ResultStore(url: url, create: false)) {
      XCTAssertTrue($0.localizedDescription.contains("none.db"))
    }
  }

  func testShardParsing() throws {
    XCTAssertEqual(try Shard(parsing: "2/4"), Shard(index: 2, count: 4))
    for bad in ["4/4", "-1/2", "1", "a/b", "0/0", "1/2/3"] {
      XCTAssertThrowsError(try Shard(parsing: bad), bad)
    }
    XCTAssertEqual(
      JobRunner.shardDatabase(URL(fileURLWithPath: "/a/results.db"), shard: Shard(index: 1, count: 3)).path,
      "/a/results.shard-1-of-3.db")
  }
}
