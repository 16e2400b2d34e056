import Foundation
import MobileSAM

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

/// Turns manifest objects into prompts. The rule for bad geometry (documented in
/// Schemas/manifests.md):
/// - a box or point with a non-finite value is rejected;
/// - a box with zero or negative width or height (after conversion) is rejected;
/// - a box reaching outside the image is clipped to it, with a warning; one entirely outside
///   (nothing left after clipping) is rejected;
/// - a point outside the image (x in [0, width), y in [0, height)) is rejected; labels are 1 or 0.
public enum PromptBuilder {
  public static func prepare(_ object: ManifestObject, width: Int, height: Int) -> PreparedPrompt {
    var result = PreparedPrompt(object: object)
    if let error = object.error {
      result.error = error
      return result
    }
    var prompt = Prompt()
    if let raw = object.box {
      guard raw.allSatisfy(\.isFinite) else {
        result.error = "box \(format(raw)) has a non-finite value"
        return result
      }
      let c = object.boxConvention.corners(raw, width: width, height: height)
      guard c[2] > c[0] && c[3] > c[1] else {
        result.error =
          "box \(format(raw)) (\(object.boxConvention.rawValue)) has zero or negative area: corners \(format(c))"
        return result
      }
      let clipped = [
        min(max(c[0], 0), Double(width)), min(max(c[1], 0), Double(height)),
        min(max(c[2], 0), Double(width)), min(max(c[3], 0), Double(height)),
      ]
      guard clipped[2] > clipped[0] && clipped[3] > clipped[1] else {
        result.error = "box \(format(c)) lies entirely outside the \(width)x\(height) image"
        return result
      }
      if clipped != c {
        result.warning =
          "box \(format(c)) reaches outside the \(width)x\(height) image; clipped to \(format(clipped))"
      }
      result.usedBox = clipped
      prompt.box = PromptBox(
        x0: Float(clipped[0]), y0: Float(clipped[1]), x1: Float(clipped[2]), y1: Float(clipped[3]))
    }
    for (i, p) in object.points.enumerated() {
      guard p.x.isFinite && p.y.isFinite else {
        result.error = "point \(i) (\(p.x), \(p.y)) has a non-finite coordinate"
        return result
      }
      guard p.x >= 0 && p.y >= 0 && p.x < Float(width) && p.y < Float(height) else {
        result.error = "point \(i) (\(p.x), \(p.y)) lies outside the \(width)x\(height) image"
        return result
      }
      guard p.label == 0 || p.label == 1 else {
        result.error = "point \(i) has label \(p.label); labels are 1 (foreground) or 0 (background)"
        return result
      }
    }
    prompt.points = object.points
    if let reason = prompt.validationError {
      result.error = reason
      return result
    }
    result.prompt = prompt
    return result
  }

  static func format(_ v: [Double]) -> String {
    "["
      + v.map { $0.isFinite && $0 == $0.rounded() && abs($0) < 1e15 ? String(Int($0)) : String($0) }
      .joined(separator: ", ") + "]"
  }
}
