import MobileSAM

/// COCO polygon segmentations: from masks (for tools that import polygons only) and back to
/// masks exactly as pycocotools rasterizes them.
public enum COCOPolygons {
  /// The COCO `segmentation` polygons of `mask`: one `[x1, y1, x2, y2, ...]` list per part, along
  /// the pixel edges (pixel corners, integers), which pycocotools fills back to exactly the mask.
  /// nil when the mask has a hole (COCO polygons cannot hold one: keep the RLE) or is empty.
  public static func polygons(of mask: BinaryMask) -> [[Double]]? {
    let rings = MaskContours.crackRings(of: mask)
    guard !rings.isEmpty, !rings.contains(where: \.isHole) else { return nil }
    return rings.map { ring in ring.corners.flatMap { [Double($0.x), Double($0.y)] } }
  }

  /// The mask pycocotools' `frPyObjects([polygon], height, width)` gives for one polygon
  /// (`rleFrPoly` in common/maskApi.c, reproduced step by step so that the pixels agree): the
  /// outline is sampled at 5x, each crossing of a pixel column's centre line becomes a run
  /// boundary, and the runs alternate from there.
  public static func rasterize(_ polygon: [Double], width: Int, height: Int) -> BinaryMask {
    let runs = polygonRuns(polygon, width: width, height: height)
    // The runs always add up to width * height, by construction.
    return (try? MaskRLE.mask(fromRuns: runs, width: width, height: height))
      ?? BinaryMask(width: width, height: height, pixels: [UInt8](repeating: 0, count: width * height))
  }

  /// Column-major runs (from a run of 0s) of a polygon, as `rleFrPoly`.
  static func polygonRuns(_ xy: [Double], width w: Int, height h: Int) -> [Int] {
    let k = xy.count / 2
    guard k > 0, w > 0, h > 0 else { return [w * h] }
    let scale = 5.0
    // Vertices scaled and rounded half up, as `(int)(scale * x + .5)` (truncation towards zero).
    var x = (0..<k).map { Int(scale * xy[2 * $0] + 0.5) }
    var y = (0..<k).map { Int(scale * xy[2 * $0 + 1] + 0.5) }
    x.append(x[0])
    y.append(y[0])
    // Dense points along every edge, one per step of the longer axis.
    var u: [Int] = []
    var v: [Int] = []
    for j in 0..<k {
      var xs = x[j]
      var xe = x[j + 1]
      var ys = y[j]
      var ye = y[j + 1]
      let dx = abs(xe - xs)
      let dy = abs(ys - ye)
      let flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye)
      if flip {
        swap(&xs, &xe)
        swap(&ys, &ye)
      }
      if dx >= dy {
        let s = dx == 0 ? 0 : Double(ye - ys) / Double(dx)
        for d in 0...dx {
          let t = flip ? dx - d : d
          u.append(t + xs)
          v.append(Int(Double(ys) + s * Double(t) + 0.5))
        }
      } else {
        let s = Double(xe - xs) / Double(dy)
        for d in 0...dy {
          let t = flip ? dy - d : d
          v.append(t + ys)
          u.append(Int(Double(xs) + s * Double(t) + 0.5))
        }
      }
    }
    // Where the outline crosses a column centre: the first row below it in that column.
    var boundaries: [Int] = []
    for j in 1..<u.count where u[j] != u[j - 1] {
      var xd = Double(u[j] < u[j - 1] ? u[j] : u[j] - 1)
      xd = (xd + 0.5) / scale - 0.5
      if xd.rounded(.down) != xd || xd < 0 || xd > Double(w - 1) { continue }
      var yd = Double(v[j] < v[j - 1] ? v[j] : v[j - 1])
      yd = (yd + 0.5) / scale - 0.5
      if yd < 0 { yd = 0 } else if yd > Double(h) { yd = Double(h) }
      yd = yd.rounded(.up)
      boundaries.append(Int(xd) * h + Int(yd))
    }
    boundaries.append(h * w)
    boundaries.sort()
    // Differences, where two equal boundaries cancel (a run of 0 merges its neighbours).
    var previous = 0
    for j in boundaries.indices {
      let t = boundaries[j]
      boundaries[j] -= previous
      previous = t
    }
    var runs: [Int] = [boundaries[0]]
    var j = 1
    while j < boundaries.count {
      if boundaries[j] > 0 {
        runs.append(boundaries[j])
        j += 1
      } else {
        j += 1
        if j < boundaries.count {
          runs[runs.count - 1] += boundaries[j]
          j += 1
        }
      }
    }
    return runs
  }
}
