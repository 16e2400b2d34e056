import Foundation
import MobileSAM

/// A COCO annotation's `segmentation`, in the three forms COCO files use.
public enum GroundTruthSegmentation: Sendable, Equatable {
  /// `[[x1, y1, x2, y2, ...], ...]`: the union of the polygons, in the image's size.
  case polygons([[Double]])
  /// `{"size": [h, w], "counts": [runs]}` (used with `iscrowd: 1`).
  case uncompressedRLE(width: Int, height: Int, runs: [Int])
  /// `{"size": [h, w], "counts": "string"}`.
  case compressedRLE(width: Int, height: Int, counts: String)

  /// Reads the JSON value of `segmentation`; the error says what is wrong with it.
  public static func parse(_ value: JSONValue) throws -> GroundTruthSegmentation {
    if let list = value.array {
      var polygons: [[Double]] = []
      for (index, item) in list.enumerated() {
        guard let numbers = item.array else {
          throw LabelingError.segmentation("polygon \(index + 1) is not a list of numbers")
        }
        var polygon: [Double] = []
        for number in numbers {
          guard let v = number.number, v.isFinite, abs(v) < 1e7 else {
            throw LabelingError.segmentation(
              "polygon \(index + 1) holds \(number.described), not a finite coordinate")
          }
          polygon.append(v)
        }
        guard polygon.count >= 6, polygon.count % 2 == 0 else {
          throw LabelingError.segmentation(
            "polygon \(index + 1) has \(polygon.count) numbers: a polygon needs x, y pairs, at least 3 of them"
          )
        }
        polygons.append(polygon)
      }
      guard !polygons.isEmpty else { throw LabelingError.segmentation("an empty list of polygons") }
      return .polygons(polygons)
    }
    guard let object = value.object else {
      throw LabelingError.segmentation("neither a list of polygons nor an RLE object")
    }
    guard let size = object["size"]?.array, size.count == 2, let h = size[0].integer, let w = size[1].integer,
      h >= 0, w >= 0
    else { throw LabelingError.segmentation("RLE 'size' is not [height, width]") }
    if let counts = object["counts"]?.string {
      return .compressedRLE(width: w, height: h, counts: counts)
    }
    guard let list = object["counts"]?.array else {
      throw LabelingError.segmentation("RLE 'counts' is neither a string nor a list of run lengths")
    }
    var runs: [Int] = []
    for item in list {
      guard let run = item.integer, run >= 0 else {
        throw LabelingError.segmentation("RLE 'counts' holds \(item.described), not a run length")
      }
      runs.append(run)
    }
    return .uncompressedRLE(width: w, height: h, runs: runs)
  }

  /// The mask, as pycocotools' `COCO.annToMask` gives it: polygons rasterized in the image's size
  /// and merged; RLEs in their own size (which must add up).
  public func mask(imageWidth: Int, imageHeight: Int) throws -> BinaryMask {
    switch self {
    case .polygons(let polygons):
      var pixels = [UInt8](repeating: 0, count: imageWidth * imageHeight)
      for polygon in polygons {
        let part = COCOPolygons.rasterize(polygon, width: imageWidth, height: imageHeight)
        for i in pixels.indices where part.pixels[i] != 0 { pixels[i] = 1 }
      }
      return BinaryMask(width: imageWidth, height: imageHeight, pixels: pixels)
    case .uncompressedRLE(let width, let height, let runs):
      return try MaskRLE.mask(fromRuns: runs, width: width, height: height)
    case .compressedRLE(let width, let height, let counts):
      return try MaskRLE.decode(counts, width: width, height: height)
    }
  }
}

/// Mask IoU exactly as pycocotools' `maskUtils.iou(dt, gt, iscrowd)` (`rleIou`).
public enum MaskIoU {
  /// Intersection over union of a detection and a ground-truth mask; for a crowd ground truth,
  /// intersection over the detection's area. 0 when the `toBbox` boxes do not overlap or nothing
  /// intersects; -1 when the boxes overlap but the sizes differ (pycocotools' marker).
  public static func iou(_ dt: BinaryMask, _ gt: BinaryMask, isCrowd: Bool) -> Double {
    let db = MaskRLE.bbox(dt)
    let gb = MaskRLE.bbox(gt)
    let w = min(db[2] + db[0], gb[2] + gb[0]) - max(db[0], gb[0])
    let h = min(db[3] + db[1], gb[3] + gb[1]) - max(db[1], gb[1])
    guard w > 0, h > 0 else { return 0 }
    guard dt.width == gt.width, dt.height == gt.height else { return -1 }
    var intersection = 0
    var union = 0
    var dtArea = 0
    for i in dt.pixels.indices {
      let a = dt.pixels[i] != 0
      let b = gt.pixels[i] != 0
      if a { dtArea += 1 }
      if a || b { union += 1 }
      if a && b { intersection += 1 }
    }
    guard intersection > 0 else { return 0 }
    return Double(intersection) / Double(isCrowd ? dtArea : union)
  }
}

/// Problems with labeling inputs and outputs (YOLO labels, dataset YAML, COCO segmentations).
public enum LabelingError: Error, LocalizedError, Equatable {
  case segmentation(String)
  /// A file as a whole (a dataset YAML, a label folder).
  case file(path: String, reason: String)
  /// One line of a label file; `line` is 1-based.
  case line(path: String, line: Int, reason: String)

  public var errorDescription: String? {
    switch self {
    case .segmentation(let reason): return "segmentation: \(reason)"
    case .file(let path, let reason): return "\(path): \(reason)"
    case .line(let path, let line, let reason): return "\(path):\(line): \(reason)"
    }
  }
}
