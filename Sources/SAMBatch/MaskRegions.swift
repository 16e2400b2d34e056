// Port of `remove_small_regions` of mobile_sam/utils/amg.py, which labels regions with OpenCV's
// `connectedComponentsWithStats(mask, 8)`; here a flood fill with the same 8-connectivity.

public enum MaskRegions {
  public enum Mode: Sendable {
    /// Fill holes: background regions smaller than the area.
    case holes
    /// Remove islands: foreground regions smaller than the area (the largest one stays when all
    /// are small).
    case islands
  }

  /// `remove_small_regions(mask, area, mode)`: the mask (row-major, 0 or 1) with the regions of
  /// fewer than `area` pixels filled (holes) or removed (islands), and whether anything was small.
  /// As the reference, "changed" means that some region was small, even when removing it leaves
  /// the pixels as they were (islands that are all small keep the largest).
  public static func removeSmall(_ mask: [UInt8], width: Int, height: Int, area: Int, mode: Mode) -> (
    mask: [UInt8], changed: Bool
  ) {
    precondition(mask.count == width * height)
    let holes = mode == .holes
    // The regions of the "working mask": the background for holes, the foreground for islands.
    let (labels, sizes) = label(mask.map { ($0 != 0) != holes ? 1 : 0 }, width: width, height: height)
    let small = Set(sizes.indices.filter { sizes[$0] < area })
    if small.isEmpty { return (mask, false) }
    var keep = [Bool](repeating: false, count: sizes.count + 1)
    if holes {
      // Label 0 (the mask itself) and the small holes.
      keep[0] = true
      for region in small { keep[region + 1] = true }
    } else {
      for region in sizes.indices where !small.contains(region) { keep[region + 1] = true }
      // `np.argmax`: the first of the largest.
      if !keep.contains(true), let largest = sizes.max(), let region = sizes.firstIndex(of: largest) {
        keep[region + 1] = true
      }
    }
    return (labels.map { keep[Int($0)] ? 1 : 0 }, true)
  }

  /// 8-connected regions of the pixels that are 1: a label per pixel (0 for background, regions
  /// numbered from 1 in the raster order of their first pixel) and the size of each region.
  static func label(_ working: [UInt8], width: Int, height: Int) -> (labels: [Int32], sizes: [Int]) {
    var labels = [Int32](repeating: 0, count: working.count)
    var sizes: [Int] = []
    var stack: [Int] = []
    for start in working.indices where working[start] != 0 && labels[start] == 0 {
      let region = Int32(sizes.count + 1)
      labels[start] = region
      stack.append(start)
      var size = 0
      while let index = stack.popLast() {
        size += 1
        let (x, y) = (index % width, index / width)
        for dy in -1...1 {
          let ny = y + dy
          guard ny >= 0 && ny < height else { continue }
          for dx in -1...1 {
            let nx = x + dx
            guard nx >= 0 && nx < width else { continue }
            let neighbour = ny * width + nx
            if working[neighbour] != 0 && labels[neighbour] == 0 {
              labels[neighbour] = region
              stack.append(neighbour)
            }
          }
        }
      }
      sizes.append(size)
    }
    return (labels, sizes)
  }
}
