// Bilinear resize of planes, as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=False).

import CSAMKernels

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

/// How many leading input values (0 ..< n) the first `kept` outputs of a bilinear resize of
/// `inputSize` values to `outputSize` read (with `resizeBilinear`'s taps, weights of 0 included).
public func bilinearSourceExtent(inputSize: Int, outputSize: Int, kept: Int) -> Int {
  precondition(
    inputSize > 0 && kept >= 0 && kept <= outputSize,
    "bilinearSourceExtent: \(kept) of \(outputSize) outputs from \(inputSize) inputs")
  let taps = LinearTaps(inputSize: inputSize, outputSize: outputSize)
  return (0..<kept).reduce(0) { extent, i in max(extent, Int(taps.first[i]) + 1, Int(taps.second[i]) + 1) }
}

/// Output rows of a bilinear resize (global row index plane * height + y), blended from two
/// horizontally resized source rows. Same arithmetic as blending four pixels.
struct RowResizer {
  var input: UnsafePointer<Float>
  var inputHeight: Int
  var inputWidth: Int
  /// Output rows per plane and values per row actually produced.
  var height: Int
  var width: Int
  var rows: LinearTapPointers
  var columns: LinearTapPointers

  func blend(_ outRow: Int, into out: UnsafeMutablePointer<Float>, cache: inout RowCache) {
    let oy = outRow % height
    let (topRow, bottomRow) = sourceRows(outRow, cache: &cache)
    blendRows(
      out, topRow, bottomRow, topWeight: rows.firstWeight[oy], bottomWeight: rows.secondWeight[oy],
      count: width)
  }

  /// The two horizontally resized source rows that output row `outRow` blends.
  private func sourceRows(_ outRow: Int, cache: inout RowCache) -> (
    top: UnsafePointer<Float>, bottom: UnsafePointer<Float>
  ) {
    let plane = outRow / height
    let oy = outRow % height
    let (top, bottom) = (
      plane * inputHeight + Int(rows.first[oy]), plane * inputHeight + Int(rows.second[oy])
    )
    let topRow = cache.row(top, keeping: bottom) { slot in
      resizeHorizontally(
        slot, source: input + top * inputWidth, sourceCount: inputWidth, columns: columns, count: width)
    }
    let bottomRow = cache.row(bottom, keeping: top) { slot in
      resizeHorizontally(
        slot, source: input + bottom * inputWidth, sourceCount: inputWidth, columns: columns, count: width)
    }
    return (UnsafePointer(topRow), UnsafePointer(bottomRow))
  }
}

/// Two horizontally resized source rows, identified by their global row index (plane * H + y).
struct RowCache {
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

/// out[j] = w0[j] * source[x0[j]] + w1[j] * source[x1[j]]: one source row of `sourceCount`
/// values resized horizontally, the two products rounded before the sum (CSAMKernels/resize.c).
func resizeHorizontally(
  _ out: UnsafeMutablePointer<Float>, source: UnsafePointer<Float>, sourceCount: Int,
  columns c: LinearTapPointers, count: Int
) {
  sam_resize_row(out, source, sourceCount, c.first, c.second, c.firstWeight, c.secondWeight, count)
}

/// out = topWeight * top + bottomWeight * bottom (CSAMKernels/resize.c).
func blendRows(
  _ out: UnsafeMutablePointer<Float>, _ top: UnsafePointer<Float>, _ bottom: UnsafePointer<Float>,
  topWeight: Float, bottomWeight: Float, count: Int
) {
  sam_blend_rows(out, top, bottom, topWeight, bottomWeight, count)
}
