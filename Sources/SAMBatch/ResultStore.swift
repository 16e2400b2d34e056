import Foundation
import GRDB

/// The SQLite store of one job (or one shard of it): every SQL statement of sambatch lives here
/// and in its extensions (ResultStore+Export.swift, ResultStore+Merge.swift). One writer; readers
/// may look at it while a run goes on (WAL).
public final class ResultStore: Sendable {
  public enum Access: Sendable {
    /// Opens or creates the database (and its folder), and migrates it.
    case create
    /// Opens an existing database to write to it, and migrates it.
    case readWrite
    /// Opens an existing database only to read it: works on read-only storage, never migrates
    /// or changes the file.
    case readOnly
  }

  public let url: URL
  let queue: DatabaseQueue

  public convenience init(url: URL, access: Access = .create) throws {
    try self.init(url: url, access: access, writableStorage: nil)
  }

  /// `writableStorage` overrides the check whether the database's folder can be written (tests
  /// run as root, for whom every folder can).
  init(url: URL, access: Access, writableStorage: Bool?) throws {
    self.url = url
    let exists = FileManager.default.fileExists(atPath: url.path)
    if access != .create && !exists {
      throw SAMBatchError.store(database: url.path, message: "no such database (has the job been run?)")
    }
    do {
      var configuration = Configuration()
      configuration.busyMode = .timeout(10)
      configuration.prepareDatabase { db in
        try db.execute(sql: "PRAGMA foreign_keys = ON")
      }
      if access == .readOnly {
        configuration.readonly = true
        queue = try Self.openReadOnly(url, configuration, writableStorage: writableStorage)
        return
      }
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      let queue = try DatabaseQueue(path: url.path, configuration: configuration)
      try Self.retryingOtherOpeners {
        try queue.writeWithoutTransaction { db in
          // WAL: readers (`sambatch status`, sqlite3) never block the writer; NORMAL sync keeps every
          // committed transaction through a killed process (only power loss can lose the last ones).
          try db.execute(sql: "PRAGMA journal_mode = WAL")
          try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        try StoreSchema.migrator.migrate(queue)
      }
      self.queue = queue
    } catch let error as SAMBatchError {
      throw error
    } catch {
      throw SAMBatchError.store(
        database: url.path, message: "cannot open the database (\(storeCause(error)))")
    }
  }

  /// Runs started together on a new database (two `run`s launched at once) all set it up at
  /// once. GRDB reads the applied migrations before its write transaction, so a later opener can
  /// fail on what the first created ("duplicate column name", "already exists"), and SQLite answers
  /// "database is locked" at once, without waiting, to a reader that wants to write while another
  /// writes. Both only mean another opener got there first: each step commits on its own, so trying
  /// again goes on from where it got to. Any other error is thrown at once, and these after about
  /// 3 seconds of trying.
  private static func retryingOtherOpeners(_ body: () throws -> Void) throws {
    var attempt = 1
    while true {
      do {
        return try body()
      } catch let error as DatabaseError where attempt < 100 && isAnotherOpenersWork(error) {
        attempt += 1
        usleep(UInt32.random(in: 10_000...50_000))
      }
    }
  }

  private static func isAnotherOpenersWork(_ error: DatabaseError) -> Bool {
    if error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED { return true }
    let message = error.message ?? ""
    return message.contains("duplicate column name") || message.contains("already exists")
  }

  /// A WAL database needs its -shm side file even to be read; on storage we cannot write (a
  /// read-only mount, a folder without write permission) SQLite's `immutable` mode reads the file
  /// as it is, which is right for a finished job's database nobody is writing.
  private static func openReadOnly(_ url: URL, _ configuration: Configuration, writableStorage: Bool?) throws
    -> DatabaseQueue
  {
    let folder = url.deletingLastPathComponent().path
    let writable = writableStorage ?? (access(folder, W_OK) == 0 && access(url.path, W_OK) == 0)
    if writable {
      // A database an older version wrote is brought up to date first (its own run would).
      let writer = try DatabaseQueue(path: url.path)
      if try !writer.read(StoreSchema.migrator.hasCompletedMigrations) {
        try StoreSchema.migrator.migrate(writer)
      }
      try writer.close()
      return try DatabaseQueue(path: url.path, configuration: configuration)
    }
    let hasLiveWAL =
      FileManager.default.fileExists(atPath: url.path + "-wal")
      && ((try? FileManager.default.attributesOfItem(atPath: url.path + "-wal")[.size] as? Int) ?? 0) > 0
    if hasLiveWAL {
      throw SAMBatchError.store(
        database: url.path,
        message:
          "it is on storage this process cannot write to, and its write-ahead log (\(url.lastPathComponent)-wal) "
          + "still holds results: open it once where it is writable (any `sambatch status` does) to fold them in"
      )
    }
    var components = URLComponents()
    components.scheme = "file"
    components.path = url.path
    components.queryItems = [URLQueryItem(name: "immutable", value: "1")]
    let queue = try DatabaseQueue(path: components.string ?? url.path, configuration: configuration)
    if try !queue.read(StoreSchema.migrator.hasCompletedMigrations) {
      throw SAMBatchError.store(
        database: url.path,
        message:
          "an older version of sambatch wrote it and it is on storage this process cannot write to: open it once "
          + "where it is writable (any `sambatch status` brings it up to date)")
    }
    return queue
  }

  func wrap<T>(_ what: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let error as SAMBatchError { throw error } catch {
      throw SAMBatchError.store(database: url.path, message: "\(what) failed (\(storeCause(error)))")
    }
  }

  /// Closes the connection now (checkpointing the WAL), rather than whenever the last pipeline
  /// closure lets go of the store, so that the database is quiet once a run returns.
  public func close() {
    try? queue.close()
  }

  // MARK: The job and its plan

  public func jobRecord() throws -> JobRecord? {
    try wrap("reading the job row") {
      try queue.read { db in try Self.jobRecord(db) }
    }
  }

  static func jobRecord(_ db: Database) throws -> JobRecord? {
    guard let row = try Row.fetchOne(db, sql: "SELECT * FROM jobs WHERE id = 1") else { return nil }
    return JobRecord(
      jobFile: row["job_file"], modelPath: row["model_path"], modelSHA256: row["model_sha256"],
      modelKind: row["model_kind"], manifestSHA256: row["manifest_sha256"], settings: row["settings"],
      shard: Shard(index: row["shard_index"], count: row["shard_count"]), imageCount: row["image_count"])
  }

  /// The manifests' sizes and modification times the plan was last checked against.
  public func manifestStats() throws -> String? {
    try wrap("reading the job row") {
      try queue.read { db in try String.fetchOne(db, sql: "SELECT manifest_stats FROM jobs WHERE id = 1") }
    }
  }

  func setManifestStats(_ stats: String?) throws {
    try wrap("recording the manifests' sizes") {
      try queue.write { db in
        try db.execute(sql: "UPDATE jobs SET manifest_stats = ? WHERE id = 1", arguments: [stats])
      }
    }
  }

  /// Every image the store holds, in job order.
  public func images() throws -> [ImageRecord] {
    try wrap("listing the images") {
      try queue.read { db in
        try Row.fetchAll(
          db,
          sql: """
            SELECT id, path, source_image_id, status, error, prompt_count, width, height, prompts_sha256
            FROM images ORDER BY id
            """
        ).map { row in
          ImageRecord(
            id: row["id"], path: row["path"], sourceImageId: row["source_image_id"],
            status: ImageStatus(rawValue: row["status"]) ?? .failed, error: row["error"],
            promptCount: row["prompt_count"], width: row["width"], height: row["height"],
            promptsSHA256: row["prompts_sha256"])
        }
      }
    }
  }

  /// Writes the plan of a job: the job row, its images as pending and its manifest problems, in
  /// one transaction, so a killed first run leaves either nothing or a complete plan. `replace`
  /// first deletes whatever the database held (a plan that has produced no result yet).
  func writePlan(job: JobRecord, images: [ImagePlan], problems: [ManifestProblemRecord], replace: Bool) throws
  {
    try wrap("writing the job plan") {
      try queue.inTransaction(.immediate) { db in
        if replace {
          for table in ["masks", "prompts", "images", "manifest_problems", "jobs"] {
            try db.execute(sql: "DELETE FROM \(table)")
          }
        } else if try Self.jobRecord(db) != nil {
          // Another process planned the job between our look and this transaction: its plan is
          // the same one (the caller compares it next).
          return .rollback
        }
        try db.execute(
          sql: """
            INSERT INTO jobs (id, job_file, model_path, model_sha256, model_kind, manifest_sha256, settings,
              shard_index, shard_count, image_count, created_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
          arguments: [
            job.jobFile, job.modelPath, job.modelSHA256, job.modelKind, job.manifestSHA256, job.settings,
            job.shard.index, job.shard.count, job.imageCount, timestamp(),
          ])
        try Self.insert(images, db)
        try Self.insert(problems, db)
        return .commit
      }
    }
  }

  /// Follows a change of the manifests that keeps the done work: `added` images are planned as
  /// pending, `changed` ones (their prompts differ) lose their results and become pending again,
  /// the manifest problems are replaced, and the job row takes the new manifests' fingerprint.
  func extendPlan(
    job: JobRecord, added: [ImagePlan], changed: [ImagePlan], problems: [ManifestProblemRecord]?
  ) throws {
    try wrap("updating the job plan") {
      try queue.inTransaction(.immediate) { db in
        try Self.insert(added, db)
        for image in changed {
          try db.execute(sql: "DELETE FROM masks WHERE image_id = ?", arguments: [image.id])
          try db.execute(sql: "DELETE FROM prompts WHERE image_id = ?", arguments: [image.id])
          try db.execute(
            sql: """
              UPDATE images SET status = 'pending', error = NULL, prompt_count = ?, below_min_score = ?,
                prompts_sha256 = ?, source_image_id = ?, width = NULL, height = NULL, exif_applied = NULL,
                read_ms = NULL, wait_ms = NULL, embed_ms = NULL, predict_ms = NULL, total_ms = NULL,
                run_id = NULL, finished_at = NULL
              WHERE id = ?
              """,
            arguments: [
              image.promptCount, image.belowMinScore, image.promptsSHA256, image.sourceImageId, image.id,
            ])
        }
        if let problems {
          try db.execute(sql: "DELETE FROM manifest_problems")
          try Self.insert(problems, db)
        }
        try db.execute(
          sql: "UPDATE jobs SET manifest_sha256 = ?, image_count = MAX(image_count, ?) WHERE id = 1",
          arguments: [job.manifestSHA256, job.imageCount])
        return .commit
      }
    }
  }

  private static func insert(_ images: [ImagePlan], _ db: Database) throws {
    let insert = try db.makeStatement(
      sql: """
        INSERT INTO images (id, path, source_image_id, status, prompt_count, below_min_score, prompts_sha256)
        VALUES (?, ?, ?, 'pending', ?, ?, ?)
        """)
    for image in images {
      try insert.execute(arguments: [
        image.id, image.path, image.sourceImageId, image.promptCount, image.belowMinScore,
        image.promptsSHA256,
      ])
    }
  }

  private static func insert(_ problems: [ManifestProblemRecord], _ db: Database) throws {
    let insert = try db.makeStatement(
      sql: "INSERT INTO manifest_problems (file, line, message) VALUES (?, ?, ?)")
    for p in problems { try insert.execute(arguments: [p.file, p.line, p.message]) }
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

  // MARK: Runs

  /// Records a run, unless another process is running this job: then throws
  /// `SAMBatchError.busy` naming it. A run whose process is gone (same host, pid no longer alive;
  /// or no sign of life for `staleAfter` seconds) is closed and taken over. Atomic: of two runs
  /// started together, one records itself and the other sees it.
  func startRun(
    host: String, pid: Int, version: String, workers: Int, modelPath: String,
    staleAfter: TimeInterval = 600, isAlive: (Int) -> Bool = processIsAlive
  ) throws -> (id: Int, tookOver: [RunRecord]) {
    try wrap("recording the run") {
      try queue.writeWithoutTransaction { db in
        var runId = 0
        var tookOver: [RunRecord] = []
        try db.inTransaction(.immediate) {
          for run in try Self.openRuns(db) {
            let heartbeat =
              run.heartbeatAt.flatMap(parseTimestamp) ?? parseTimestamp(run.startedAt) ?? .distantPast
            let alive =
              run.host == host && run.pid != nil
              ? isAlive(run.pid!) && run.pid! != pid : Date().timeIntervalSince(heartbeat) < staleAfter
            if alive {
              throw SAMBatchError.busy(database: url.path, host: run.host, pid: run.pid, since: run.startedAt)
            }
            try db.execute(
              sql: "UPDATE runs SET ended_at = ?, end_reason = ? WHERE id = ?",
              arguments: [
                run.heartbeatAt ?? run.startedAt,
                "stopped without closing the run (taken over by a later run)", run.id,
              ])
            tookOver.append(run)
          }
          let now = timestamp()
          try db.execute(
            sql: """
              INSERT INTO runs (started_at, host, pid, heartbeat_at, version, workers, model_path)
              VALUES (?, ?, ?, ?, ?, ?, ?)
              """,
            arguments: [now, host, pid, now, version, workers, modelPath])
          runId = Int(db.lastInsertedRowID)
          return .commit
        }
        return (runId, tookOver)
      }
    }
  }

  private static func openRuns(_ db: Database) throws -> [RunRecord] {
    try Row.fetchAll(db, sql: "SELECT * FROM runs WHERE ended_at IS NULL ORDER BY id").map(runRecord)
  }

  static func runRecord(_ row: Row) -> RunRecord {
    RunRecord(
      id: row["id"], startedAt: row["started_at"], endedAt: row["ended_at"], host: row["host"],
      pid: row["pid"],
      heartbeatAt: row["heartbeat_at"], version: row["version"], workers: row["workers"],
      modelPath: row["model_path"], imagesDone: row["images_done"], imagesFailed: row["images_failed"],
      endReason: row["end_reason"])
  }

  public func runs() throws -> [RunRecord] {
    try wrap("listing the runs") {
      try queue.read { db in try Row.fetchAll(db, sql: "SELECT * FROM runs ORDER BY id").map(Self.runRecord) }
    }
  }

  /// Closes a run; its image counts were kept up to date by every commit.
  func endRun(_ id: Int, reason: String) throws {
    try wrap("closing the run") {
      try queue.write { db in
        try db.execute(
          sql: "UPDATE runs SET ended_at = ?, end_reason = ? WHERE id = ?",
          arguments: [timestamp(), reason, id])
      }
    }
  }

  // MARK: Results

  /// All results of one image, its status change and the run's counts and heartbeat, in one
  /// transaction.
  func commit(_ result: ImageResult, runId: Int) throws {
    try wrap("writing the results of image \(result.imageId)") {
      try queue.write { db in
        let id = result.imageId
        try db.execute(sql: "DELETE FROM masks WHERE image_id = ?", arguments: [id])
        try db.execute(sql: "DELETE FROM prompts WHERE image_id = ?", arguments: [id])
        let prompt = try db.cachedStatement(
          sql: """
            INSERT INTO prompts (image_id, prompt_index, source_id, category_id, category, detector_score,
              box_x0, box_y0, box_x1, box_y1, points, warning, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for p in result.prompts {
          let box = p.box
          try prompt.execute(arguments: [
            id, p.promptIndex, p.sourceId, p.categoryId, p.category, p.detectorScore, box?[0], box?[1],
            box?[2],
            box?[3], p.points, p.warning, p.error,
          ])
        }
        let mask = try db.cachedStatement(
          sql: """
            INSERT INTO masks (image_id, prompt_index, mask_index, score, stability_score, area, bbox_x, bbox_y,
              bbox_w, bbox_h, rle, point_x, point_y, crop_x, crop_y, crop_w, crop_h)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for m in result.masks {
          let crop = m.cropBox
          try mask.execute(arguments: [
            id, m.promptIndex, m.maskIndex, m.score, m.stabilityScore, m.area, m.bbox[0], m.bbox[1],
            m.bbox[2],
            m.bbox[3], m.rle, m.point?[0], m.point?[1], crop?[0], crop?[1], crop?[2], crop?[3],
          ])
        }
        let now = timestamp()
        try db.execute(
          sql: """
            UPDATE images SET status = ?, error = ?, width = ?, height = ?, exif_applied = ?, read_ms = ?,
              wait_ms = ?, embed_ms = ?, predict_ms = ?, total_ms = ?, run_id = ?, finished_at = ? WHERE id = ?
            """,
          arguments: [
            result.failed == nil ? "done" : "failed", result.failed, result.width, result.height,
            result.exifApplied, result.readMs, result.waitMs, result.embedMs, result.predictMs,
            result.totalMs,
            runId, now, id,
          ])
        try db.execute(
          sql: """
            UPDATE runs SET heartbeat_at = ?, images_done = images_done + ?, images_failed = images_failed + ?
            WHERE id = ?
            """,
          arguments: [now, result.failed == nil ? 1 : 0, result.failed == nil ? 0 : 1, runId])
      }
    }
  }

  /// Marks the run alive (a long image, or many images without a commit).
  func heartbeat(runId: Int) throws {
    try wrap("recording the run's progress") {
      try queue.write { db in
        try db.execute(sql: "UPDATE runs SET heartbeat_at = ? WHERE id = ?", arguments: [timestamp(), runId])
      }
    }
  }

  // MARK: What status shows

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
        c.belowMinScore =
          try Int.fetchOne(db, sql: "SELECT COALESCE(SUM(below_min_score), 0) FROM images") ?? 0
        c.noDetections =
          try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM images WHERE status = 'done' AND prompt_count = 0")
          ?? 0
        return c
      }
    }
  }

  /// Mean per-stage times (ms) over the done images, nil when none is done.
  public func meanTimings() throws -> MeanTimings? {
    try wrap("reading timings") {
      try queue.read { db in
        guard
          let row = try Row.fetchOne(
            db,
            sql: """
              SELECT AVG(read_ms) AS r, AVG(wait_ms) AS w, AVG(embed_ms) AS e, AVG(predict_ms) AS p,
                AVG(total_ms) AS t
              FROM images WHERE status = 'done' AND embed_ms IS NOT NULL
              """), let total = row["t"] as Double?
        else { return nil }
        return MeanTimings(
          read: (row["r"] as Double?) ?? 0, wait: (row["w"] as Double?) ?? 0,
          embed: (row["e"] as Double?) ?? 0,
          predict: (row["p"] as Double?) ?? 0, total: total)
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

  /// The first `limit` manifest problems, in the order they were found.
  public func manifestProblems(limit: Int) throws -> [ManifestProblemRecord] {
    try wrap("listing manifest problems") {
      try queue.read { db in
        try Row.fetchAll(
          db, sql: "SELECT file, line, message FROM manifest_problems ORDER BY id LIMIT ?", arguments: [limit]
        ).map { ManifestProblemRecord(file: $0["file"], line: $0["line"], message: $0["message"]) }
      }
    }
  }
}

/// SQLite's own words for an error, without GRDB's wrapping of the statement and arguments.
func storeCause(_ error: Error) -> String {
  if let db = error as? DatabaseError {
    return db.message.map { "SQLite error \(db.resultCode.rawValue): \($0)" } ?? "\(db)"
  }
  return "\(error)"
}

/// Whether a process with this id exists on this machine.
func processIsAlive(_ pid: Int) -> Bool {
  guard pid > 0, let id = Int32(exactly: pid) else { return false }
  return kill(id, 0) == 0 || errno == EPERM
}

/// UTC time as ISO 8601 with milliseconds ("2026-11-29T14:40:00.123Z").
func timestamp() -> String {
  Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
}

func parseTimestamp(_ text: String) -> Date? {
  try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)
}
