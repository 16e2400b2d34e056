import MobileSAM

/// One polygon per mask, as a YOLO-seg label line holds it: every part and every hole of the mask
/// joined by zero-width bridges (the polygon walks to the other ring, around it and back along
/// the same line), through the centres of the boundary pixels.
///
/// Filled with edges included (OpenCV's `fillPoly`, which Ultralytics uses to rasterize labels),
/// the polygon gives back the mask's pixels, plus the pixels under each bridge that crosses the
/// background between two parts (a hole's bridge runs through its own part). Bridges join each
/// ring to its nearest ring (a minimum spanning tree over the rings, between their points), in
/// the spirit of Ultralytics' `merge_multi_segment`, which chains parts by their closest points.
/// A part whose bridge would cover at least as many background pixels as the part has pixels
/// (a speck far from the rest) is left out: that keeps the IoU of the filled polygon with the
/// mask higher than joining it would.
public enum SinglePolygon {
  /// The polygon of `mask` in pixel indices (centre at +0.5), or an empty array for an empty
  /// mask. `tolerance` > 0 simplifies each ring by Douglas-Peucker (pixels); bridge ends are kept.
  public static func trace(_ mask: BinaryMask, tolerance: Double = 0) -> [GridPoint] {
    traceCountingDropped(mask, tolerance: tolerance).polygon
  }

  /// `trace`, with the number of parts left out because their bridge cost more than they add.
  public static func traceCountingDropped(_ mask: BinaryMask, tolerance: Double = 0) -> (
    polygon: [GridPoint], droppedParts: Int
  ) {
    var traced = MaskContours.pixelRings(of: mask).filter { !$0.points.isEmpty }
    guard !traced.isEmpty else { return ([], 0) }
    // The tree grows from the largest part, which is never left out.
    if let largest = traced.indices.filter({ !traced[$0].isHole }).max(by: {
      traced[$0].enclosedPixels < traced[$1].enclosedPixels
    }) {
      traced.swapAt(0, largest)
    }
    var rings = traced.map(\.points)
    var bridges = spanningBridges(rings)
    // Leave out parts (and whatever was joined through them) not worth their bridge; bridges come
    // in the order the tree grew, so a ring's parent is decided before the ring.
    var dropped = [Bool](repeating: false, count: rings.count)
    var droppedParts = 0
    for bridge in bridges {
      let ring = traced[bridge.to]
      if dropped[bridge.from] {
        dropped[bridge.to] = true
        if !ring.isHole { droppedParts += 1 }
        continue
      }
      guard !ring.isHole else { continue }
      let cost = backgroundPixels(
        mask, rings[bridge.from][bridge.fromIndex], rings[bridge.to][bridge.toIndex])
      if ring.enclosedPixels <= cost {
        dropped[bridge.to] = true
        droppedParts += 1
      }
    }
    if dropped.contains(true) {
      // Renumber the rings that stay.
      var newIndex = [Int](repeating: -1, count: rings.count)
      var kept: [[GridPoint]] = []
      for r in rings.indices where !dropped[r] {
        newIndex[r] = kept.count
        kept.append(rings[r])
      }
      bridges = bridges.filter { !dropped[$0.to] }.map {
        Bridge(from: newIndex[$0.from], fromIndex: $0.fromIndex, to: newIndex[$0.to], toIndex: $0.toIndex)
      }
      rings = kept
    }
    var anchors = [Set<Int>](repeating: [], count: rings.count)
    for bridge in bridges {
      anchors[bridge.from].insert(bridge.fromIndex)
      anchors[bridge.to].insert(bridge.toIndex)
    }
    var simplified: [[GridPoint]] = []
    var indexMaps: [[Int: Int]] = []
    for (r, ring) in rings.enumerated() {
      let keep = PolygonSimplifier.keptIndices(ring, tolerance: tolerance, anchors: anchors[r])
      simplified.append(keep.map { ring[$0] })
      indexMaps.append(Dictionary(uniqueKeysWithValues: keep.enumerated().map { ($1, $0) }))
    }
    var children = [[(at: Int, ring: Int, entry: Int)]](repeating: [], count: rings.count)
    for bridge in bridges {
      guard let at = indexMaps[bridge.from][bridge.fromIndex],
        let entry = indexMaps[bridge.to][bridge.toIndex]
      else { continue }
      children[bridge.from].append((at, bridge.to, entry))
    }
    var polygon: [GridPoint] = []
    emit(ring: 0, entry: 0, closing: false, rings: simplified, children: children, into: &polygon)
    return (polygon, droppedParts)
  }

  /// The background pixels on the 8-connected line between two pixels (ends included).
  static func backgroundPixels(_ mask: BinaryMask, _ a: GridPoint, _ b: GridPoint) -> Int {
    let steps = max(abs(b.x - a.x), abs(b.y - a.y))
    var count = 0
    for s in 0...steps {
      let t = steps == 0 ? 0 : Double(s) / Double(steps)
      let x = Int((Double(a.x) + t * Double(b.x - a.x)).rounded())
      let y = Int((Double(a.y) + t * Double(b.y - a.y)).rounded())
      if x >= 0, y >= 0, x < mask.width, y < mask.height, mask.pixels[y * mask.width + x] == 0 { count += 1 }
    }
    return count
  }

  /// The YOLO-seg label line `class x1 y1 x2 y2 ...` of a polygon from `trace`, normalized by
  /// the image size (pixel centres: (x + 0.5) / width), at least three points (a polygon of one
  /// or two points repeats its last one, as Ultralytics' reader needs three), or nil when empty.
  public static func yoloLine(classIndex: Int, polygon: [GridPoint], width: Int, height: Int) -> String? {
    guard !polygon.isEmpty, width > 0, height > 0 else { return nil }
    var points = polygon
    while points.count < 3 { points.append(points[points.count - 1]) }
    var fields = [String(classIndex)]
    fields.reserveCapacity(1 + 2 * points.count)
    for p in points {
      fields.append(formatCoordinate((Double(p.x) + 0.5) / Double(width)))
      fields.append(formatCoordinate((Double(p.y) + 0.5) / Double(height)))
    }
    return fields.joined(separator: " ")
  }

  /// Six decimals (a millionth of the image side; exact back to the pixel for any image narrower
  /// than 500,000 pixels), trailing zeros dropped.
  static func formatCoordinate(_ value: Double) -> String {
    let scaled = Int((value * 1_000_000).rounded())
    let whole = scaled / 1_000_000
    var fraction = String(scaled % 1_000_000)
    fraction = String(repeating: "0", count: 6 - fraction.count) + fraction
    while fraction.last == "0" { fraction.removeLast() }
    return fraction.isEmpty ? String(whole) : "\(whole).\(fraction)"
  }

  // MARK: - Joining rings

  struct Bridge {
    var from: Int
    var fromIndex: Int
    var to: Int
    var toIndex: Int
  }

  /// Prim's algorithm over the rings, rooted at ring 0; the distance between two rings is the
  /// Chebyshev distance between their closest points (the number of pixels a line between them
  /// covers, minus one).
  static func spanningBridges(_ rings: [[GridPoint]]) -> [Bridge] {
    let n = rings.count
    guard n > 1 else { return [] }
    var joined = [Bool](repeating: false, count: n)
    // For every ring not joined yet: its closest point to the joined rings and the bridge there.
    var best = [(distance: Int, bridge: Bridge)?](repeating: nil, count: n)
    var bridges: [Bridge] = []
    var newest = 0
    joined[0] = true
    // Bounding boxes give a lower bound of the distance between two rings: a ring pair that
    // cannot beat the best bridge found so far is not compared point by point.
    let boxes = rings.map { ring in
      ring.reduce((minX: Int.max, minY: Int.max, maxX: Int.min, maxY: Int.min)) {
        (min($0.minX, $1.x), min($0.minY, $1.y), max($0.maxX, $1.x), max($0.maxY, $1.y))
      }
    }
    for _ in 1..<n {
      let a = boxes[newest]
      for r in 0..<n where !joined[r] {
        let b = boxes[r]
        let bound = max(0, a.minX - b.maxX, b.minX - a.maxX, a.minY - b.maxY, b.minY - a.maxY)
        if let current = best[r], bound >= current.distance { continue }
        let candidate = closestPair(rings[newest], rings[r])
        if best[r] == nil || candidate.distance < best[r]!.distance {
          best[r] = (
            candidate.distance, Bridge(from: newest, fromIndex: candidate.i, to: r, toIndex: candidate.j)
          )
        }
      }
      var pick = -1
      for r in 0..<n where !joined[r] {
        if pick < 0 || best[r]!.distance < best[pick]!.distance { pick = r }
      }
      joined[pick] = true
      bridges.append(best[pick]!.bridge)
      newest = pick
    }
    return bridges
  }

  private static func closestPair(_ a: [GridPoint], _ b: [GridPoint]) -> (distance: Int, i: Int, j: Int) {
    var result = (distance: Int.max, i: 0, j: 0)
    for i in a.indices {
      let p = a[i]
      for j in b.indices {
        let q = b[j]
        let d = max(abs(p.x - q.x), abs(p.y - q.y))
        if d < result.distance { result = (d, i, j) }
      }
    }
    return result
  }

  /// Appends `ring` starting at `entry`; at each bridge end, the bridged ring's walk (which ends
  /// where it began) and the way back. A bridged ring is closed explicitly (`closing`).
  private static func emit(
    ring: Int, entry: Int, closing: Bool, rings: [[GridPoint]],
    children: [[(at: Int, ring: Int, entry: Int)]],
    into polygon: inout [GridPoint]
  ) {
    let points = rings[ring]
    for k in 0..<points.count {
      let i = (entry + k) % points.count
      polygon.append(points[i])
      for child in children[ring] where child.at == i {
        emit(
          ring: child.ring, entry: child.entry, closing: true, rings: rings, children: children,
          into: &polygon)
        polygon.append(points[i])
      }
    }
    if closing { polygon.append(points[entry]) }
  }
}

/// Douglas-Peucker on closed rings with fixed points.
enum PolygonSimplifier {
  /// The indices of `ring` kept, ascending: all of them for `tolerance` <= 0; otherwise the
  /// anchors (or, without any, the first point and the one farthest from it) and, between two
  /// kept points, every point farther than `tolerance` from the chord, recursively.
  static func keptIndices(_ ring: [GridPoint], tolerance: Double, anchors: Set<Int>) -> [Int] {
    let n = ring.count
    guard tolerance > 0, n > 3 else { return Array(0..<n) }
    var fixed = anchors.sorted()
    if fixed.isEmpty {
      let far = (0..<n).max { squaredDistance(ring[0], ring[$0]) < squaredDistance(ring[0], ring[$1]) } ?? 0
      fixed = far == 0 ? [0] : [0, far]
    }
    var keep = [Bool](repeating: false, count: n)
    for f in fixed { keep[f] = true }
    for k in fixed.indices {
      let start = fixed[k]
      var end = k + 1 < fixed.count ? fixed[k + 1] : fixed[0] + n
      if fixed.count == 1 { end = start + n }
      mark(ring, from: start, to: end, tolerance: tolerance, keep: &keep)
    }
    return (0..<n).filter { keep[$0] }
  }

  /// Marks the points strictly between `from` and `to` (indices modulo the ring) to keep.
  private static func mark(_ ring: [GridPoint], from: Int, to: Int, tolerance: Double, keep: inout [Bool]) {
    let n = ring.count
    var stack = [(from, to)]
    while let (a, b) = stack.popLast() {
      guard b - a > 1 else { continue }
      let p = ring[a % n]
      let q = ring[b % n]
      var farthest = -1
      var farthestDistance = tolerance
      for k in (a + 1)..<b {
        let d = distance(ring[k % n], toSegment: p, q)
        if d > farthestDistance {
          farthestDistance = d
          farthest = k
        }
      }
      if farthest >= 0 {
        keep[farthest % n] = true
        stack.append((a, farthest))
        stack.append((farthest, b))
      }
    }
  }

  private static func squaredDistance(_ a: GridPoint, _ b: GridPoint) -> Int {
    (a.x - b.x) * (a.x - b.x) + (a.y - b.y) * (a.y - b.y)
  }

  /// Distance from `p` to the segment `a`-`b` (to `a` when the two coincide).
  private static func distance(_ p: GridPoint, toSegment a: GridPoint, _ b: GridPoint) -> Double {
    let dx = Double(b.x - a.x)
    let dy = Double(b.y - a.y)
    let px = Double(p.x - a.x)
    let py = Double(p.y - a.y)
    let length2 = dx * dx + dy * dy
    guard length2 > 0 else { return (px * px + py * py).squareRoot() }
    let t = max(0, min(1, (px * dx + py * dy) / length2))
    let ex = px - t * dx
    let ey = py - t * dy
    return (ex * ex + ey * ey).squareRoot()
  }
}
