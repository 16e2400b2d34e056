import Foundation

/// What `sambatch status` reports: the database's counts, and what the next `run` will do with
/// the job as it is now (decided by the same comparison `run` makes).
public struct JobStatus: Sendable {
  public enum NextRun: Sendable, Equatable {
    /// The database follows the job; the next run processes what is pending (or nothing).
    case upToDate
    /// The manifests grew or changed: the next run adds `added` images and redoes `redo`.
    case extends(added: Int, redo: Int)
    /// The job changed but nothing is done yet: the next run replaces the plan.
    case replaces(changes: [String])
    /// The job changed and results would be lost: the next run refuses.
    case refuses(changes: [String])
    /// The manifests cannot be read now: only the database's own counts are known.
    case unknown(reason: String)
  }

  public var database: URL
  /// The images of the job as the next run sees them (stored ones, plus those it adds or redoes).
  public var counts: StatusCounts
  public var nextRun: NextRun
  public var timings: MeanTimings?
  public var failedImages: [(path: String, error: String)]
  public var rejectedPrompts: [(path: String, index: Int, error: String)]
  /// The first few manifest problems (all of them are in the `manifest_problems` table).
  public var problems: [ManifestProblemRecord]
  /// Runs that have not ended (a run going on now, or one whose process was killed).
  public var openRuns: [RunRecord]

  public var isComplete: Bool { nextRun == .upToDate && counts.pending == 0 && counts.failed == 0 }

  /// Reads the database of `job` (its shard's, or `database`) without writing to it. `model`,
  /// when given and readable, is compared with the database's model as `run` would.
  public static func read(
    job: JobFile, shard: Shard = .whole, database: URL? = nil, model: (any SegmenterSource)?,
    listLimit: Int = 20
  ) throws -> JobStatus {
    let url = database ?? shard.database(for: job.database)
    let store = try ResultStore(url: url, access: .readOnly)
    defer { store.close() }
    guard let stored = try store.jobRecord() else {
      throw SAMBatchError.store(database: url.path, message: "it holds no job yet (has the job been run?)")
    }
    var counts = try store.counts()
    var nextRun = NextRun.upToDate
    var options = RunOptions()
    options.shard = shard
    let runner = JobRunner(
      job: job, model: model ?? StoredModel(record: stored), options: options, log: { _ in })
    let identity =
      (try? model?.identify()) ?? ModelIdentity(path: stored.modelPath, sha256: stored.modelSHA256)
    // Manifests with the sizes and times the plan was checked against are not read again.
    let stats = JobPlan.manifestStats(job)
    let unchanged =
      try stats != nil && store.manifestStats() == stats && stored.settings == runner.settingsJSON
      && stored.modelSHA256 == identity.sha256 && stored.shard == shard
    if !unchanged {
      do {
        let plan = try JobPlan(job: job, shard: shard)
        let images = try store.images()
        switch plan.compare(
          stored: stored, storedImages: images,
          record: runner.record(plan, identity: identity, modelKind: nil))
        {
        case .fresh, .same(missing: []): break
        case .same(let missing): counts.pending += missing.count
        case .grown(let added, let changed, _):
          let status = Dictionary(images.map { ($0.id, $0.status) }, uniquingKeysWith: { a, _ in a })
          for image in changed {
            if status[image.id] == .done { counts.done -= 1 }
            if status[image.id] == .failed { counts.failed -= 1 }
            if status[image.id] != .pending { counts.pending += 1 }
          }
          counts.pending += added.count
          nextRun = .extends(added: added.count, redo: changed.count)
        case .replace(let changes):
          counts = StatusCounts(pending: plan.planned.count)
          nextRun = .replaces(changes: changes)
        case .refused(let changes):
          nextRun = .refuses(changes: changes)
        }
      } catch {
        // A status must show even when the manifests are gone.
        nextRun = .unknown(reason: error.localizedDescription)
      }
    }
    let failures = try store.failures(limit: listLimit)
    return JobStatus(
      database: url, counts: counts, nextRun: nextRun, timings: try store.meanTimings(),
      failedImages: failures.images.map { (quoted($0.0), quoted($0.1, limit: 400)) },
      rejectedPrompts: failures.prompts.map { (quoted($0.0), $0.1, quoted($0.2, limit: 400)) },
      problems: try store.manifestProblems(limit: 5), openRuns: try store.runs().filter { $0.endedAt == nil })
  }
}

/// A stand-in source for `status` when no model is at hand: the database's own.
private struct StoredModel: SegmenterSource {
  var record: JobRecord
  func identify() throws -> ModelIdentity {
    ModelIdentity(path: record.modelPath, sha256: record.modelSHA256)
  }
  func load() throws -> any Segmenter { throw SAMBatchError.noModel(job: nil) }
}
