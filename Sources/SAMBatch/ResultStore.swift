import Foundation
import GRDB

/// What a database was written for (the `jobs` row).
public struct JobRecord: Sendable, Equatable {
  public var jobFile: String
  public var modelPath: String
  public var modelSHA256: String
  public var manifestSHA256: String
  /// JSON of the settings that change results (multimask, keep, min_score, exif, the images folder).
  public var settings: String
  public var shard: Shard
  public var imageCount: Int
}

/// A deterministic part of a job: images whose position modulo `count` is `index`.
public struct Shard: Sendable, Equatable, CustomStringConvertible {
  public var index: Int
  public var count: Int

  public static let whole = Shard(index: 0, count: 1)

  public init(index: Int, count: Int) {
    self.index = index
    self.count = count
  }

  /// Parses "I/N" with 0 <= I < N.
  public init(parsing text: String) throws {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
      throw SAMBatchError.shard("--shard takes I/N with 0 <= I < N (as array job indices run), got '\(text)'")
    }
    self.init(index: i, count: n)
  }

  public func contains(_ position: Int) -> Bool { position % count == index }
  public var description: String { "\(index)/\(count)" }
}

public struct StatusCounts: Sendable, Equatable {
  public var pending = 0
  public var done = 0
  public var failed = 0
  public var prompts = 0
  public var rejectedPrompts = 0
  public var clippedPrompts = 0
  public var masks = 0
  public var manifestProblems = 0
  public var total: Int { pending + done + failed }
}

/// The rows of one processed image, committed together with its status in one transaction.
struct ImageRows: Sendable {
  struct PromptRow: Sendable {
    var index: Int
    var prepared: PreparedPrompt
    var error: String?
  }
  struct MaskRow: Sendable {
    var promptIndex: Int
    var maskIndex: Int
    var score: Double
    var stabilityScore: Double?
    var area: Int
    var bbox: [Double]
    var rle: String
  }
  var imageId: Int
  var failed: String?
  var width: Int?
  var height: Int?
  var exifApplied: Bool
  var prompts: [PromptRow] = []
  var masks: [MaskRow] = []
  var readMs: Double?
  var embedMs: Double?
  var predictMs: Double?
  var totalMs: Double?
}

/// The SQLite store of one job (or one shard of it). One writer; readers may look at it while a
/// run goes on (WAL).
public final class ResultStore: Sendable {
  public let url: URL
  let queue: DatabaseQueue

  /// Opens (creating if needed) and migrates the database.
  public init(url: URL, create: Bool = true) throws {
    self.url = url
    if !create && !FileManager.default.fileExists(atPath: url.path) {
      throw SAMBatchError.store(database: url.path, message: "no such database (has the job been run?)")
    }
    do {
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      var configuration = Configuration()
      configuration.busyMode = .timeout(10)
      configuration.prepareDatabase { db in
        try db.execute(sql: "PRAGMA foreign_keys = ON")
      }
      queue = try DatabaseQueue(path: url.path, configuration: configuration)
      try queue.writeWithoutTransaction { db in
        // WAL: readers (`sambatch status`, sqlite3) never block the writer; NORMAL sync keeps every
        // committed transaction through a killed process (only power loss can lose the last ones).
        try db.execute(sql: "PRAGMA journal_mode = WAL")
        try db.execute(sql: "PRAGMA synchronous = NORMAL")
      }
      try StoreSchema.migrator.migrate(queue)
    } catch let error as SAMBatchError {
      throw error
    } catch {
      throw SAMBatchError.store(database: url.path, message: "cannot open the database (\(error))")
    }
  }

  func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SAMBatchError { throw error } catch {
      throw SAMBatchError.store(database: url.path, message: "\(what) failed (\(error))")
    }
  }

  /// Closes the connection now (checkpointing the WAL), rather than whenever the last pipeline
  /// closure lets go of the store, so that the database is quiet once a run returns.
  public func close() {
    try? queue.close()
  }

  public func jobRecord() throws -> JobRecord? {
    try wrap("reading the job row") {
      try queue.read { db in
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = 1") else { return nil }
        return JobRecord(
          jobFile: row["job_file"], modelPath: row["model_path"], modelSHA256: row["model_sha256"],
          manifestSHA256: row["manifest_sha256"], settings: row["settings"],
          shard: Shard(index: row["shard_index"], count: row["shard_count"]), imageCount: row["image_count"])
      }
    }
  }

  /// Writes the job row, every image of the shard as pending, and the manifest problems: all in
  /// one transaction, so a killed first run leaves either nothing or a complete plan.
  func initialize(
    job: JobRecord, images: [(id: Int, path: String, sourceImageId: Int?, promptCount: Int)],
    problems: [ManifestProblem]
  )
    throws
  {
    try wrap("writing the job plan") {
      try queue.write { db in
        try db.execute(
          sql: """
            INSERT INTO jobs (id, job_file, model_path, model_sha256, manifest_sha256, settings, shard_index,
              shard_count, image_count, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
          arguments: [
            job.jobFile, job.modelPath, job.modelSHA256, job.manifestSHA256, job.settings, job.shard.index,
            job.shard.count, job.imageCount, timestamp(),
          ])
        let insert = try db.makeStatement(
          sql:
            "INSERT INTO images (id, path, source_image_id, status, prompt_count) VALUES (?, ?, ?, 'pending', ?)"
        )
        for image in images {
          try insert.execute(arguments: [image.id, image.path, image.sourceImageId, image.promptCount])
        }
        let problem = try db.makeStatement(
          sql: "INSERT INTO manifest_problems (file, line, message) VALUES (?, ?, ?)")
        for p in problems { try problem.execute(arguments: [p.file, p.line, p.message]) }
      }
    }
  }

  /// Adds, as pending, the job's images the store does not hold (a merge of only some shards
  /// leaves the others' images out), and raises the job's image count to match. Returns how many
  /// were added.
  func addMissing(images: [(id: Int, path: String, sourceImageId: Int?, promptCount: Int)], imageCount: Int)
    throws -> Int
  {
    try wrap("adding the images missing from the database") {
      try queue.write { db in
        let present = Set(try Int.fetchAll(db, sql: "SELECT id FROM images"))
        let insert = try db.makeStatement(
          sql:
            "INSERT INTO images (id, path, source_image_id, status, prompt_count) VALUES (?, ?, ?, 'pending', ?)"
        )
        var added = 0
        for image in images where !present.contains(image.id) {
          try insert.execute(arguments: [image.id, image.path, image.sourceImageId, image.promptCount])
          added += 1
        }
        if added > 0 {
          try db.execute(
            sql: "UPDATE jobs SET image_count = MAX(image_count, ?) WHERE id = 1", arguments: [imageCount])
        }
        return added
      }
    }
  }

  /// The ids of every image the store holds, whatever its status.
  public func imageIds() throws -> Set<Int> {
    try wrap("listing the images") {
      try queue.read { db in Set(try Int.fetchAll(db, sql: "SELECT id FROM images")) }
    }
  }

  /// The ids of the images still to do, in job order.
  func todo(retryFailed: Bool) throws -> [Int] {
    try wrap("listing the images to do") {
      try queue.read { db in
        try Int.fetchAll(
          db,
          sql:
            "SELECT id FROM images WHERE status = 'pending' \(retryFailed ? "OR status = 'failed'" : "") ORDER BY id"
        )
      }
    }
  }

  func startRun(host: String, version: String, workers: Int, modelPath: String) throws -> Int {
    try wrap("recording the run") {
      try queue.write { db in
        try db.execute(
          sql: "INSERT INTO runs (started_at, host, version, workers, model_path) VALUES (?, ?, ?, ?, ?)",
          arguments: [timestamp(), host, version, workers, modelPath])
        return Int(db.lastInsertedRowID)
      }
    }
  }

  func endRun(_ id: Int, done: Int, failed: Int) throws {
    try wrap("closing the run") {
      try queue.write { db in
        try db.execute(
          sql: "UPDATE runs SET ended_at = ?, images_done = ?, images_failed = ? WHERE id = ?",
          arguments: [timestamp(), done, failed, id])
      }
    }
  }

  /// All results of one image and its status change, in one transaction.
  func commit(_ rows: ImageRows, runId: Int) throws {
    try wrap("writing the results of image \(rows.imageId)") {
      try queue.write { db in
        try db.execute(sql: "DELETE FROM masks WHERE image_id = ?", arguments: [rows.imageId])
        try db.execute(sql: "DELETE FROM prompts WHERE image_id = ?", arguments: [rows.imageId])
        let prompt = try db.cachedStatement(
          sql: """
            INSERT INTO prompts (image_id, prompt_index, source_id, category_id, category, detector_score,
              box_x0, box_y0, box_x1, box_y1, points, warning, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for p in rows.prompts {
          let o = p.prepared.object
          let box = p.prepared.usedBox
          let points =
            o.points.isEmpty
            ? nil
            : "["
              + o.points.map { "[\(pointText($0.x)), \(pointText($0.y)), \($0.label)]" }.joined(
                separator: ", ") + "]"
          try prompt.execute(arguments: [
            rows.imageId, p.index, o.sourceId, o.categoryId, o.category, o.detectorScore, box?[0], box?[1],
            box?[2],
            box?[3], points, p.prepared.warning, p.error,
          ])
        }
        let mask = try db.cachedStatement(
          sql: """
            INSERT INTO masks (image_id, prompt_index, mask_index, score, stability_score, area, bbox_x, bbox_y,
              bbox_w, bbox_h, rle) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for m in rows.masks {
          try mask.execute(arguments: [
            rows.imageId, m.promptIndex, m.maskIndex, m.score, m.stabilityScore, m.area, m.bbox[0], m.bbox[1],
            m.bbox[2], m.bbox[3], m.rle,
          ])
        }
        try db.execute(
          sql: """
            UPDATE images SET status = ?, error = ?, width = ?, height = ?, exif_applied = ?, read_ms = ?,
              embed_ms = ?, predict_ms = ?, total_ms = ?, run_id = ?, finished_at = ? WHERE id = ?
            """,
          arguments: [
            rows.failed == nil ? "done" : "failed", rows.failed, rows.width, rows.height, rows.exifApplied,
            rows.readMs, rows.embedMs, rows.predictMs, rows.totalMs, runId, timestamp(), rows.imageId,
          ])
      }
    }
  }

  public func counts() throws -> StatusCounts {
    try wrap("counting") {
      try queue.read { db in
        var c = StatusCounts()
        for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM images GROUP BY status") {
          let n: Int = row["n"]
          switch row["status"] as String {
          case "pending": c.pending = n
          case "done": c.done = n
          default: c.failed = n
          }
        }
        c.prompts = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prompts") ?? 0
        c.rejectedPrompts =
          try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prompts WHERE error IS NOT NULL") ?? 0
        c.clippedPrompts =
          try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM prompts WHERE warning IS NOT NULL") ?? 0
        c.masks = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM masks") ?? 0
        c.manifestProblems = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM manifest_problems") ?? 0
        return c
      }
    }
  }

  /// Mean per-stage times (ms) over the done images, nil when none is done.
  public func meanTimings() throws -> (read: Double, embed: Double, predict: Double, total: Double)? {
    try wrap("reading timings") {
      try queue.read { db in
        guard
          let row = try Row.fetchOne(
            db,
            sql: """
              SELECT AVG(read_ms) AS r, AVG(embed_ms) AS e, AVG(predict_ms) AS p, AVG(total_ms) AS t
              FROM images WHERE status = 'done' AND embed_ms IS NOT NULL
              """), let total = row["t"] as Double?
        else { return nil }
        return ((row["r"] as Double?) ?? 0, (row["e"] as Double?) ?? 0, (row["p"] as Double?) ?? 0, total)
      }
    }
  }

  /// Failed images (path, error) and rejected prompts (path, index, error), at most `limit` each.
  public func failures(limit: Int) throws -> (images: [(String, String)], prompts: [(String, Int, String)]) {
    try wrap("listing failures") {
      try queue.read { db in
        let images = try Row.fetchAll(
          db, sql: "SELECT path, error FROM images WHERE status = 'failed' ORDER BY id LIMIT ?",
          arguments: [limit]
        ).map { ($0["path"] as String, ($0["error"] as String?) ?? "") }
        let prompts = try Row.fetchAll(
          db,
          sql: """
            SELECT i.path, p.prompt_index, p.error FROM prompts p JOIN images i ON i.id = p.image_id
            WHERE p.error IS NOT NULL ORDER BY p.image_id, p.prompt_index LIMIT ?
            """, arguments: [limit]
        ).map { ($0["path"] as String, $0["prompt_index"] as Int, $0["error"] as String) }
        return (images, prompts)
      }
    }
  }
}

/// UTC time as ISO 8601 with milliseconds ("2026-11-29T14:40:00.123Z").
func timestamp() -> String {
  Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

/// Shortest text that reads back as the same Float.
func pointText(_ v: Float) -> String {
  v == v.rounded() && abs(v) < 1e7 ? String(Int(v)) : "\(v)"
}
