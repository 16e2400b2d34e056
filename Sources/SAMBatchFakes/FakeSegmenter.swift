import Foundation
import MobileSAM
import SAMBatch
import SAMImage

/// A deterministic stand-in for the model, FOR TESTS ONLY: the binary uses it when
/// `SAMBATCH_FAKE_SEGMENTER=1` (release builds too: the end-to-end, kill/resume and scale tests
/// need it), and the library never sees it. Each mask is the prompt's box (or a square around its
/// points), shrunk per mask index, and the scores are a hash of the image's pixels and the
/// prompt. Every output is a function of the inputs, so two runs agree exactly when the runner
/// feeds the same inputs, and disagree when it does not.
public struct FakeSegmenter: Segmenter {
  public struct Embedding: Sendable {
    let width: Int
    let height: Int
    let pixelHash: UInt64
  }

  /// Sleeps this long in `embed`, so that tests can kill a run mid-job.
  public var embedDelay: TimeInterval

  public init(embedDelay: TimeInterval = 0) { self.embedDelay = embedDelay }

  public var modelKind: String { "fake" }

  public func embed(_ image: RGBImage) throws -> Embedding {
    if embedDelay > 0 { Thread.sleep(forTimeInterval: embedDelay) }
    return Embedding(
      width: image.width, height: image.height, pixelHash: fnv1a(image.pixels, seed: 0xcbf2_9ce4_8422_2325))
  }

  public func predict(_ embedding: Embedding, prompts: [Prompt], multimask: Bool) throws -> [Prediction] {
    for (i, prompt) in prompts.enumerated() {
      if let reason = prompt.validationError { throw MobileSAMError.invalidPrompt(index: i, reason: reason) }
    }
    return prompts.map { predictOne(embedding, $0, multimask: multimask) }
  }

  private func predictOne(_ e: Embedding, _ prompt: Prompt, multimask: Bool) -> Prediction {
    var x0: Float
    var y0: Float
    var x1: Float
    var y1: Float
    if let b = prompt.box {
      (x0, y0, x1, y1) = (b.x0, b.y0, b.x1, b.y1)
    } else {
      let xs = prompt.points.map(\.x)
      let ys = prompt.points.map(\.y)
      (x0, y0, x1, y1) = (
        (xs.min() ?? 0) - 20, (ys.min() ?? 0) - 20, (xs.max() ?? 0) + 20, (ys.max() ?? 0) + 20
      )
    }
    var key = e.pixelHash
    for v in [x0, y0, x1, y1] {
      key = fnv1a([UInt8](withUnsafeBytes(of: v.bitPattern) { Array($0) }), seed: key)
    }
    for p in prompt.points {
      key = fnv1a([UInt8(truncatingIfNeeded: p.label)], seed: key ^ UInt64(p.x.bitPattern))
    }
    let indices = multimask ? [1, 2, 3] : [0]
    var masks: [BinaryMask] = []
    var scores: [Float] = []
    var stability: [Float?] = []
    for index in indices {
      let shrink = Float(index) * 0.08
      let mask = filledRectangle(
        width: e.width, height: e.height, x0: x0 + (x1 - x0) * shrink, y0: y0 + (y1 - y0) * shrink,
        x1: x1 - (x1 - x0) * shrink, y1: y1 - (y1 - y0) * shrink)
      masks.append(mask)
      let h = fnv1a([UInt8(index)], seed: key)
      scores.append(0.5 + Float(h % 10_000) / 20_000)
      stability.append(mask.pixels.contains(1) ? Float((h >> 20) % 10_000) / 10_000 : nil)
    }
    return Prediction(
      masks: masks, scores: scores, stabilityScores: stability,
      lowResLogits: Array(repeating: [], count: indices.count))
  }
}

extension FakeSegmenter {
  /// Everything mode: one point per cell of the parameters' grid over the whole image (no crop
  /// layers), scored by a hash of the image's pixels and the point; the points whose score passes
  /// `pred_iou_thresh` and whose stability (another hash) passes `stability_score_thresh` get a
  /// square mask around them, in grid order. Thresholds of 1 leave no mask.
  public func segmentEverything(_ image: RGBImage, parameters: EverythingParameters) throws
    -> EverythingResult
  {
    if embedDelay > 0 { Thread.sleep(forTimeInterval: embedDelay) }
    let (width, height) = (image.width, image.height)
    let pixelHash = fnv1a(image.pixels, seed: 0x84_2222_5cbf_29ce)
    var masks: [GeneratedMask] = []
    for (i, cell) in EverythingGeometry.pointGrid(parameters.pointsPerSide).enumerated() {
      let h = fnv1a([UInt8](withUnsafeBytes(of: UInt64(i)) { Array($0) }), seed: pixelHash)
      let score = 0.5 + Float(h % 10_000) / 20_000
      let stability = Float((h >> 20) % 10_000) / 10_000
      guard Double(score) > parameters.predIouThresh || parameters.predIouThresh == 0,
        Double(stability) >= parameters.stabilityScoreThresh
      else { continue }
      let (x, y) = (cell.x * Double(width), cell.y * Double(height))
      let radius = 1 + Int((h >> 40) % UInt64(max(1, min(width, height) / 4)))
      let box = PixelBox(
        x0: max(0, Int(x) - radius), y0: max(0, Int(y) - radius), x1: min(width - 1, Int(x) + radius),
        y1: min(height - 1, Int(y) + radius))
      var pixels = [UInt8](repeating: 0, count: width * height)
      for row in box.y0...box.y1 {
        for column in box.x0...box.x1 { pixels[row * width + column] = 1 }
      }
      masks.append(
        GeneratedMask(
          runs: MaskRLE.runs(of: BinaryMask(width: width, height: height, pixels: pixels)), box: box,
          predictedIou: score, stabilityScore: stability, pointX: x, pointY: y,
          cropBox: PixelBox(x0: 0, y0: 0, x1: width, y1: height)))
    }
    return EverythingResult(width: width, height: height, masks: masks, timings: EverythingTimings())
  }
}

/// The fake as a runner's model source; `embedDelay` as `SAMBATCH_FAKE_DELAY_MS` sets it.
public struct FakeSegmenterSource: SegmenterSource {
  public var embedDelay: TimeInterval
  /// What the database records as the model's SHA-256: tests change it to play a changed model.
  public var sha256: String

  /// SHA-256 of "sambatch fake segmenter v1".
  public static let defaultSHA256 = "18414c4fa55977af416652741150a6d6b35f3d452f3f1087de524b45ed32fb62"

  public init(embedDelay: TimeInterval = 0, sha256: String = defaultSHA256) {
    self.embedDelay = embedDelay
    self.sha256 = sha256
  }

  /// `SAMBATCH_FAKE_SEGMENTER=1` (with `SAMBATCH_FAKE_DELAY_MS`) asks for the fake; nil otherwise.
  public init?(environment: [String: String]) {
    guard environment["SAMBATCH_FAKE_SEGMENTER"] == "1" else { return nil }
    let delay = Double(environment["SAMBATCH_FAKE_DELAY_MS"] ?? "0").map { $0 / 1000 } ?? 0
    self.init(embedDelay: delay)
  }

  public func identify() throws -> ModelIdentity { ModelIdentity(path: "fake-segmenter", sha256: sha256) }
  public func load() throws -> any Segmenter { FakeSegmenter(embedDelay: embedDelay) }
}

/// A mask with the pixels whose centres lie inside the rectangle set.
func filledRectangle(width: Int, height: Int, x0: Float, y0: Float, x1: Float, y1: Float) -> BinaryMask {
  var pixels = [UInt8](repeating: 0, count: width * height)
  let c0 = max(0, Int((x0 - 0.5).rounded(.up)))
  let c1 = min(width - 1, Int((x1 - 0.5).rounded(.down)))
  let r0 = max(0, Int((y0 - 0.5).rounded(.up)))
  let r1 = min(height - 1, Int((y1 - 0.5).rounded(.down)))
  if c0 <= c1 && r0 <= r1 {
    for r in r0...r1 {
      let row = r * width
      for c in c0...c1 { pixels[row + c] = 1 }
    }
  }
  return BinaryMask(width: width, height: height, pixels: pixels)
}

/// FNV-1a, 64 bits.
func fnv1a(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
  var h = seed
  for b in bytes {
    h ^= UInt64(b)
    h = h &* 0x100_0000_01b3
  }
  return h
}
