import Foundation
import GRDB

/// What `sambatch merge` does to the store: a new database takes the rows of a job's shards.
extension ResultStore {
  /// The job row of a merged database: the shards' job, as one whole.
  func writeMergedJob(_ job: JobRecord, imageCount: Int) throws {
    try wrap("writing the job row") {
      try queue.write { db in
        try db.execute(
          sql: """
            INSERT INTO jobs (id, job_file, model_path, model_sha256, model_kind, manifest_sha256, settings,
              shard_index, shard_count, image_count, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, 0, 1, ?, ?)
            """,
          arguments: [
            job.jobFile, job.modelPath, job.modelSHA256, job.modelKind, job.manifestSHA256, job.settings,
            imageCount,
            timestamp(),
          ])
      }
    }
  }

  /// Copies every row of the database at `shard` (migrated to this version) into this one, in
  /// one transaction; run ids are renumbered after the ones already here. Image ids are positions
  /// in the whole job, so they are copied as they are.
  func copyShard(from shard: URL) throws {
    try wrap("copying \(shard.path)") {
      // SQLite cannot ATTACH inside a transaction, and attaches at most 10 databases at a time.
      try queue.writeWithoutTransaction { db in
        try db.execute(sql: "ATTACH DATABASE ? AS shard", arguments: [shard.path])
        defer { try? db.execute(sql: "DETACH DATABASE shard") }
        try db.inTransaction {
          try Self.copyAttachedShard(db)
          return .commit
        }
      }
    }
  }

  private static func copyAttachedShard(_ db: Database) throws {
    let offset = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(id), 0) FROM main.runs") ?? 0
    let runColumns =
      "started_at, ended_at, host, pid, heartbeat_at, version, workers, model_path, images_done, images_failed, end_reason"
    try db.execute(
      sql: "INSERT INTO main.runs (id, \(runColumns)) SELECT id + ?, \(runColumns) FROM shard.runs",
      arguments: [offset])
    let imageColumns = """
      path, source_image_id, status, error, prompt_count, width, height, exif_applied, read_ms, wait_ms, embed_ms,
      predict_ms, total_ms, finished_at, below_min_score, prompts_sha256
      """
    try db.execute(
      sql: """
        INSERT INTO main.images (id, run_id, \(imageColumns))
        SELECT id, run_id + ?, \(imageColumns) FROM shard.images
        """, arguments: [offset])
    try db.execute(sql: "INSERT INTO main.prompts SELECT * FROM shard.prompts")
    try db.execute(sql: "INSERT INTO main.masks SELECT * FROM shard.masks")
    try db.execute(
      sql:
        "INSERT INTO main.manifest_problems (file, line, message) SELECT file, line, message FROM shard.manifest_problems ORDER BY id"
    )
  }
}
