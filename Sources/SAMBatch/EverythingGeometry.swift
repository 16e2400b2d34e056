// Port of the geometry helpers of mobile_sam/utils/amg.py (point grids, crop boxes, boxes of masks,
// the crop-edge test) and of torchvision's `batched_nms` as the generator calls it (one category).
import Foundation

/// A box in pixels, corners inclusive as `batched_mask_to_box` gives them (x1 is the last column
/// of the mask, not one past it); crop boxes are [x0, x1) as `generate_crop_boxes` gives them.
public struct PixelBox: Sendable, Equatable, Hashable {
  public var x0: Int
  public var y0: Int
  public var x1: Int
  public var y1: Int

  public init(x0: Int, y0: Int, x1: Int, y1: Int) {
    self.x0 = x0
    self.y0 = y0
    self.x1 = x1
    self.y1 = y1
  }

  /// [x, y, w, h] as `box_xyxy_to_xywh` gives it (w = x1 - x0).
  public var xywh: [Int] { [x0, y0, x1 - x0, y1 - y0] }

  func offset(by crop: PixelBox) -> PixelBox {
    PixelBox(x0: x0 + crop.x0, y0: y0 + crop.y0, x1: x1 + crop.x0, y1: y1 + crop.y0)
  }
}

public enum EverythingGeometry {
  /// `build_point_grid(n)`: n x n points in [0, 1]^2, row by row (x varies fastest), the values
  /// of `np.linspace(1 / (2n), 1 - 1 / (2n), n)` in float64.
  public static func pointGrid(_ n: Int) -> [(x: Double, y: Double)] {
    let axis = linspace(1 / (2 * Double(n)), 1 - 1 / (2 * Double(n)), n)
    var out: [(x: Double, y: Double)] = []
    out.reserveCapacity(n * n)
    for row in 0..<n {
      for column in 0..<n { out.append((axis[column], axis[row])) }
    }
    return out
  }

  /// numpy's `linspace(start, stop, count)` (endpoint included): i * step + start with
  /// step = (stop - start) / (count - 1), the last value exactly `stop`.
  static func linspace(_ start: Double, _ stop: Double, _ count: Int) -> [Double] {
    guard count > 1 else { return count == 1 ? [start] : [] }
    let step = (stop - start) / Double(count - 1)
    var out = (0..<count).map { Double($0) * step + start }
    out[count - 1] = stop
    return out
  }

  /// `generate_crop_boxes`: the whole image (layer 0), then for each layer i >= 1 a grid of
  /// 2^i x 2^i overlapping crops, x-major (all crops of the first column first).
  public static func cropBoxes(width: Int, height: Int, layers: Int, overlapRatio: Double) -> [(
    box: PixelBox, layer: Int
  )] {
    var out: [(box: PixelBox, layer: Int)] = [(PixelBox(x0: 0, y0: 0, x1: width, y1: height), 0)]
    let shortSide = Double(min(width, height))
    for layer in 0..<layers {
      let perSide = 1 << (layer + 1)
      let overlap = Int(overlapRatio * shortSide * (2 / Double(perSide)))
      func cropLength(_ length: Int) -> Int {
        Int((Double(overlap * (perSide - 1) + length) / Double(perSide)).rounded(.up))
      }
      let (cropWidth, cropHeight) = (cropLength(width), cropLength(height))
      for i in 0..<perSide {
        for j in 0..<perSide {
          let x0 = (cropWidth - overlap) * i
          let y0 = (cropHeight - overlap) * j
          out.append(
            (
              PixelBox(x0: x0, y0: y0, x1: min(x0 + cropWidth, width), y1: min(y0 + cropHeight, height)),
              layer + 1
            ))
        }
      }
    }
    return out
  }

  /// `is_box_near_crop_edge` with atol 20: some side of `box` (in crop pixels) lies within 20
  /// pixels of the crop's side without lying within 20 pixels of the image's.
  static func isNearCropEdge(_ box: PixelBox, crop: PixelBox, width: Int, height: Int) -> Bool {
    let b = box.offset(by: crop)
    let sides = [(b.x0, crop.x0, 0), (b.y0, crop.y0, 0), (b.x1, crop.x1, width), (b.y1, crop.y1, height)]
    return sides.contains { side, cropSide, imageSide in
      abs(side - cropSide) <= 20 && abs(side - imageSide) > 20
    }
  }

  /// torchvision's `batched_nms` with one category, as its CPU kernel computes it for up to 1,000
  /// boxes: boxes in decreasing score order, ties in input order (a stable sort), each kept unless
  /// a kept box overlaps it with IoU > threshold; areas and IoU in float32 without the +1 of
  /// inclusive corners. Returns the kept indices in that order. (For more than 1,000 boxes
  /// torchvision re-sorts the kept indices with an unstable sort: the same set, ties possibly in
  /// another order.)
  public static func nonMaximumSuppression(boxes: [PixelBox], scores: [Float], threshold: Double) -> [Int] {
    precondition(boxes.count == scores.count)
    let order = boxes.indices.sorted { a, b in
      scores[a] != scores[b] ? scores[a] > scores[b] : a < b
    }
    let x0 = boxes.map { Float($0.x0) }
    let y0 = boxes.map { Float($0.y0) }
    let x1 = boxes.map { Float($0.x1) }
    let y1 = boxes.map { Float($0.y1) }
    let areas = boxes.indices.map { (x1[$0] - x0[$0]) * (y1[$0] - y0[$0]) }
    var suppressed = [Bool](repeating: false, count: boxes.count)
    var keep: [Int] = []
    for (position, i) in order.enumerated() where !suppressed[i] {
      keep.append(i)
      for j in order[(position + 1)...] where !suppressed[j] {
        let width = max(0, min(x1[i], x1[j]) - max(x0[i], x0[j]))
        let height = max(0, min(y1[i], y1[j]) - max(y0[i], y0[j]))
        let intersection = width * height
        let iou = intersection / (areas[i] + areas[j] - intersection)
        if Double(iou) > threshold { suppressed[j] = true }
      }
    }
    return keep
  }

  /// `batched_mask_to_box` of one row-major mask: inclusive corners, [0, 0, 0, 0] when empty.
  static func maskBox(_ pixels: UnsafeBufferPointer<UInt8>, width: Int, height: Int) -> PixelBox {
    var (minX, minY, maxX, maxY) = (width, height, -1, -1)
    for y in 0..<height {
      let row = pixels.baseAddress! + y * width
      var first = -1
      for x in 0..<width where row[x] != 0 {
        first = x
        break
      }
      guard first >= 0 else { continue }
      var last = first
      for x in stride(from: width - 1, through: first, by: -1) where row[x] != 0 {
        last = x
        break
      }
      minY = min(minY, y)
      maxY = y
      minX = min(minX, first)
      maxX = max(maxX, last)
    }
    guard maxY >= 0 else { return PixelBox(x0: 0, y0: 0, x1: 0, y1: 0) }
    return PixelBox(x0: minX, y0: minY, x1: maxX, y1: maxY)
  }
}
