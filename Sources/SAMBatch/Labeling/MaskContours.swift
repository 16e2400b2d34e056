import MobileSAM

/// A point on the integer grid. In a `CrackRing` it is a pixel corner (pixel (x, y) covers
/// [x, x+1] x [y, y+1], y down, as COCO polygons are read); in a `PixelRing` it is the index of
/// a pixel, whose centre lies at (x + 0.5, y + 0.5).
public struct GridPoint: Hashable, Sendable {
  public var x: Int
  public var y: Int

  public init(x: Int, y: Int) {
    self.x = x
    self.y = y
  }
}

/// One closed boundary of a mask along the pixel edges ("crack" boundary), corners only: the
/// polygon that encloses exactly the foreground pixels it bounds.
///
/// Rings are walked with the foreground on the right-hand side as seen on screen (y down), so an
/// outer boundary runs clockwise and has a positive shoelace area, a hole boundary runs
/// counter-clockwise and has a negative one. Foreground pixels that touch only at a corner belong
/// to the same ring (8-connected foreground, as OpenCV's `findContours`), so the background inside
/// a hole is 4-connected.
public struct CrackRing: Sendable, Equatable {
  /// Corners in walking order; the ring closes from the last back to the first.
  public var corners: [GridPoint]
  /// Twice the signed area (shoelace, y down): positive for an outer boundary, negative for a
  /// hole; its magnitude is twice the number of pixels enclosed (holes in it not subtracted).
  public var doubledArea: Int

  public var isHole: Bool { doubledArea < 0 }
}

/// Edge directions of a crack boundary, clockwise on screen.
private enum Step: UInt8 {
  case east = 1, south = 2, west = 4, north = 8

  var delta: (x: Int, y: Int) {
    switch self {
    case .east: return (1, 0)
    case .south: return (0, 1)
    case .west: return (-1, 0)
    case .north: return (0, -1)
    }
  }

  /// The side the foreground lies on, seen on screen, as a unit vector (the right-hand side).
  var inward: (x: Int, y: Int) {
    switch self {
    case .east: return (0, 1)
    case .south: return (-1, 0)
    case .west: return (0, -1)
    case .north: return (1, 0)
    }
  }

  /// Turning left on screen (counter-clockwise).
  var left: Step {
    switch self {
    case .east: return .north
    case .south: return .east
    case .west: return .south
    case .north: return .west
    }
  }

  var right: Step {
    switch self {
    case .east: return .south
    case .south: return .west
    case .west: return .north
    case .north: return .east
    }
  }
}

/// Border following on a binary mask, in one pass over the pixels and one over the boundary.
public enum MaskContours {
  /// Every boundary of `mask` (outer boundaries and holes), in raster order of their first
  /// corner. An empty mask has none.
  public static func crackRings(of mask: BinaryMask) -> [CrackRing] {
    traceRings(mask).map { trace in
      CrackRing(corners: trace.corners, doubledArea: doubledArea(trace.corners))
    }
  }

  /// The boundaries as polygons through the centres of the boundary pixels: every crack ring moved
  /// half a pixel towards the foreground. A polygon through pixel centres filled as OpenCV's
  /// `fillPoly` fills (edges included) gives back exactly the pixels the ring bounds; this is the
  /// convention of Ultralytics' YOLO-seg labels. A one-pixel-wide part collapses onto itself (a
  /// zero-area ring), which fills the same pixels.
  public static func pixelRings(of mask: BinaryMask) -> [PixelRing] {
    traceRings(mask).map { trace in
      var points: [GridPoint] = []
      points.reserveCapacity(trace.corners.count + 4)
      let n = trace.corners.count
      for i in 0..<n {
        let corner = trace.corners[i]
        let incoming = trace.steps[(i + n - 1) % n]
        let outgoing = trace.steps[i]
        let a = incoming.inward
        let b = outgoing.inward
        let inside = pixelAt(corner, half: (a.x + b.x, a.y + b.y))
        if outgoing == incoming.left && !isSet(mask, inside) {
          // A left turn at a corner where two foreground pixels touch diagonally: the corner's
          // inner pixel is background, so pass from one pixel to the other diagonally.
          let d = incoming.delta
          let e = outgoing.delta
          points.append(pixelAt(corner, half: (a.x - d.x, a.y - d.y)))
          points.append(pixelAt(corner, half: (b.x + e.x, b.y + e.y)))
        } else {
          points.append(inside)
        }
      }
      let area = doubledArea(trace.corners)
      return PixelRing(
        points: removingRedundantPoints(points), isHole: area < 0, enclosedPixels: abs(area) / 2)
    }
  }

  // MARK: - Tracing

  private struct Trace {
    var corners: [GridPoint]
    /// `steps[i]` leaves `corners[i]`.
    var steps: [Step]
  }

  private static func traceRings(_ mask: BinaryMask) -> [Trace] {
    let width = mask.width
    let height = mask.height
    guard width > 0, height > 0 else { return [] }
    let stride = width + 1
    // Outgoing boundary edges at every pixel corner: at most two (where pixels touch diagonally).
    var outgoing = [UInt8](repeating: 0, count: stride * (height + 1))
    mask.pixels.withUnsafeBufferPointer { pixels in
      func set(_ x: Int, _ y: Int) -> Bool {
        x >= 0 && y >= 0 && x < width && y < height && pixels[y * width + x] != 0
      }
      for y in 0..<height {
        for x in 0..<width where pixels[y * width + x] != 0 {
          if !set(x, y - 1) { outgoing[y * stride + x] |= Step.east.rawValue }
          if !set(x + 1, y) { outgoing[y * stride + x + 1] |= Step.south.rawValue }
          if !set(x, y + 1) { outgoing[(y + 1) * stride + x + 1] |= Step.west.rawValue }
          if !set(x - 1, y) { outgoing[(y + 1) * stride + x] |= Step.north.rawValue }
        }
      }
    }
    var used = [UInt8](repeating: 0, count: outgoing.count)
    var traces: [Trace] = []
    for start in outgoing.indices where outgoing[start] != 0 {
      for first in [Step.east, .south, .west, .north]
      where outgoing[start] & first.rawValue != 0 && used[start] & first.rawValue == 0 {
        traces.append(follow(from: start, first: first, stride: stride, outgoing: outgoing, used: &used))
      }
    }
    return traces
  }

  /// Walks one ring from `start` leaving by `first`, marking its edges used; keeps the corners
  /// (where the direction changes).
  private static func follow(
    from start: Int, first: Step, stride: Int, outgoing: [UInt8], used: inout [UInt8]
  ) -> Trace {
    var corners: [GridPoint] = []
    var steps: [Step] = []
    var vertex = start
    var step = first
    var previous: Step? = nil
    while true {
      used[vertex] |= step.rawValue
      if step != previous {
        corners.append(GridPoint(x: vertex % stride, y: vertex / stride))
        steps.append(step)
      }
      previous = step
      let d = step.delta
      vertex += d.y * stride + d.x
      // Two ways out only where foreground pixels touch diagonally: turning left keeps them in
      // one ring (8-connected foreground).
      let choices = outgoing[vertex]
      let next =
        choices & step.left.rawValue != 0 ? step.left : (choices & step.rawValue != 0 ? step : step.right)
      if vertex == start && next == first { break }
      step = next
    }
    // The walk may close on a straight line through the start: then the start is no corner.
    if steps.count > 1 && steps.last == steps.first {
      corners.removeFirst()
      steps.removeFirst()
    }
    return Trace(corners: corners, steps: steps)
  }

  // MARK: - Geometry

  /// The pixel whose centre is `corner + half / 2` (components of `half` are -1 or 1).
  private static func pixelAt(_ corner: GridPoint, half: (x: Int, y: Int)) -> GridPoint {
    GridPoint(x: corner.x + (half.x > 0 ? 0 : -1), y: corner.y + (half.y > 0 ? 0 : -1))
  }

  private static func isSet(_ mask: BinaryMask, _ p: GridPoint) -> Bool {
    p.x >= 0 && p.y >= 0 && p.x < mask.width && p.y < mask.height && mask.pixels[p.y * mask.width + p.x] != 0
  }

  /// Twice the shoelace area, y down (clockwise on screen is positive).
  static func doubledArea(_ points: [GridPoint]) -> Int {
    var sum = 0
    for i in points.indices {
      let a = points[i]
      let b = points[(i + 1) % points.count]
      sum += a.x * b.y - b.x * a.y
    }
    return sum
  }

  /// Drops repeated points and points strictly between their neighbours on a straight line (a
  /// point where the ring doubles back is kept: it is an extremity).
  static func removingRedundantPoints(_ points: [GridPoint]) -> [GridPoint] {
    var ring: [GridPoint] = []
    for p in points where ring.last != p { ring.append(p) }
    while ring.count > 1 && ring.first == ring.last { ring.removeLast() }
    var changed = true
    while changed && ring.count > 2 {
      changed = false
      var kept: [GridPoint] = []
      let n = ring.count
      for i in 0..<n {
        let a = kept.last ?? ring[(i + n - 1) % n]
        let b = ring[i]
        let c = ring[(i + 1) % n]
        let cross = (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x)
        let dot = (b.x - a.x) * (c.x - b.x) + (b.y - a.y) * (c.y - b.y)
        if cross == 0 && dot > 0 {
          changed = true
        } else {
          kept.append(b)
        }
      }
      ring = kept
    }
    return ring
  }
}

/// A closed polygon through pixel centres (see `MaskContours.pixelRings`).
public struct PixelRing: Sendable, Equatable {
  /// Pixel indices in walking order; the polygon closes from the last back to the first.
  public var points: [GridPoint]
  /// The ring bounds a hole of its part.
  public var isHole: Bool
  /// The pixels inside the ring (a part's holes not subtracted; for a hole, the hole's pixels).
  public var enclosedPixels: Int
}
