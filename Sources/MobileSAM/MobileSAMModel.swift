import Foundation
import SAMImage

// TEMPORARY API declaration so the CLI and the runner can be written against it while the model
// is ported; the bodies land with the encoder and decoder.

/// Errors a user can cause through the model API.
public enum MobileSAMError: Error, LocalizedError, Equatable {
  case invalidPrompt(index: Int, reason: String)
  case checkpoint(String)
  case notImplemented

  public var errorDescription: String? {
    switch self {
    case .invalidPrompt(let index, let reason): return "prompt \(index): \(reason)"
    case .checkpoint(let message): return message
    case .notImplemented: return "not implemented yet"
    }
  }
}

/// The per-image result of the image encoder: opaque to callers.
public struct ImageEmbedding: Sendable {
  public let originalWidth: Int
  public let originalHeight: Int
}

/// MobileSAM (vit_t) loaded from a checkpoint: `embed` once per image, then `predict` any number
/// of prompts against the embedding.
public final class MobileSAMModel: Sendable {
  public init(checkpoint: URL) throws {
    throw MobileSAMError.notImplemented
  }

  public func embed(_ image: RGBImage) -> ImageEmbedding {
    ImageEmbedding(originalWidth: image.width, originalHeight: image.height)
  }

  /// One prediction per prompt, in order. Throws `invalidPrompt` before doing any work when a
  /// prompt is invalid.
  public func predict(_ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool) throws -> [Prediction]
  {
    throw MobileSAMError.notImplemented
  }
}
