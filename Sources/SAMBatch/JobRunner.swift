import Foundation
import SAMTensor

public enum SAMBatchVersion {
  public static let current = "0.1.0"
}

/// Options of one `sambatch run` beyond the job file.
public struct RunOptions: Sendable {
  public var shard: Shard = .whole
  public var retryFailed = false
  /// Where to write instead of the job's database (the default for a shard is
  /// `<database stem>.shard-I-of-N.<ext>` beside it).
  public var database: URL?
  /// Images read ahead of the encoder and results waiting for the writer, in all: bounds memory.
  public var inFlight = 3
  /// How the compute threads are used; nil: side by side, or taking turns for everything jobs
  /// (Pipeline.run).
  public var threadPlan: ThreadPlan?
  /// Set from a signal handler: the run reads no new image, finishes the ones in flight, records
  /// its end and returns.
  public var stop = StopRequest()

  public init() {}
}

/// How a run uses its `workers` compute threads (README, "Benchmark").
public enum ThreadPlan: String, Sendable, CaseIterable {
  /// The model's calls take turns, each on all the threads; reading, RLE and writing overlap them.
  case takeTurns = "turns"
  /// Each worker takes whole images, one compute thread each; the last images' loops split over
  /// the threads the finished workers leave (the default for prompted jobs).
  case sideBySide = "side-by-side"

  /// The plan a job runs with: `given`, else side by side, except for everything jobs, which take
  /// turns: an everything image holds far more memory than a prompted one, and two at once peaked
  /// at 857 MB against 519 MB taking turns for a 6% gain (README, "Thread plan").
  static func chosen(_ given: ThreadPlan?, for job: JobFile) -> ThreadPlan {
    given ?? (job.everything == nil ? .sideBySide : .takeTurns)
  }
}

/// A request to stop a run early, with the reason recorded in the run's row.
public final class StopRequest: @unchecked Sendable {
  private let lock = NSLock()
  private var _reason: String?

  public init() {}

  /// Returns false when a stop was requested already (a second Ctrl-C).
  @discardableResult
  public func stop(reason: String) -> Bool {
    lock.withLock {
      guard _reason == nil else { return false }
      _reason = reason
      return true
    }
  }

  public var reason: String? { lock.withLock { _reason } }
}

/// Progress after each written image.
public struct RunProgress: Sendable {
  public var processed: Int
  public var failed: Int
  public var toDo: Int
  public var masks: Int
  public var elapsed: TimeInterval
}

/// What a run did, and what the job's database holds now.
public struct RunSummary: Sendable {
  public var database: URL
  public var nothingToDo: Bool
  public var processed: Int
  public var failedThisRun: Int
  public var seconds: Double
  public var counts: StatusCounts
  /// Images of the whole job (this run's shard may hold fewer).
  public var jobImages: Int
  /// Why the run stopped before the end (a signal), nil when it ran to the end.
  public var interrupted: String? = nil
  /// The first few manifest problems (all of them are in `manifest_problems`).
  public var problems: [ManifestProblemRecord] = []

  /// 0 when every image and prompt went through, 2 when some failed or were rejected (the job
  /// still ran to the end); errors that stop the job exit with 1 from the command line.
  public var exitStatus: Int32 {
    counts.failed > 0 || counts.rejectedPrompts > 0 || counts.manifestProblems > 0 ? 2 : 0
  }
}

/// Runs a job: plans it into the store (first run), then processes every image not yet done
/// through a pipeline of Dispatch queues: read + prepare, encode, decode + post-process, write.
/// The model comes from `model`, a file or anything else that makes a `Segmenter`.
public struct JobRunner: Sendable {
  public let job: JobFile
  public let model: any SegmenterSource
  public let options: RunOptions
  public let log: @Sendable (String) -> Void
  public let progress: @Sendable (RunProgress) -> Void

  public init(
    job: JobFile, model: any SegmenterSource, options: RunOptions, log: @escaping @Sendable (String) -> Void,
    progress: @escaping @Sendable (RunProgress) -> Void = { _ in }
  ) {
    self.job = job
    self.model = model
    self.options = options
    self.log = log
    self.progress = progress
  }

  /// Manifest problems a summary lists; the rest are counted and queried from the database.
  public static let problemsShown = 5

  /// The database this run writes.
  public var databaseURL: URL { options.database ?? options.shard.database(for: job.database) }

  /// The settings that change results, as stable JSON: the images folder is one of them, since
  /// the manifests name images relative to it (the same names in another folder are other images).
  /// It is recorded relative to the job file when it lies below it, so a project folder moved or
  /// mounted elsewhere (a cluster's nodes, a shard on another machine) is still the same job.
  var settingsJSON: String {
    let minScore = job.prompts.minScore.map { "\($0)" } ?? "null"
    let base = job.url.deletingLastPathComponent().standardizedFileURL.path
    let folder = job.images.standardizedFileURL.path
    let relative =
      folder == base ? "." : folder.hasPrefix(base + "/") ? String(folder.dropFirst(base.count + 1)) : folder
    let images = jsonString(relative)
    return
      "{\"exif\":\(job.exif),\"images\":\(images),\"keep\":\"\(job.prompts.keep.rawValue)\",\"min_score\":\(minScore),\"multimask\":\(job.prompts.multimask)\(everythingSettings)}"
  }

  /// An everything job's parameters, as `,"everything.points_per_side":32,...` (nothing for a
  /// prompted job, so that its settings read as before).
  private var everythingSettings: String {
    guard let everything = job.everything,
      let data = try? JSONEncoder().encode(everything),
      let values = try? JSONDecoder().decode([String: Double].self, from: data)
    else { return "" }
    return values.sorted { $0.key < $1.key }.map { key, value in
      let text = value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
      return ",\"everything.\(key)\":\(text)"
    }.joined()
  }

  func record(_ plan: JobPlan, identity: ModelIdentity, modelKind: String?) -> JobRecord {
    JobRecord(
      jobFile: job.url.path, modelPath: identity.path, modelSHA256: identity.sha256, modelKind: modelKind,
      manifestSHA256: plan.manifestSHA256, settings: settingsJSON, shard: options.shard,
      imageCount: plan.planned.count)
  }

  /// Nothing is written to the database before the model has loaded and the images folder is
  /// there: a mistake in the job (a wrong model path, a wrong images folder) must not stamp it.
  /// A database whose job changed is replaced while it holds no result, kept and extended when
  /// only images and prompts were added or changed, and refused otherwise.
  public func run() throws -> RunSummary {
    let started = Date()
    let identity = try model.identify()
    let url = databaseURL
    var store =
      FileManager.default.fileExists(atPath: url.path) ? try ResultStore(url: url, access: .readWrite) : nil
    defer { store?.close() }
    // A finished job whose manifests kept their sizes and times: nothing to read, nothing to do.
    let stats = JobPlan.manifestStats(job)
    if let existing = store, let stored = try existing.jobRecord(), stats != nil,
      try existing.manifestStats() == stats, stored.settings == settingsJSON,
      stored.modelSHA256 == identity.sha256, stored.shard == options.shard,
      try existing.todo(retryFailed: options.retryFailed).isEmpty
    {
      return RunSummary(
        database: url, nothingToDo: true, processed: 0, failedThisRun: 0,
        seconds: Date().timeIntervalSince(started), counts: try existing.counts(),
        jobImages: stored.imageCount,
        problems: try existing.manifestProblems(limit: Self.problemsShown))
    }
    var plan = try JobPlan(job: job, shard: options.shard)
    if plan.images.isEmpty { throw SAMBatchError.noImages(in: job) }
    for note in plan.notes { log(note) }
    var comparison = JobPlan.Comparison.fresh
    if let existing = store, let stored = try existing.jobRecord() {
      comparison = plan.compare(
        stored: stored, storedImages: try existing.images(),
        record: record(plan, identity: identity, modelKind: nil))
      switch comparison {
      case .refused(let changes): throw SAMBatchError.jobChanged(database: url.path, changes: changes)
      case .same(let missing):
        if !missing.isEmpty {
          var grown = stored
          grown.imageCount = plan.planned.count
          try existing.extendPlan(job: grown, added: missing, changed: [], problems: nil)
          log("\(count(missing.count, "image")) of the job were missing from the database: added as pending")
        }
        try existing.setManifestStats(stats)
        if try existing.todo(retryFailed: options.retryFailed).isEmpty {
          return RunSummary(
            database: url, nothingToDo: true, processed: 0, failedThisRun: 0,
            seconds: Date().timeIntervalSince(started), counts: try existing.counts(),
            jobImages: plan.images.count, problems: try existing.manifestProblems(limit: Self.problemsShown))
        }
      default: break
      }
    }
    if plan.planned.isEmpty && store == nil {
      log("shard \(options.shard) has no images (the job has \(count(plan.images.count, "image")))")
      return RunSummary(
        database: url, nothingToDo: true, processed: 0, failedThisRun: 0,
        seconds: Date().timeIntervalSince(started), counts: StatusCounts(), jobImages: plan.images.count)
    }

    // There is work to do: the images folder and the model first, then the plan.
    try checkImagesFolder(plan)
    ComputeThreads.set(job.workers)
    let segmenter = try model.load()
    let newRecord = record(plan, identity: identity, modelKind: segmenter.modelKind)
    let target = try store ?? ResultStore(url: url, access: .create)
    store = target
    let problems = options.shard.index == 0 ? plan.problems : []
    switch comparison {
    case .fresh:
      try target.writePlan(job: newRecord, images: plan.planned, problems: problems, replace: false)
      if let written = try target.jobRecord(), written != newRecord {
        // Another run planned the job at the same moment, for a different job.
        let changes = JobPlan.changes(from: written, to: newRecord)
        if !changes.isEmpty || written.manifestSHA256 != newRecord.manifestSHA256 {
          throw SAMBatchError.jobChanged(database: url.path, changes: changes + ["the manifests changed"])
        }
      }
      if plan.belowMinScore > 0 {
        log(
          "\(count(plan.belowMinScore, "detection")) left out: score below min_score \(job.prompts.minScore ?? 0) "
            + "(images.below_min_score counts them per image)")
      }
    case .replace(let changes):
      log(
        "\(url.path) holds no results yet, so the job's plan is replaced: \(changes.joined(separator: "; "))")
      try target.writePlan(job: newRecord, images: plan.planned, problems: problems, replace: true)
    case .grown(let added, let changed, let changes):
      log(
        "\(changes.joined(separator: "; ")): \(job.everything == nil ? "adding and redoing those" : "adding them"), keeping the rest"
      )
      try target.extendPlan(
        job: newRecord, added: added, changed: changed,
        problems: options.shard.index == 0 ? plan.problems : nil)
    case .same, .refused: break
    }

    try target.setManifestStats(stats)
    let todo = try target.todo(retryFailed: options.retryFailed)
    if todo.isEmpty {
      return RunSummary(
        database: url, nothingToDo: true, processed: 0, failedThisRun: 0,
        seconds: Date().timeIntervalSince(started), counts: try target.counts(), jobImages: plan.images.count,
        problems: try target.manifestProblems(limit: Self.problemsShown))
    }
    // The pipeline keeps the prompts of the images to do; the rest of the plan is let go, and
    // what is kept is copied away from the parse's scattered blocks so that their pages go back.
    var todoImages = Dictionary(uniqueKeysWithValues: todo.map { ($0, plan.images[$0]) })
    let jobImages = plan.images.count
    let shardImages = plan.planned.count
    plan.release()
    todoImages = todoImages.mapValues { $0.unshared() }
    releaseFreedMemory()
    let (runId, tookOver) = try target.startRun(
      host: ProcessInfo.processInfo.hostName, pid: Int(ProcessInfo.processInfo.processIdentifier),
      version: SAMBatchVersion.current, workers: job.workers, modelPath: identity.path)
    for run in tookOver {
      log(
        "run \(run.id) (pid \(run.pid.map(String.init) ?? "?") on \(run.host), started \(run.startedAt)) is gone: taking over"
      )
    }
    let threads =
      job.workers == 1
      ? ""
      : ThreadPlan.chosen(options.threadPlan, for: job) == .sideBySide ? " side by side" : " taking turns"
    log(
      "\(todo.count) of \(count(shardImages, "image")) to do, \(count(job.workers, "worker"))\(threads), "
        + "database \(url.path)")
    let result: (processed: Int, failed: Int)
    do {
      result = try process(todo, images: todoImages, segmenter: segmenter, store: target, runId: runId)
    } catch {
      try? target.endRun(runId, reason: "error: \(error.localizedDescription)")
      throw error
    }
    let reason = options.stop.reason
    try target.endRun(runId, reason: reason.map { "interrupted (\($0))" } ?? "finished")
    return RunSummary(
      database: url, nothingToDo: false, processed: result.processed, failedThisRun: result.failed,
      seconds: Date().timeIntervalSince(started), counts: try target.counts(), jobImages: jobImages,
      interrupted: reason, problems: try target.manifestProblems(limit: Self.problemsShown))
  }

  private func process<S: Segmenter>(
    _ todo: [Int], images: [Int: ManifestImage], segmenter: S, store: ResultStore, runId: Int
  ) throws -> (processed: Int, failed: Int) {
    try Pipeline(runner: self, segmenter: segmenter, images: images, store: store, runId: runId).run(todo)
  }

  /// The images folder must exist when a manifest names an image relative to it: otherwise every
  /// image would fail, for one mistake in the job.
  func checkImagesFolder(_ plan: JobPlan) throws {
    guard plan.planned.contains(where: { !$0.path.hasPrefix("/") }) else { return }
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: job.images.path, isDirectory: &isFolder) else {
      throw SAMBatchError.imagesFolderMissing(folder: job.images.path)
    }
    guard isFolder.boolValue else { throw SAMBatchError.imagesFolderIsFile(folder: job.images.path) }
  }
}

/// Gives the pages freed by planning back to the system: glibc keeps freed blocks for reuse (the
/// more so since `TensorMemory.reuseLargeAllocations`), and a 100,000-image manifest's parse
/// would otherwise stay resident for the whole run.
func releaseFreedMemory() {
  #if os(Linux)
    typealias Trim = @convention(c) (Int) -> Int32
    if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
  #endif
}

extension ManifestImage {
  /// A copy that shares no storage with this one. The images a run keeps were allocated while
  /// the manifest's parse tree filled the heap, a few bytes here and there among hundreds of
  /// megabytes freed since: every page holding one stays resident. Copies made after the tree is
  /// gone are packed together, and the originals' pages can then be given back.
  func unshared() -> ManifestImage {
    var copy = self
    copy.path = String(decoding: Array(path.utf8), as: UTF8.self)
    copy.objects = objects.map { object in
      var o = object
      o.sourceId = object.sourceId.map { String(decoding: Array($0.utf8), as: UTF8.self) }
      o.category = object.category.map { String(decoding: Array($0.utf8), as: UTF8.self) }
      o.box = object.box.map { box in box.map { $0 } }
      o.points = object.points.map { $0 }
      return o
    }
    return copy
  }
}
