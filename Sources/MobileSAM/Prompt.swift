import SAMImage

/// One point of a prompt, in original image pixel coordinates.
public struct PromptPoint: Sendable, Equatable, Codable {
  public var x: Float
  public var y: Float
  /// 1 = foreground, 0 = background.
  public var label: Int

  public init(x: Float, y: Float, label: Int) {
    self.x = x
    self.y = y
    self.label = label
  }
}

/// A box in original image pixel coordinates, corners (x0, y0) top-left and (x1, y1) bottom-right.
public struct PromptBox: Sendable, Equatable, Codable {
  public var x0: Float
  public var y0: Float
  public var x1: Float
  public var y1: Float

  public init(x0: Float, y0: Float, x1: Float, y1: Float) {
    self.x0 = x0
    self.y0 = y0
    self.x1 = x1
    self.y1 = y1
  }
}

/// One object to segment: any number of points, at most one box, and optionally the 256x256
/// low-resolution logits of an earlier prediction as mask input. Mirrors one call of the
/// reference's `SamPredictor.predict`.
public struct Prompt: Sendable, Equatable {
  public var points: [PromptPoint]
  public var box: PromptBox?
  /// 256 * 256 logits, row-major, or nil.
  public var maskInput: [Float]?

  public init(points: [PromptPoint] = [], box: PromptBox? = nil, maskInput: [Float]? = nil) {
    self.points = points
    self.box = box
    self.maskInput = maskInput
  }
}

/// A binary mask at original image resolution, row-major, one byte per pixel (0 or 1).
public struct BinaryMask: Sendable, Equatable {
  public let width: Int
  public let height: Int
  public var pixels: [UInt8]

  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(pixels.count == width * height)
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}

/// The result of one prompt, masks in the reference's order (multimask: decoder masks 1-3,
/// otherwise mask 0).
public struct Prediction: Sendable {
  public var masks: [BinaryMask]
  /// Predicted IoU per mask.
  public var scores: [Float]
  /// Stability score per mask, as the reference's automatic mask generator computes it on the
  /// logits at original size with offset 1.0; nil where undefined (no pixel above threshold - 1).
  public var stabilityScores: [Float?]
  /// 256 * 256 logits per mask, row-major.
  public var lowResLogits: [[Float]]

  public init(masks: [BinaryMask], scores: [Float], stabilityScores: [Float?], lowResLogits: [[Float]]) {
    self.masks = masks
    self.scores = scores
    self.stabilityScores = stabilityScores
    self.lowResLogits = lowResLogits
  }
}

extension Prompt {
  /// Why this prompt cannot be decoded, or nil when it can. Checked before any work is done.
  /// These are the model's preconditions only; where a prompt lies relative to the image is a
  /// caller's policy (the model, like the reference, accepts boxes and points anywhere). The
  /// batch layer's rule (clip a box reaching outside the image, refuse one entirely outside and
  /// points outside) is SAMBatch's `PromptGeometry`, which calls this first.
  public var validationError: String? {
    if points.isEmpty && box == nil { return "the prompt has no point and no box" }
    for (i, p) in points.enumerated() {
      if !p.x.isFinite || !p.y.isFinite {
        return "point \(i + 1) has a non-finite coordinate (\(p.x), \(p.y))"
      }
      if p.label != 0 && p.label != 1 {
        return "point \(i + 1) has label \(p.label); labels are 1 (foreground) or 0 (background)"
      }
    }
    if let b = box {
      if ![b.x0, b.y0, b.x1, b.y1].allSatisfy(\.isFinite) {
        return "the box (\(b.x0), \(b.y0), \(b.x1), \(b.y1)) has a non-finite coordinate"
      }
      if b.x1 < b.x0 || b.y1 < b.y0 {
        return "the box (\(b.x0), \(b.y0), \(b.x1), \(b.y1)) has x1 < x0 or y1 < y0"
      }
    }
    if let m = maskInput {
      if m.count != 256 * 256 { return "the mask input has \(m.count) values; it must be 256x256" }
      if !m.allSatisfy(\.isFinite) { return "the mask input holds a non-finite value" }
    }
    return nil
  }
}
