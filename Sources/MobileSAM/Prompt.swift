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
