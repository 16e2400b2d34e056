import Foundation
import MobileSAM

/// A prompt checked against the image it is for, ready for the model.
public struct FittedPrompt: Sendable, Equatable {
  public var prompt: Prompt
  /// The box given to the model (corners in pixels, after clipping), nil without a box.
  public var usedBox: [Double]?
  /// A note about a change made to the input (a clipped box).
  public var warning: String?
}

/// Why a prompt cannot be used on its image; `reason` is a complete phrase naming the box or point.
public struct PromptRejection: Error, Equatable, Sendable {
  public var reason: String
}

/// The rule for prompts against the image they are for, the same for `sambatch run` (through
/// `PromptBuilder`) and `sambatch predict` (through `PredictRequest.fitted`), documented in
/// Schemas/manifests.md ("Bad geometry"):
/// - what the model itself refuses (`Prompt.validationError`, MobileSAM's check for library
///   callers: no point and no box, a non-finite coordinate, a label other than 1 or 0, x1 < x0,
///   a bad mask input) is rejected with its reason;
/// - a box with zero width or height is rejected;
/// - a box reaching outside the image is clipped to it, with a warning; a box entirely outside
///   (nothing left after clipping) is rejected;
/// - a point outside the image (x in [0, width), y in [0, height)) is rejected.
/// The model accepts boxes and points anywhere (as the reference does); this rule is the batch
/// layer's policy, so it lives here, once, and the model keeps only its preconditions.
public enum PromptGeometry {
  /// `box` holds corners (x0, y0, x1, y1) in pixels of the decoded image.
  public static func fit(
    box: [Double]?, points: [PromptPoint], maskInput: [Float]? = nil, width: Int, height: Int
  ) throws(PromptRejection) -> FittedPrompt {
    precondition(box == nil || box?.count == 4, "a box has 4 corners")
    var prompt = Prompt(
      points: points,
      box: box.map { PromptBox(x0: Float($0[0]), y0: Float($0[1]), x1: Float($0[2]), y1: Float($0[3])) },
      maskInput: maskInput)
    if let reason = prompt.validationError { throw PromptRejection(reason: reason) }
    var result = FittedPrompt(prompt: prompt)
    if let c = box {
      guard c[2] > c[0] && c[3] > c[1] else {
        throw PromptRejection(reason: "the box \(text(c)) has zero or negative area (x1 <= x0 or y1 <= y0)")
      }
      let w = Double(width)
      let h = Double(height)
      let clipped = [min(max(c[0], 0), w), min(max(c[1], 0), h), min(max(c[2], 0), w), min(max(c[3], 0), h)]
      guard clipped[2] > clipped[0] && clipped[3] > clipped[1] else {
        throw PromptRejection(reason: "the box \(text(c)) lies entirely outside the \(width)x\(height) image")
      }
      if clipped != c {
        result.warning =
          "the box \(text(c)) reaches outside the \(width)x\(height) image; clipped to \(text(clipped))"
      }
      result.usedBox = clipped
      prompt.box = PromptBox(
        x0: Float(clipped[0]), y0: Float(clipped[1]), x1: Float(clipped[2]), y1: Float(clipped[3]))
    }
    for (i, p) in points.enumerated()
    where !(p.x >= 0 && p.y >= 0 && p.x < Float(width) && p.y < Float(height)) {
      throw PromptRejection(
        reason:
          "point \(i + 1) \(text([Double(p.x), Double(p.y)], open: "(", close: ")")) lies outside the \(width)x\(height) image"
      )
    }
    result.prompt = prompt
    return result
  }

  /// `fit` for a prompt built in code (its box in corners).
  public static func fit(_ prompt: Prompt, width: Int, height: Int) throws(PromptRejection) -> FittedPrompt {
    try fit(
      box: prompt.box.map { [Double($0.x0), Double($0.y0), Double($0.x1), Double($0.y1)] },
      points: prompt.points, maskInput: prompt.maskInput, width: width, height: height)
  }

  /// "[10, 5.5, 30, 40]": integral values without a fraction, others as JSON writes them.
  static func text(_ values: [Double], open: String = "[", close: String = "]") -> String {
    let items = values.map { v -> String in
      if v.isNaN { return "NaN" }
      if v.isInfinite { return v > 0 ? "Infinity" : "-Infinity" }
      return v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : JSONWriter.number(v)
    }
    return open + items.joined(separator: ", ") + close
  }
}

/// A manifest object turned into a model prompt for an image of known size, or the reason it
/// cannot be one.
public struct PreparedPrompt: Sendable, Equatable {
  public var object: ManifestObject
  /// The prompt given to the model; nil when the object was rejected.
  public var prompt: Prompt?
  /// The box actually used (corners in pixels, after conversion and clipping).
  public var usedBox: [Double]?
  /// A note about a change made to the input (a clipped box).
  public var warning: String?
  /// Why the object was rejected.
  public var error: String?
}

/// Turns manifest objects into prompts: the box converted from the manifest's convention with the
/// decoded image size, then `PromptGeometry.fit`.
public enum PromptBuilder {
  public static func prepare(_ object: ManifestObject, width: Int, height: Int) -> PreparedPrompt {
    var result = PreparedPrompt(object: object)
    let corners = object.box.map { object.boxConvention.corners($0, width: width, height: height) }
    do throws(PromptRejection) {
      let fitted = try PromptGeometry.fit(box: corners, points: object.points, width: width, height: height)
      result.prompt = fitted.prompt
      result.usedBox = fitted.usedBox
      result.warning = fitted.warning
    } catch {
      result.error = error.reason
      if let raw = object.box, object.boxConvention != .xyxy, error.reason.hasPrefix("the box") {
        result.error! += " (written \(PromptGeometry.text(raw)) in \(object.boxConvention.rawValue))"
      }
    }
    return result
  }
}
