// Bilinear resize of planes, as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=False).

/// x [P, H, W] -> [P, height, width]. Source coordinate of output index i along an axis:
/// max(0, (i + 0.5) * scale - 0.5) with scale = Float(in) / Float(out), in float32 with a fused
/// multiply-add as torch's compiled kernel does; the two neighbours are floor(src) and
/// min(floor(src) + 1, in - 1).
public func resizeBilinear(_ x: Tensor, height: Int, width: Int) -> Tensor {
  resizeBilinear(x, height: height, width: width, keepingTop: height, left: width)
}

/// resizeBilinear(x, height, width) cropped to its top-left [keptHeight, keptWidth] corner, without
/// computing the rest: x [P, H, W] -> [P, keptHeight, keptWidth], the same values as resizing in
/// full and then cropping (`Sam.postprocess_masks` resizes to 1024 x 1024 and crops).
public func resizeBilinear(
  _ x: Tensor, height: Int, width: Int, keepingTop keptHeight: Int, left keptWidth: Int
) -> Tensor {
  precondition(x.shape.count == 3, "resizeBilinear: input must be [P, H, W], got \(x.shape)")
  precondition(height > 0 && width > 0, "resizeBilinear: output size \(height)x\(width)")
  precondition(
    keptHeight > 0 && keptHeight <= height && keptWidth > 0 && keptWidth <= width,
    "resizeBilinear: crop \(keptHeight)x\(keptWidth) outside \(height)x\(width)")
  let (planes, inH, inW) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(inH > 0 && inW > 0 || planes == 0, "resizeBilinear: empty planes \(x.shape)")
  let outShape = [planes, keptHeight, keptWidth]
  guard planes > 0 else { return Tensor(zeros: outShape) }
  // Taps of the full-size resize, of which only the first keptHeight / keptWidth are used.
  let rowTaps = LinearTaps(inputSize: inH, outputSize: height)
  let columnTaps = LinearTaps(inputSize: inW, outputSize: width)
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      rowTaps.withPointers { rows in
        columnTaps.withPointers { columns in
          let resizer = RowResizer(
            input: xp.baseAddress!, inputHeight: inH, inputWidth: inW, height: keptHeight, width: keptWidth,
            rows: rows, columns: columns)
          parallelForChunksIfLarge(planes * keptHeight, work: planes * keptHeight * keptWidth) { range in
            var cache = [Float](repeating: 0, count: 2 * keptWidth)
            cache.withUnsafeMutableBufferPointer { cp in
              var rowCache = RowCache(slots: (cp.baseAddress!, cp.baseAddress! + keptWidth))
              for outRow in range {
                resizer.blend(outRow, into: out + outRow * keptWidth, cache: &rowCache)
              }
            }
          }
        }
      }
    }
  }
}

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
  let chunks = max(1, min(ComputeThreads.count, planes * height))
  // Per chunk and plane: [above threshold + offset, above threshold - offset].
  var counts = [Int](repeating: 0, count: chunks * planes * 2)
  var masks = [UInt8](repeating: 0, count: planes * height * width)
  let levels = ThresholdLevels(
    mask: threshold, high: threshold + offset, low: threshold - offset)
  x.withUnsafeBufferPointer { xp in
    rowTaps.withPointers { rows in
      columnTaps.withPointers { columns in
        masks.withUnsafeMutableBufferPointer { mp in
          counts.withUnsafeMutableBufferPointer { countp in
            let (maskBase, countBase) = (mp.baseAddress!, countp.baseAddress!)
            let resizer = RowResizer(
              input: xp.baseAddress!, inputHeight: inH, inputWidth: inW, height: height, width: width,
              rows: rows, columns: columns)
            parallelForChunks(chunks) { chunkIndices in
              var scratch = [Float](repeating: 0, count: 3 * width)
              scratch.withUnsafeMutableBufferPointer { sp in
                let row = sp.baseAddress!
                var rowCache = RowCache(slots: (row + width, row + 2 * width))
                for chunk in chunkIndices {
                  let chunkCounts = countBase + chunk * planes * 2
                  for outRow in chunkRange(chunk, of: chunks, count: planes * height) {
                    resizer.blend(outRow, into: row, cache: &rowCache)
                    let plane = outRow / height
                    let (high, low) = thresholdRow(
                      row, mask: maskBase + outRow * width, count: width, levels: levels)
                    chunkCounts[plane * 2] += high
                    chunkCounts[plane * 2 + 1] += low
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  let planeSize = height * width
  return (0..<planes).map { p in
    var (high, low) = (0, 0)
    for chunk in 0..<chunks {
      high += counts[(chunk * planes + p) * 2]
      low += counts[(chunk * planes + p) * 2 + 1]
    }
    return ThresholdedPlane(
      mask: Array(masks[(p * planeSize)..<((p + 1) * planeSize)]), countAboveHigh: high, countAboveLow: low)
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
}

/// mask[j] = row[j] > levels.mask; returns the counts of row[j] > levels.high and > levels.low.
/// 8 values at a time: lane counters, and the mask bytes narrowed from the comparison's lanes.
private func thresholdRow(
  _ row: UnsafePointer<Float>, mask: UnsafeMutablePointer<UInt8>, count: Int, levels: ThresholdLevels
) -> (high: Int, low: Int) {
  let (maskLevel, highLevel, lowLevel) = (
    SIMD8<Float>(repeating: levels.mask), SIMD8<Float>(repeating: levels.high),
    SIMD8<Float>(repeating: levels.low)
  )
  let one = SIMD8<Int32>(repeating: 1)
  var highLanes = SIMD8<Int32>.zero
  var lowLanes = SIMD8<Int32>.zero
  var j = 0
  while j + 8 <= count {
    let v = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD8<Float>.self)
    let bits = SIMD8<Int32>.zero.replacing(with: one, where: v .> maskLevel)
    UnsafeMutableRawPointer(mask + j).storeBytes(
      of: SIMD8<UInt8>(truncatingIfNeeded: bits), as: SIMD8<UInt8>.self)
    highLanes &+= SIMD8<Int32>.zero.replacing(with: one, where: v .> highLevel)
    lowLanes &+= SIMD8<Int32>.zero.replacing(with: one, where: v .> lowLevel)
    j += 8
  }
  var high = Int(highLanes.wrappedSum())
  var low = Int(lowLanes.wrappedSum())
  while j < count {
    let v = row[j]
    mask[j] = v > levels.mask ? 1 : 0
    high += v > levels.high ? 1 : 0
    low += v > levels.low ? 1 : 0
    j += 1
  }
  return (high, low)
}

/// Output rows of a bilinear resize (global row index plane * height + y), blended from two
/// horizontally resized source rows. Same arithmetic as blending four pixels.
private struct RowResizer {
  var input: UnsafePointer<Float>
  var inputHeight: Int
  var inputWidth: Int
  /// Output rows per plane and values per row actually produced.
  var height: Int
  var width: Int
  var rows: LinearTapPointers
  var columns: LinearTapPointers

  func blend(_ outRow: Int, into out: UnsafeMutablePointer<Float>, cache: inout RowCache) {
    let plane = outRow / height
    let oy = outRow % height
    let (top, bottom) = (plane * inputHeight + rows.first[oy], plane * inputHeight + rows.second[oy])
    let topRow = cache.row(top, keeping: bottom) { slot in
      resizeHorizontally(slot, source: input + top * inputWidth, columns: columns, count: width)
    }
    let bottomRow = cache.row(bottom, keeping: top) { slot in
      resizeHorizontally(slot, source: input + bottom * inputWidth, columns: columns, count: width)
    }
    blendRows(
      out, topRow, bottomRow, topWeight: rows.firstWeight[oy], bottomWeight: rows.secondWeight[oy],
      count: width)
  }
}

/// Two horizontally resized source rows, identified by their global row index (plane * H + y).
private struct RowCache {
  var slots: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)
  var rows = (-1, -1)

  init(slots: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)) { self.slots = slots }

  /// The slot holding `row`, filling one with `fill` if needed, never evicting `keeping`.
  mutating func row(
    _ row: Int, keeping other: Int, fill: (UnsafeMutablePointer<Float>) -> Void
  ) -> UnsafeMutablePointer<Float> {
    if rows.0 == row { return slots.0 }
    if rows.1 == row { return slots.1 }
    if rows.0 == other {
      fill(slots.1)
      rows.1 = row
      return slots.1
    }
    fill(slots.0)
    rows.0 = row
    return slots.0
  }
}

/// Interpolation indices and weights along one axis.
struct LinearTaps {
  var first: [Int]
  var second: [Int]
  var firstWeight: [Float]
  var secondWeight: [Float]

  init(inputSize: Int, outputSize: Int) {
    let scale = Float(inputSize) / Float(outputSize)
    first = [Int](repeating: 0, count: outputSize)
    second = first
    firstWeight = [Float](repeating: 0, count: outputSize)
    secondWeight = firstWeight
    for i in 0..<outputSize {
      // One rounding, as a fused multiply-add: torch's CPU kernel is compiled with FMA contraction,
      // and rounding the product first moves some weights by ~1e-6 (measured against torch 2.15).
      let source = max(0, Float(-0.5).addingProduct(scale, Float(i) + 0.5))
      let index = min(Int(source), inputSize - 1)
      let lambda = min(max(source - Float(index), 0), 1)
      first[i] = index
      second[i] = index + (index < inputSize - 1 ? 1 : 0)
      firstWeight[i] = 1 - lambda
      secondWeight[i] = lambda
    }
  }

  func withPointers<R>(_ body: (LinearTapPointers) -> R) -> R {
    first.withUnsafeBufferPointer { f in
      second.withUnsafeBufferPointer { s in
        firstWeight.withUnsafeBufferPointer { fw in
          secondWeight.withUnsafeBufferPointer { sw in
            body(
              LinearTapPointers(
                first: f.baseAddress!, second: s.baseAddress!, firstWeight: fw.baseAddress!,
                secondWeight: sw.baseAddress!))
          }
        }
      }
    }
  }
}

struct LinearTapPointers {
  var first: UnsafePointer<Int>
  var second: UnsafePointer<Int>
  var firstWeight: UnsafePointer<Float>
  var secondWeight: UnsafePointer<Float>
}

/// out[j] = w0[j] * source[x0[j]] + w1[j] * source[x1[j]]: one source row resized horizontally.
private func resizeHorizontally(
  _ out: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, columns c: LinearTapPointers,
  count: Int
) {
  for j in 0..<count {
    out[j] = c.firstWeight[j] * source[c.first[j]] + c.secondWeight[j] * source[c.second[j]]
  }
}

/// out = topWeight * top + bottomWeight * bottom, 8 values at a time.
private func blendRows(
  _ out: UnsafeMutablePointer<Float>, _ top: UnsafePointer<Float>, _ bottom: UnsafePointer<Float>,
  topWeight: Float, bottomWeight: Float, count: Int
) {
  let (tw, bw) = (SIMD8<Float>(repeating: topWeight), SIMD8<Float>(repeating: bottomWeight))
  var j = 0
  while j + 8 <= count {
    let t = UnsafeRawPointer(top + j).loadUnaligned(as: SIMD8<Float>.self)
    let b = UnsafeRawPointer(bottom + j).loadUnaligned(as: SIMD8<Float>.self)
    UnsafeMutableRawPointer(out + j).storeBytes(of: tw * t + bw * b, as: SIMD8<Float>.self)
    j += 8
  }
  while j < count {
    out[j] = topWeight * top[j] + bottomWeight * bottom[j]
    j += 1
  }
}
