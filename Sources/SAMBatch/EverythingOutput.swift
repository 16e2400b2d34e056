import Foundation

/// The JSON object `sambatch predict --everything` prints.
public enum EverythingOutput {
  /// `{"width": W, "height": H, "masks": [{"rle": {"size": [H, W], "counts": "..."}, "area": a,
  /// "bbox": [x, y, w, h], "predicted_iou": p, "stability_score": s, "point_coords": [[x, y]],
  /// "crop_box": [x, y, w, h]}], "timings_ms": {...}}`: the fields of the reference's `coco_rle`
  /// output (bbox and crop_box XYWH with w = x1 - x0 as `box_xyxy_to_xywh` gives them, point in
  /// image pixels), masks in its order. One line, no spaces, numbers as `JSONWriter` writes them.
  public static func json(_ result: EverythingResult, timings: [(String, Double)]) -> String {
    let masks: [JSONValue] = result.masks.map { mask in
      [
        "rle": ["size": [.int(result.height), .int(result.width)], "counts": .string(mask.counts)],
        "area": .int(mask.area), "bbox": .array(mask.box.xywh.map { .int($0) }),
        "predicted_iou": .number(Double(mask.predictedIou)),
        "stability_score": mask.stabilityScore.map { .number(Double($0)) } ?? .null,
        "point_coords": [[.number(Double(mask.pointX)), .number(Double(mask.pointY))]],
        "crop_box": .array(mask.cropBox.xywh.map { .int($0) }),
      ]
    }
    let times = JSONObject(timings.map { JSONObject.Entry($0.0, .number(($0.1 * 1000).rounded() / 1000)) })
    let document: JSONValue = [
      "width": .int(result.width), "height": .int(result.height), "masks": .array(masks),
      "timings_ms": .object(times),
    ]
    return JSONWriter.write(document)
  }
}
