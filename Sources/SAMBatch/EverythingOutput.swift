import Foundation

/// The JSON object `sambatch predict --everything` prints.
public enum EverythingOutput {
  /// `{"width": W, "height": H, "masks": [{"rle": {"size": [H, W], "counts": "..."}, "area": a,
  /// "bbox": [x, y, w, h], "predicted_iou": p, "stability_score": s, "point_coords": [[x, y]],
  /// "crop_box": [x, y, w, h]}], "timings_ms": {...}}`: the fields of the reference's `coco_rle`
  /// output (bbox and crop_box XYWH with w = x1 - x0 as `box_xyxy_to_xywh` gives them, point in
  /// image pixels), masks in its order. One line, no spaces.
  public static func json(_ result: EverythingResult, timings: [(String, Double)]) -> String {
    var out = "{\"width\":\(result.width),\"height\":\(result.height),\"masks\":["
    for (i, mask) in result.masks.enumerated() {
      if i > 0 { out += "," }
      out += "{\"rle\":{\"size\":[\(result.height),\(result.width)],\"counts\":\(jsonString(mask.counts))}"
      out += ",\"area\":\(mask.area),\"bbox\":[\(mask.box.xywh.map(String.init).joined(separator: ","))]"
      out += ",\"predicted_iou\":\(number(Double(mask.predictedIou)))"
      out += ",\"stability_score\":\(mask.stabilityScore.map { number(Double($0)) } ?? "null")"
      out += ",\"point_coords\":[[\(number(mask.pointX)),\(number(mask.pointY))]]"
      out += ",\"crop_box\":[\(mask.cropBox.xywh.map(String.init).joined(separator: ","))]}"
    }
    out += "],\"timings_ms\":{"
    out += timings.map { "\"\($0.0)\":\($0.1.isFinite ? String(format: "%.3f", $0.1) : "null")" }
      .joined(separator: ",")
    return out + "}}"
  }

  /// As Python's `repr` writes the reference's floats (a float32 score widened to a double, as
  /// `.item()` gives it); null when not finite.
  private static func number(_ value: Double) -> String {
    value.isFinite ? JSONWriter.number(value) : "null"
  }
}
