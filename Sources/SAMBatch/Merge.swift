import Foundation
import GRDB

/// Combines the databases of a job's shards (`sambatch run --shard I/N`) into one, as if the job
/// had run in one piece: image ids are positions in the whole job, so rows are copied as they
/// are; run ids are renumbered.
public enum ShardMerger {
  public struct Report: Sendable {
    public var shards: [Shard]
    public var missingShards: [Int]
    public var counts: StatusCounts
  }

  public static func merge(into output: URL, shards inputs: [URL]) throws -> Report {
    guard !inputs.isEmpty else { throw SAMBatchError.merge("no shard databases given") }
    guard !FileManager.default.fileExists(atPath: output.path) else {
      throw SAMBatchError.merge("\(output.path) exists already; merge into a new file")
    }
    // Check every shard first: same job, distinct shard indexes.
    var records: [(URL, JobRecord)] = []
    for url in inputs {
      let store = try ResultStore(url: url, create: false)
      defer { store.close() }
      guard let record = try store.jobRecord() else {
        throw SAMBatchError.merge("\(url.path) holds no job (was the shard ever run?)")
      }
      records.append((url, record))
    }
    let first = records[0].1
    for (url, record) in records.dropFirst() {
      var changes = JobRunner.changes(from: first, to: record).filter { !$0.hasPrefix("it holds shard") }
      if record.shard.count != first.shard.count {
        changes.append(
          "it is one of \(record.shard.count) shards, \(records[0].0.path) one of \(first.shard.count)")
      }
      if !changes.isEmpty {
        throw SAMBatchError.merge(
          "\(url.path) is not a shard of the same job as \(records[0].0.path): \(changes.joined(separator: "; "))"
        )
      }
    }
    var seen: [Int: URL] = [:]
    for (url, record) in records {
      if let other = seen[record.shard.index] {
        throw SAMBatchError.merge("\(url.path) and \(other.path) are both shard \(record.shard)")
      }
      seen[record.shard.index] = url
    }
    let missing = (0..<first.shard.count).filter { seen[$0] == nil }

    let merged = try ResultStore(url: output)
    defer { merged.close() }
    // A new file, deleted again if anything fails: each shard is copied in its own transaction
    // (SQLite cannot ATTACH inside one, and attaches at most 10 databases at a time).
    do {
      try merged.queue.writeWithoutTransaction { db in
        try db.execute(
          sql: """
            INSERT INTO jobs (id, job_file, model_path, model_sha256, manifest_sha256, settings, shard_index,
              shard_count, image_count, created_at) VALUES (1, ?, ?, ?, ?, ?, 0, 1, ?, ?)
            """,
          arguments: [
            first.jobFile, first.modelPath, first.modelSHA256, first.manifestSHA256, first.settings,
            records.map(\.1.imageCount).reduce(0, +), timestamp(),
          ])
        for (url, _) in records.sorted(by: { $0.1.shard.index < $1.1.shard.index }) {
          try db.execute(sql: "ATTACH DATABASE ? AS shard", arguments: [url.path])
          try db.inTransaction {
            try copyAttachedShard(db)
            return .commit
          }
          try db.execute(sql: "DETACH DATABASE shard")
        }
      }
    } catch {
      merged.close()
      for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: output.path + suffix) }
      throw SAMBatchError.merge("merging into \(output.path) failed: \(error)")
    }
    return Report(shards: records.map(\.1.shard), missingShards: missing, counts: try merged.counts())
  }

  /// Copies the rows of the shard attached as `shard`; run ids are renumbered after the ones
  /// already copied.
  private static func copyAttachedShard(_ db: Database) throws {
    let offset = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM main.runs") ?? 0
    try db.execute(
      sql: """
        INSERT INTO main.runs (id, started_at, ended_at, host, version, workers, model_path, images_done, images_failed)
        SELECT id + ?, started_at, ended_at, host, version, workers, model_path, images_done, images_failed FROM shard.runs
        """, arguments: [offset])
    try db.execute(
      sql: """
        INSERT INTO main.images (id, path, source_image_id, status, error, prompt_count, width, height, exif_applied,
          read_ms, embed_ms, predict_ms, total_ms, run_id, finished_at)
        SELECT id, path, source_image_id, status, error, prompt_count, width, height, exif_applied,
          read_ms, embed_ms, predict_ms, total_ms, run_id + ?, finished_at FROM shard.images
        """, arguments: [offset])
    try db.execute(sql: "INSERT INTO main.prompts SELECT * FROM shard.prompts")
    try db.execute(sql: "INSERT INTO main.masks SELECT * FROM shard.masks")
    try db.execute(
      sql:
        "INSERT INTO main.manifest_problems (file, line, message) SELECT file, line, message FROM shard.manifest_problems ORDER BY id"
    )
  }
}
