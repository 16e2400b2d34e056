// Bilinear resize of planes thresholded into masks, with the stability score's counts, for
// `Sam.postprocess_masks` at the original image size (the plain resize is in Resize.swift).

import CSAMKernels

/// Masks from low-resolution logits: each plane of x [P, H, W] resized bilinearly to
/// [height, width] (the values of `resizeBilinear`), then thresholded, without keeping the resized
/// floats. Also counts the values above `threshold + offset` and above `threshold - offset`
/// (`calculate_stability_score` of amg.py), in the same pass.
public func resizeBilinearThresholded(
  _ x: Tensor, height: Int, width: Int, threshold: Float, offset: Float
) -> [ThresholdedPlane] {
  precondition(x.shape.count == 3, "resizeBilinearThresholded: input must be [P, H, W], got \(x.shape)")
  precondition(height > 0 && width > 0, "resizeBilinearThresholded: output size \(height)x\(width)")
  let (planes, inH, inW) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(inH > 0 && inW > 0 || planes == 0, "resizeBilinearThresholded: empty planes \(x.shape)")
  guard planes > 0 else { return [] }
  let rowTaps = LinearTaps(inputSize: inH, outputSize: height)
  let columnTaps = LinearTaps(inputSize: inW, outputSize: width)
  let chunks = max(1, min(ComputeThreads.count, height))
  let levels = ThresholdLevels(
    mask: threshold, high: threshold + offset, low: threshold - offset)
  let planeSize = height * width
  return x.withUnsafeBufferPointer { xp in
    rowTaps.withPointers { rows in
      columnTaps.withPointers { columns in
        let resizer = RowResizer(
          input: xp.baseAddress!, inputHeight: inH, inputWidth: inW, height: height, width: width,
          rows: rows, columns: columns)
        return (0..<planes).map { plane in
          // Per chunk: [above threshold + offset, above threshold - offset].
          var counts = [Int](repeating: 0, count: chunks * 2)
          // Every byte is written below, so the mask is not zeroed first.
          let mask = [UInt8](unsafeUninitializedCapacity: planeSize) { mp, initialized in
            counts.withUnsafeMutableBufferPointer { countp in
              let (maskBase, countBase) = (mp.baseAddress!, countp.baseAddress!)
              parallelForChunks(chunks) { chunkIndices in
                BlockRowCache.withCache(width: width, inputWidth: inW) { cache in
                  for chunk in chunkIndices {
                    for y in chunkRange(chunk, of: chunks, count: height) {
                      let (high, low) = resizer.threshold(
                        plane * height + y, into: maskBase + y * width, levels: levels, cache: &cache)
                      countBase[chunk * 2] += high
                      countBase[chunk * 2 + 1] += low
                    }
                  }
                }
              }
            }
            initialized = planeSize
          }
          var (high, low) = (0, 0)
          for chunk in 0..<chunks {
            high += counts[chunk * 2]
            low += counts[chunk * 2 + 1]
          }
          return ThresholdedPlane(mask: mask, countAboveHigh: high, countAboveLow: low)
        }
      }
    }
  }
}

/// One plane of `resizeBilinearThresholded`.
public struct ThresholdedPlane: Sendable, Equatable {
  /// 1 where the resized value > threshold, else 0, row-major [height, width].
  public var mask: [UInt8]
  /// Values > threshold + offset.
  public var countAboveHigh: Int
  /// Values > threshold - offset.
  public var countAboveLow: Int
}

struct ThresholdLevels {
  var mask: Float
  var high: Float
  var low: Float

  /// Every value the resize makes from source values within [least, greatest] lies within
  /// [least - margin, greatest + margin], margin = |bound| * 2^-16 + 1e-30: each output is four
  /// products by weights in [0, 1] (summing to 1 within 2^-24 per axis) and three sums, each
  /// rounding is monotonic, so an output is at least what the same arithmetic makes of `least`
  /// everywhere, which is `least` within 10 roundings of 2^-24 (plus underflow). The margin is
  /// ample.
  static let relativeMargin: Float = 0x1p-16
  static let absoluteMargin: Float = 1e-30

  /// The outcome of all three comparisons for every value resized from sources within
  /// [least, greatest], when these bounds settle each of them (nil otherwise, and for bounds
  /// that are not finite).
  func settled(least: Float, greatest: Float) -> (mask: Bool, high: Bool, low: Bool)? {
    guard least.isFinite && greatest.isFinite else { return nil }
    let lowest = least - least.magnitude * Self.relativeMargin - Self.absoluteMargin
    let highest = greatest + greatest.magnitude * Self.relativeMargin + Self.absoluteMargin
    // true: all above the level; false: none above it.
    func side(_ level: Float) -> Bool? { lowest > level ? true : highest <= level ? false : nil }
    guard let m = side(mask), let h = side(high), let l = side(low) else { return nil }
    return (m, h, l)
  }
}

/// mask[j] = (topWeight * top[j] + bottomWeight * bottom[j]) > levels.mask, the blend of
/// `blendRows` thresholded without being stored; returns the counts of blended values
/// > levels.high and > levels.low (CSAMKernels/resize.c).
func blendAndThreshold(
  _ top: UnsafePointer<Float>, _ bottom: UnsafePointer<Float>, topWeight: Float, bottomWeight: Float,
  mask: UnsafeMutablePointer<UInt8>, count: Int, levels: ThresholdLevels
) -> (high: Int, low: Int) {
  var (high, low) = (0, 0)
  sam_blend_threshold(
    mask, top, bottom, topWeight, bottomWeight, count, levels.mask, levels.high, levels.low, &high, &low)
  return (high, low)
}

extension RowResizer {
  /// `blend` thresholded into mask bytes, with the counts of `blendAndThreshold`, skipping blocks
  /// of `BlockRowCache.blockWidth` output columns whose source values settle every comparison (see `ThresholdLevels.settled`): their mask bytes and
  /// counts follow from the bounds, and only the other blocks are resized and compared.
  func threshold(
    _ outRow: Int, into mask: UnsafeMutablePointer<UInt8>, levels: ThresholdLevels,
    cache: inout BlockRowCache
  ) -> (high: Int, low: Int) {
    let plane = outRow / height
    let oy = outRow % height
    let (top, bottom) = (
      plane * inputHeight + Int(rows.first[oy]), plane * inputHeight + Int(rows.second[oy])
    )
    let (topSource, bottomSource) = (input + top * inputWidth, input + bottom * inputWidth)
    let topSlot = cache.slot(for: top, keeping: bottom, source: topSource)
    let bottomSlot = cache.slot(for: bottom, keeping: top, source: bottomSource)
    let (topWeight, bottomWeight) = (rows.firstWeight[oy], rows.secondWeight[oy])
    if cache.rowsWithoutBounds > 0 {
      cache.rowsWithoutBounds -= 1
      // Whole rows: each run of blocks not resized yet in one call.
      let fill = { (values: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, range: Range<Int>) in
        resizeHorizontally(
          values + range.lowerBound, source: source, sourceCount: inputWidth,
          columns: columns.offset(by: range.lowerBound), count: range.count)
      }
      let topRow = cache.resizedRow(topSlot, source: topSource, fill: fill)
      let bottomRow = cache.resizedRow(bottomSlot, source: bottomSource, fill: fill)
      return blendAndThreshold(
        topRow, bottomRow, topWeight: topWeight, bottomWeight: bottomWeight, mask: mask, count: width,
        levels: levels)
    }
    var (high, low) = (0, 0)
    var settledBlocks = 0
    for block in 0..<cache.blocks {
      let start = block * BlockRowCache.blockWidth
      let end = min(start + BlockRowCache.blockWidth, width)
      let (least, greatest) = cache.bounds(
        topSlot, bottomSlot, firstGroup: Int(columns.first[start]) / 8,
        lastGroup: Int(columns.second[end - 1]) / 8)
      if let settled = levels.settled(least: least, greatest: greatest) {
        settledBlocks += 1
        (mask + start).update(repeating: settled.mask ? 1 : 0, count: end - start)
        high += settled.high ? end - start : 0
        low += settled.low ? end - start : 0
      } else {
        let blockColumns = columns.offset(by: start)
        let topRow = cache.resized(topSlot, block: block, source: topSource) {
          resizeHorizontally(
            $0 + start, source: $1, sourceCount: inputWidth, columns: blockColumns, count: end - start)
        }
        let bottomRow = cache.resized(bottomSlot, block: block, source: bottomSource) {
          resizeHorizontally(
            $0 + start, source: $1, sourceCount: inputWidth, columns: blockColumns, count: end - start)
        }
        let counts = blendAndThreshold(
          topRow + start, bottomRow + start, topWeight: topWeight, bottomWeight: bottomWeight,
          mask: mask + start, count: end - start, levels: levels)
        high += counts.high
        low += counts.low
      }
    }
    // After 8 rows in a row with nothing settled, the next 64 rows are resized without bounds.
    cache.unsettledRows = settledBlocks == 0 ? cache.unsettledRows + 1 : 0
    if cache.unsettledRows == 8 {
      cache.unsettledRows = 0
      cache.rowsWithoutBounds = 64
    }
    return (high, low)
  }
}

/// Two source rows of the thresholded resize (global row index plane * H + y), each with the
/// bounds of its values per 8 columns and its horizontally resized values, filled block by block
/// as output blocks need them. Borrows its storage (`BlockRowCache.withCache`).
struct BlockRowCache {
  /// Output columns per block.
  static let blockWidth = 64
  let width: Int
  let inputWidth: Int
  let blocks: Int
  let groups: Int
  var rows = (-1, -1)
  /// Per slot: the row's source values, and whether its groups are bounded yet.
  var sources: [UnsafePointer<Float>?] = [nil, nil]
  var bounded = [false, false]
  /// Output rows in a row in which no block was settled, and rows left to do without bounds: a
  /// noisy mask (no block settles) costs little more than without them.
  var unsettledRows = 0
  var rowsWithoutBounds = 0
  /// Per slot: `width` resized values.
  let values: UnsafeMutablePointer<Float>
  /// Per slot: least and greatest value of each group of 8 source columns (-inf and +inf for a
  /// group holding a value that is not finite).
  let least: UnsafeMutablePointer<Float>
  let greatest: UnsafeMutablePointer<Float>
  /// Per slot and block: whether the block's resized values are there.
  let filled: UnsafeMutablePointer<Bool>

  /// Runs `body` with a cache for rows of `inputWidth` values resized to `width`.
  static func withCache<R>(width: Int, inputWidth: Int, _ body: (inout BlockRowCache) -> R) -> R {
    let blocks = (width + blockWidth - 1) / blockWidth
    let groups = (inputWidth + 7) / 8
    var floats = [Float](repeating: 0, count: 2 * width + 4 * groups)
    var flags = [Bool](repeating: false, count: 2 * blocks)
    return floats.withUnsafeMutableBufferPointer { fp in
      flags.withUnsafeMutableBufferPointer { bp in
        let base = fp.baseAddress!
        var cache = BlockRowCache(
          width: width, inputWidth: inputWidth, blocks: blocks, groups: groups, values: base,
          least: base + 2 * width, greatest: base + 2 * width + 2 * groups, filled: bp.baseAddress!)
        return body(&cache)
      }
    }
  }

  private init(
    width: Int, inputWidth: Int, blocks: Int, groups: Int, values: UnsafeMutablePointer<Float>,
    least: UnsafeMutablePointer<Float>, greatest: UnsafeMutablePointer<Float>,
    filled: UnsafeMutablePointer<Bool>
  ) {
    (self.width, self.inputWidth, self.blocks, self.groups) = (width, inputWidth, blocks, groups)
    (self.values, self.least, self.greatest, self.filled) = (values, least, greatest, filled)
  }

  /// The slot (0 or 1) holding `row`, whose values are `source`; a new row takes the slot not
  /// holding `other` and has its groups bounded.
  mutating func slot(for row: Int, keeping other: Int, source: UnsafePointer<Float>) -> Int {
    if rows.0 == row { return 0 }
    if rows.1 == row { return 1 }
    let slot: Int
    if rows.0 == other {
      slot = 1
      rows.1 = row
    } else {
      slot = 0
      rows.0 = row
    }
    (filled + slot * blocks).update(repeating: false, count: blocks)
    bounded[slot] = false
    sources[slot] = source
    return slot
  }

  /// Least and greatest value of groups firstGroup...lastGroup of both slots.
  mutating func bounds(_ a: Int, _ b: Int, firstGroup: Int, lastGroup: Int) -> (least: Float, greatest: Float)
  {
    bound(a)
    bound(b)
    var (low, high) = (Float.infinity, -Float.infinity)
    for group in firstGroup...lastGroup {
      low = min(low, least[a * groups + group], least[b * groups + group])
      high = max(high, greatest[a * groups + group], greatest[b * groups + group])
    }
    return (low, high)
  }

  /// Bounds the groups of `slot`'s row, once per row.
  private mutating func bound(_ slot: Int) {
    guard !bounded[slot] else { return }
    groupBounds(
      sources[slot]!, count: inputWidth, least: least + slot * groups, greatest: greatest + slot * groups)
    bounded[slot] = true
  }

  /// All the resized values of `slot` (`width` floats), filling each run of blocks not there yet
  /// with one `fill(values, source, columns)`.
  func resizedRow(
    _ slot: Int, source: UnsafePointer<Float>,
    fill: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Range<Int>) -> Void
  ) -> UnsafeMutablePointer<Float> {
    let row = values + slot * width
    let flags = filled + slot * blocks
    var block = 0
    while block < blocks {
      guard !flags[block] else {
        block += 1
        continue
      }
      let first = block
      while block < blocks && !flags[block] {
        flags[block] = true
        block += 1
      }
      fill(row, source, (first * Self.blockWidth)..<min(block * Self.blockWidth, width))
    }
    return row
  }

  /// The resized values of `slot` (`width` floats), filling block `block` with `fill(values,
  /// source)` first if needed.
  func resized(
    _ slot: Int, block: Int, source: UnsafePointer<Float>,
    fill: (UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> Void
  ) -> UnsafeMutablePointer<Float> {
    let row = values + slot * width
    if !filled[slot * blocks + block] {
      fill(row, source)
      filled[slot * blocks + block] = true
    }
    return row
  }
}

/// Least and greatest of each group of 8 values of a row (the last group may be shorter): -inf and
/// +inf for a group holding a NaN or an infinity, so that nothing is decided from it.
func groupBounds(
  _ row: UnsafePointer<Float>, count: Int, least: UnsafeMutablePointer<Float>,
  greatest: UnsafeMutablePointer<Float>
) {
  var group = 0
  while group * 8 + 8 <= count {
    let v = UnsafeRawPointer(row + group * 8).loadUnaligned(as: SIMD8<Float>.self)
    // v - v is 0 in finite lanes and NaN in the others.
    let zero = v - v
    if !any(zero .!= zero) {
      let low4 = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .< v.lowHalf)
      let high4 = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
      let low2 = low4.lowHalf.replacing(with: low4.highHalf, where: low4.highHalf .< low4.lowHalf)
      let high2 = high4.lowHalf.replacing(with: high4.highHalf, where: high4.highHalf .> high4.lowHalf)
      least[group] = min(low2[0], low2[1])
      greatest[group] = max(high2[0], high2[1])
    } else {
      least[group] = -.infinity
      greatest[group] = .infinity
    }
    group += 1
  }
  if group * 8 < count {
    var (low, high) = (Float.infinity, -Float.infinity)
    for j in (group * 8)..<count {
      let v = row[j]
      guard v.isFinite else {
        (low, high) = (-.infinity, .infinity)
        break
      }
      low = min(low, v)
      high = max(high, v)
    }
    least[group] = low
    greatest[group] = high
  }
}
