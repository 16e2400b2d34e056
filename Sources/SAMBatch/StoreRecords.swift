import Foundation

/// The store's rows as Swift values: one record type per table (Schemas/store.sql). The store
/// knows nothing of manifests or models; the runner turns its inputs into these.

/// What a database was written for (the `jobs` row).
public struct JobRecord: Sendable, Equatable {
  public var jobFile: String
  public var modelPath: String
  public var modelSHA256: String
  /// vit_t, vit_b, vit_l, vit_h, or "fake"; nil in a database written before it was recorded.
  public var modelKind: String?
  public var manifestSHA256: String
  /// JSON of the settings that change results (multimask, keep, min_score, exif, the images folder).
  public var settings: String
  public var shard: Shard
  public var imageCount: Int

  public init(
    jobFile: String, modelPath: String, modelSHA256: String, modelKind: String?, manifestSHA256: String,
    settings: String, shard: Shard, imageCount: Int
  ) {
    self.jobFile = jobFile
    self.modelPath = modelPath
    self.modelSHA256 = modelSHA256
    self.modelKind = modelKind
    self.manifestSHA256 = manifestSHA256
    self.settings = settings
    self.shard = shard
    self.imageCount = imageCount
  }
}

/// One invocation of `sambatch run` that had work to do (the `runs` row).
public struct RunRecord: Sendable, Equatable {
  public var id: Int
  public var startedAt: String
  public var endedAt: String?
  public var host: String
  public var pid: Int?
  public var heartbeatAt: String?
  public var version: String
  public var workers: Int
  public var modelPath: String
  public var imagesDone: Int
  public var imagesFailed: Int
  public var endReason: String?
}

/// An image as planned: its place in the job, its prompts' count and fingerprint.
public struct ImagePlan: Sendable, Equatable {
  /// The image's position in the whole job (stable across shards and merges).
  public var id: Int
  public var path: String
  public var sourceImageId: Int?
  public var promptCount: Int
  public var belowMinScore: Int
  public var promptsSHA256: String
}

public enum ImageStatus: String, Sendable {
  case pending, done, failed
}

/// The `images` row of an image as the store holds it.
public struct ImageRecord: Sendable, Equatable {
  public var id: Int
  public var path: String
  public var sourceImageId: Int?
  public var status: ImageStatus
  public var error: String?
  public var promptCount: Int
  public var width: Int?
  public var height: Int?
  /// nil in a database written before fingerprints were recorded.
  public var promptsSHA256: String?
}

/// One prompt of a processed image (the `prompts` row, without its image id).
public struct PromptRecord: Sendable, Equatable {
  public var promptIndex: Int
  public var sourceId: String?
  public var categoryId: Int?
  public var category: String?
  public var detectorScore: Double?
  /// Corners in pixels as used (after conversion and clipping).
  public var box: [Double]?
  /// `[[x, y, label], ...]` as JSON text.
  public var points: String?
  public var warning: String?
  public var error: String?
}

/// One stored mask (the `masks` row, without its image id).
public struct MaskRecord: Sendable, Equatable {
  public var promptIndex: Int
  public var maskIndex: Int
  public var score: Double
  public var stabilityScore: Double?
  public var area: Int
  /// pycocotools' toBbox: x, y, width, height.
  public var bbox: [Double]
  /// COCO compressed RLE counts (column-major).
  public var rle: String
  /// Everything jobs: the point that prompted the mask, in image pixels.
  public var point: [Double]? = nil
  /// Everything jobs: the crop the mask was found in, x, y, width, height in image pixels.
  public var cropBox: [Int]? = nil
}

/// A manifest entry that could not be read (the `manifest_problems` row).
public struct ManifestProblemRecord: Sendable, Equatable {
  public var file: String
  public var line: Int?
  public var message: String

  public init(file: String, line: Int?, message: String) {
    self.file = file
    self.line = line
    self.message = message
  }
}

/// Everything one processed image writes, committed together with its status in one
/// transaction.
public struct ImageResult: Sendable {
  public var imageId: Int
  /// Why the whole image failed; nil when it was processed.
  public var failed: String?
  public var width: Int?
  public var height: Int?
  public var exifApplied: Bool
  public var prompts: [PromptRecord] = []
  public var masks: [MaskRecord] = []
  /// Stage timings in ms: each stage's own work; `waitMs` the time spent waiting for the model.
  public var readMs: Double?
  public var waitMs: Double?
  public var embedMs: Double?
  public var predictMs: Double?
  public var totalMs: Double?

  public init(imageId: Int, exifApplied: Bool) {
    self.imageId = imageId
    self.exifApplied = exifApplied
  }
}

/// One stored mask with what an export needs of its prompt and image.
public struct ExportedMask: Sendable {
  public var imageId: Int
  public var imagePath: String
  public var width: Int
  public var height: Int
  public var prompt: PromptRecord
  public var mask: MaskRecord
}

/// A done image as an export lists it.
public struct ExportedImage: Sendable {
  public var id: Int
  public var path: String
  public var sourceImageId: Int?
  public var width: Int
  public var height: Int
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

  /// The database of this shard of a job whose database is `url`: `url` itself for the whole
  /// job, else `<stem>.shard-I-of-N.<ext>` beside it.
  public func database(for url: URL) -> URL {
    guard count > 1 else { return url }
    let ext = url.pathExtension
    let stem = url.deletingPathExtension().lastPathComponent
    let name = "\(stem).shard-\(index)-of-\(count)" + (ext.isEmpty ? "" : ".\(ext)")
    return url.deletingLastPathComponent().appendingPathComponent(name)
  }
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
  /// Detections left out for a score below min_score.
  public var belowMinScore = 0
  /// Done images that had no prompt at all (a detector found nothing: no detections is an answer).
  public var noDetections = 0
  public var total: Int { pending + done + failed }

  public init(
    pending: Int = 0, done: Int = 0, failed: Int = 0, prompts: Int = 0, rejectedPrompts: Int = 0,
    clippedPrompts: Int = 0, masks: Int = 0, manifestProblems: Int = 0, belowMinScore: Int = 0
  ) {
    self.pending = pending
    self.done = done
    self.failed = failed
    self.prompts = prompts
    self.rejectedPrompts = rejectedPrompts
    self.clippedPrompts = clippedPrompts
    self.masks = masks
    self.manifestProblems = manifestProblems
    self.belowMinScore = belowMinScore
  }
}

/// Mean per-stage times (ms) over the done images.
public struct MeanTimings: Sendable, Equatable {
  public var read: Double
  public var wait: Double
  public var embed: Double
  public var predict: Double
  public var total: Double
}
