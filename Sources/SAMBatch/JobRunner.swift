import Crypto
import Dispatch
import Foundation
import MobileSAM
import SAMImage
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
  public var environment: [String: String] = ProcessInfo.processInfo.environment
  /// Images read ahead of the encoder and results waiting for the writer, in all: bounds memory.
  public var inFlight = 3

  public init() {}
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

  /// 0 when every image and prompt went through, 2 when some failed or were rejected (the job
  /// still ran to the end); errors that stop the job exit with 1 from the command line.
  public var exitStatus: Int32 {
    counts.failed > 0 || counts.rejectedPrompts > 0 || counts.manifestProblems > 0 ? 2 : 0
  }
}

/// Runs a job: plans it into the store (first run), then processes every image not yet done
/// through a pipeline of Dispatch queues: read + prepare, encode, decode + post-process, write.
public struct JobRunner: Sendable {
  public let job: JobFile
  public let options: RunOptions
  public let log: @Sendable (String) -> Void
  public let progress: @Sendable (RunProgress) -> Void

  public init(
    job: JobFile, options: RunOptions, log: @escaping @Sendable (String) -> Void,
    progress: @escaping @Sendable (RunProgress) -> Void = { _ in }
  ) {
    self.job = job
    self.options = options
    self.log = log
    self.progress = progress
  }

  /// The database this run writes.
  public var databaseURL: URL {
    if let url = options.database { return url }
    return Self.shardDatabase(job.database, shard: options.shard)
  }

  public static func shardDatabase(_ url: URL, shard: Shard) -> URL {
    guard shard.count > 1 else { return url }
    let ext = url.pathExtension
    let stem = url.deletingPathExtension().lastPathComponent
    let name = "\(stem).shard-\(shard.index)-of-\(shard.count)" + (ext.isEmpty ? "" : ".\(ext)")
    return url.deletingLastPathComponent().appendingPathComponent(name)
  }

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
      "{\"exif\":\(job.exif),\"images\":\(images),\"keep\":\"\(job.prompts.keep.rawValue)\",\"min_score\":\(minScore),\"multimask\":\(job.prompts.multimask)}"
  }

  public func run() throws -> RunSummary {
    let started = Date()
    let manifests = try LoadedManifests.load(job)
    let model = try resolveModel()
    let store = try ResultStore(url: databaseURL)
    defer { store.close() }
    let shardImages = manifests.images.enumerated().filter { options.shard.contains($0.offset) }
    let record = JobRecord(
      jobFile: job.url.path, modelPath: model.path, modelSHA256: model.sha256,
      manifestSHA256: manifests.sha256,
      settings: settingsJSON, shard: options.shard, imageCount: shardImages.count)
    let planned = shardImages.map {
      (
        id: $0.offset, path: $0.element.path, sourceImageId: $0.element.sourceImageId,
        promptCount: $0.element.objects.count
      )
    }
    if let existing = try store.jobRecord() {
      let changes = Self.changes(from: existing, to: record)
      if !changes.isEmpty { throw SAMBatchError.jobChanged(database: databaseURL.path, changes: changes) }
      // A database merged from only some shards lacks the other shards' images: plan them now.
      let added = try store.addMissing(images: planned, imageCount: shardImages.count)
      if added > 0 { log("\(added) images of the job were missing from the database: added as pending") }
    } else {
      try store.initialize(
        job: record, images: planned, problems: options.shard.index == 0 ? manifests.problems : [])
      if manifests.belowMinScore > 0 {
        log(
          "\(manifests.belowMinScore) objects left out: detector score below min_score \(job.prompts.minScore ?? 0)"
        )
      }
    }
    let todo = try store.todo(retryFailed: options.retryFailed)
    if todo.isEmpty {
      let counts = try store.counts()
      return RunSummary(
        database: databaseURL, nothingToDo: true, processed: 0, failedThisRun: 0,
        seconds: Date().timeIntervalSince(started), counts: counts)
    }
    let runId = try store.startRun(
      host: ProcessInfo.processInfo.hostName, version: SAMBatchVersion.current, workers: job.workers,
      modelPath: model.path)
    log(
      "\(todo.count) of \(shardImages.count) images to do, \(job.workers) workers, database \(databaseURL.path)"
    )
    let result: (processed: Int, failed: Int)
    switch model.kind {
    case .fake(let delay):
      result = try Pipeline(
        runner: self, segmenter: FakeSegmenter(embedDelay: delay), manifests: manifests, store: store,
        runId: runId
      )
      .run(todo)
    case .real(let url):
      configureComputeThreads(job.workers)
      let segmenter: MobileSAMModel
      do { segmenter = try MobileSAMModel(checkpoint: url) } catch {
        throw SAMBatchError.model("cannot load the model \(url.path): \(error.localizedDescription)")
      }
      result = try Pipeline(
        runner: self, segmenter: segmenter, manifests: manifests, store: store, runId: runId
      )
      .run(todo)
    }
    try store.endRun(runId, done: result.processed - result.failed, failed: result.failed)
    return RunSummary(
      database: databaseURL, nothingToDo: false, processed: result.processed, failedThisRun: result.failed,
      seconds: Date().timeIntervalSince(started), counts: try store.counts())
  }

  /// How many of this run's images (the job's, or its shard's) `store` does not hold yet: after a
  /// merge of only some shards, the others' images; `run` adds them as pending.
  public func imagesMissing(from store: ResultStore) throws -> Int {
    let manifests = try LoadedManifests.load(job)
    let present = try store.imageIds()
    return manifests.images.indices.filter { options.shard.contains($0) && !present.contains($0) }.count
  }

  static func changes(from old: JobRecord, to new: JobRecord) -> [String] {
    var changes: [String] = []
    if old.modelSHA256 != new.modelSHA256 {
      changes.append(
        "the model changed (\(old.modelPath), sha256 \(old.modelSHA256.prefix(12))... then; \(new.modelPath), sha256 \(new.modelSHA256.prefix(12))... now)"
      )
    }
    if old.manifestSHA256 != new.manifestSHA256 {
      changes.append(
        "the manifests changed (sha256 \(old.manifestSHA256.prefix(12))... then, \(new.manifestSHA256.prefix(12))... now)"
      )
    }
    if old.settings != new.settings {
      changes.append("the settings changed (\(settingsDifference(old.settings, new.settings)))")
    }
    if old.shard != new.shard {
      changes.append("it holds shard \(old.shard), this run is shard \(new.shard)")
    }
    return changes
  }

  /// "images: /a then, /b now; exif: true then, false now", or both JSON texts when they are not
  /// flat objects (a database written by another version).
  static func settingsDifference(_ old: String, _ new: String) -> String {
    func values(_ text: String) -> [String: String]? {
      (try? JSONDecoder().decode([String: SettingValue].self, from: Data(text.utf8)))?.mapValues(\.text)
    }
    guard let then = values(old), let now = values(new) else { return "\(old) then, \(new) now" }
    let keys = Set(then.keys).union(now.keys).sorted().filter { then[$0] != now[$0] }
    return keys.map { "\($0): \(then[$0] ?? "unset") then, \(now[$0] ?? "unset") now" }.joined(
      separator: "; ")
  }

  enum ModelKind {
    case real(URL)
    case fake(delay: TimeInterval)
  }

  struct ResolvedModel {
    var kind: ModelKind
    var path: String
    var sha256: String
  }

  /// `SAMBATCH_FAKE_SEGMENTER=1` (tests only) > `SAMBATCH_MODEL` > the job's `model:`.
  func resolveModel() throws -> ResolvedModel {
    let env = options.environment
    if env["SAMBATCH_FAKE_SEGMENTER"] == "1" {
      let delay = Double(env["SAMBATCH_FAKE_DELAY_MS"] ?? "0").map { $0 / 1000 } ?? 0
      log("SAMBATCH_FAKE_SEGMENTER=1: using the fake segmenter (for tests only), not a model")
      let digest = SHA256.hash(data: Data("sambatch fake segmenter v1".utf8))
      return ResolvedModel(kind: .fake(delay: delay), path: "fake-segmenter", sha256: hex(digest))
    }
    var url = job.model
    if let override = env["SAMBATCH_MODEL"], !override.isEmpty {
      url = URL(fileURLWithPath: override).standardizedFileURL
      log(
        "SAMBATCH_MODEL is set: using \(url!.path) instead of the job's model\(job.model.map { " (\($0.path))" } ?? "")"
      )
    }
    guard let url else {
      throw SAMBatchError.model("\(job.url.path): no 'model:' in the job and SAMBATCH_MODEL is not set")
    }
    return ResolvedModel(kind: .real(url), path: url.path, sha256: try Self.sha256(of: url))
  }

  static func sha256(of url: URL) throws -> String {
    guard let handle = try? FileHandle(forReadingFrom: url) else {
      throw SAMBatchError.model("cannot read the model file \(url.path)")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
      let chunk = handle.readData(ofLength: 1 << 20)
      if chunk.isEmpty { break }
      hasher.update(data: chunk)
    }
    return hex(hasher.finalize())
  }
}

/// One value of the settings JSON, as text for messages.
private struct SettingValue: Decodable {
  var text: String

  init(from decoder: Decoder) throws {
    let value = try decoder.singleValueContainer()
    if value.decodeNil() {
      text = "null"
    } else if let b = try? value.decode(Bool.self) {
      text = String(b)
    } else if let d = try? value.decode(Double.self) {
      text = "\(d)"
    } else {
      text = try value.decode(String.self)
    }
  }
}

func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
  digest.map { String(format: "%02x", $0) }.joined()
}

/// The job's workers are the compute threads in all: the model's kernels (GEMM and our parallel
/// loops) get them, since one image is encoded at a time while the other stages (reading,
/// post-processing, writing) are mostly waiting or light.
func configureComputeThreads(_ workers: Int) {
  ComputeThreads.set(workers)
}
