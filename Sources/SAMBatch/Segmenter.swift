import Foundation
import MobileSAM
import SAMImage
import SAMTensor

/// What the runner needs from a model: embed an image once, then decode any number of prompts
/// against the embedding. `MobileSAMModel` is the real one; the test suite brings its own.
public protocol Segmenter: Sendable {
  associatedtype Embedding: Sendable
  /// The model family recorded with the job: vit_t (MobileSAM), vit_b, vit_l or vit_h.
  var modelKind: String { get }
  func embed(_ image: RGBImage) throws -> Embedding
  /// One prediction per prompt, in order.
  func predict(_ embedding: Embedding, prompts: [Prompt], multimask: Bool) throws -> [Prediction]
  /// The masks of `prompts` at original size, each turned by `encode` into what the caller keeps
  /// (its RLE row) as soon as it is made, in order (prompt, then mask): `wanted` picks from a
  /// prompt's scores which of its masks to make. A full-size mask lives only until it is encoded,
  /// so a call holds one per compute thread, not prompts x 3 (48 masks of a 13000 x 13000 image
  /// are 8 GB). `encode` may run on several threads at once, for different masks. Throws
  /// `invalidPrompt` before encoding anything.
  func predictMasks<Encoded: Sendable>(
    _ embedding: Embedding, prompts: [Prompt], multimask: Bool, wanted: ([Float]) -> [Int],
    encode: @Sendable (MadeMask) -> Encoded
  ) throws -> [Encoded]
  /// Every object of the image without prompts (the automatic mask generator, "everything"
  /// mode), with the time spent embedding (all crops) and decoding and post-processing. The
  /// parameters were checked (`EverythingParameters.problems`).
  func segmentEverything(_ image: RGBImage, parameters: EverythingParameters) throws -> EverythingResult
}

extension Segmenter {
  /// For test segmenters that only answer prompts.
  public func segmentEverything(_ image: RGBImage, parameters: EverythingParameters) throws
    -> EverythingResult
  {
    throw SAMBatchError.prediction("the \(modelKind) segmenter has no everything mode")
  }
}

/// One mask of `Segmenter.predictMasks`.
public struct MadeMask: Sendable {
  /// The prompt's position in the call's `prompts`.
  public var promptIndex: Int
  /// The mask's position in the prompt's masks (as in `Prediction.masks`).
  public var maskIndex: Int
  public var mask: BinaryMask
  public var score: Float
  public var stabilityScore: Float?
}

extension Segmenter {
  /// Through `predict`: every mask of the call is alive at once. Fine for small images (fakes).
  public func predictMasks<Encoded: Sendable>(
    _ embedding: Embedding, prompts: [Prompt], multimask: Bool, wanted: ([Float]) -> [Int],
    encode: @Sendable (MadeMask) -> Encoded
  ) throws -> [Encoded] {
    try predict(embedding, prompts: prompts, multimask: multimask).enumerated().flatMap { p, prediction in
      wanted(prediction.scores).map { i in
        encode(
          MadeMask(
            promptIndex: p, maskIndex: i, mask: prediction.masks[i], score: prediction.scores[i],
            stabilityScore: prediction.stabilityScores[i]))
      }
    }
  }
}

/// The bytes of masks at a photo's size that may be alive at once when they are made side by side
/// (`predictMasks`, everything mode): above it they take turns, each on all threads.
let sideBySideMaskBytes = 256 << 20

extension MobileSAMModel: Segmenter {
  public typealias Embedding = ImageEmbedding
  public var modelKind: String { kind.rawValue }

  public func segmentEverything(_ image: RGBImage, parameters: EverythingParameters) throws
    -> EverythingResult
  {
    try AutomaticMaskGenerator(model: self, parameters: parameters).generate(image)
  }

  /// Low-resolution logits for all the prompts (256 KB a mask), then the wanted masks at original
  /// size side by side, one per thread (SAMTensor's `sideBySide`, the same bits as one at a time),
  /// each encoded before its thread makes the next. Masks of huge images take turns instead, so
  /// that those alive at once hold at most `sideBySideMaskBytes` (a 13000 x 13000 mask is 169 MB).
  public func predictMasks<Encoded: Sendable>(
    _ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool, wanted: ([Float]) -> [Int],
    encode: @Sendable (MadeMask) -> Encoded
  ) throws -> [Encoded] {
    let decoded = try predictLowRes(embedding, prompts: prompts, multimask: multimask, coverage: .masksOnly)
    let masks = decoded.indices.flatMap { p in wanted(decoded[p].scores).map { (prompt: p, index: $0) } }
    let maskBytes = max(1, embedding.originalWidth * embedding.originalHeight)
    return sideBySideMap(masks.count, atMost: sideBySideMaskBytes / maskBytes) { k in
      let (p, i) = masks[k]
      let made = mask(decoded[p], index: i, embedding: embedding)
      return encode(
        MadeMask(
          promptIndex: p, maskIndex: i, mask: made.mask, score: decoded[p].scores[i],
          stabilityScore: made.stabilityScore))
    }
  }
}

/// What a model is, as the job's database records it, known before the model is loaded.
public struct ModelIdentity: Sendable, Equatable {
  public var path: String
  public var sha256: String

  public init(path: String, sha256: String) {
    self.path = path
    self.sha256 = sha256
  }
}

/// Where a runner gets its model: who it is (cheap, for the database's checks) and, only when
/// there is work to do, the loaded model.
public protocol SegmenterSource: Sendable {
  func identify() throws -> ModelIdentity
  func load() throws -> any Segmenter
}

/// A MobileSAM checkpoint file (`mobile_sam.pt`).
public struct CheckpointSource: SegmenterSource {
  public let url: URL

  public init(url: URL) { self.url = url }

  public func identify() throws -> ModelIdentity {
    ModelIdentity(path: url.path, sha256: try Self.sha256(of: url))
  }

  public func load() throws -> any Segmenter {
    do { return try MobileSAMModel(checkpoint: url) } catch {
      throw SAMBatchError.model(path: url.path, cause: error.localizedDescription)
    }
  }

  /// Hashed once per version of the file, then remembered (see `ModelDigests`).
  static func sha256(of url: URL) throws -> String { try ModelDigests.standard.sha256(of: url) }
}

/// The model file a command uses, and why: `--model` > `SAMBATCH_MODEL` > the job's `model:`.
public struct ModelPath: Sendable, Equatable {
  public var url: URL
  /// A line to print when the environment overrides the job's model, else nil.
  public var note: String?

  /// Throws `SAMBatchError.noModel` when none of the three is given.
  public static func resolve(option: String?, job: JobFile?, environment: [String: String]) throws
    -> ModelPath
  {
    if let option, !option.isEmpty { return ModelPath(url: URL(fileURLWithPath: option).standardizedFileURL) }
    if let override = environment["SAMBATCH_MODEL"], !override.isEmpty {
      let url = URL(fileURLWithPath: override).standardizedFileURL
      let note = job.map {
        "SAMBATCH_MODEL is set: using \(url.path)"
          + ($0.model.map { " instead of the job's model (\($0.path))" } ?? "")
      }
      return ModelPath(url: url, note: note)
    }
    if let model = job?.model { return ModelPath(url: model) }
    throw SAMBatchError.noModel(job: job?.url.path)
  }
}

func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
  digest.map { String(format: "%02x", $0) }.joined()
}
