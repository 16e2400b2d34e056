// Bilinear resize of planes, as torch.nn.functional.interpolate(mode="bilinear",
// align_corners=False, antialias=False).

/// x [P, H, W] -> [P, height, width]. Source coordinate of output index i along an axis:
/// max(0, (i + 0.5) * scale - 0.5) with scale = Float(in) / Float(out), in float32 with a fused
/// multiply-add as torch's compiled kernel does; the two neighbours are floor(src) and
/// min(floor(src) + 1, in - 1).
public func resizeBilinear(_ x: Tensor, height: Int, width: Int) -> Tensor {
  precondition(x.shape.count == 3, "resizeBilinear: input must be [P, H, W], got \(x.shape)")
  precondition(height > 0 && width > 0, "resizeBilinear: output size \(height)x\(width)")
  let (planes, inH, inW) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(inH > 0 && inW > 0 || planes == 0, "resizeBilinear: empty planes \(x.shape)")
  let outShape = [planes, height, width]
  guard planes > 0 else { return Tensor(zeros: outShape) }
  let rowTaps = LinearTaps(inputSize: inH, outputSize: height)
  let columnTaps = LinearTaps(inputSize: inW, outputSize: width)
  return Tensor(shape: outShape) { out in
    x.data.withUnsafeBufferPointer { xp in
      rowTaps.withPointers { rows in
        columnTaps.withPointers { columns in
          let input = xp.baseAddress!
          parallelForChunksIfLarge(planes * height, work: planes * height * width) { range in
            // Separable: source rows are resized horizontally once into two cached rows, then
            // each output row blends two of them. Same arithmetic as blending four pixels.
            var cache = [Float](repeating: 0, count: 2 * width)
            cache.withUnsafeMutableBufferPointer { cp in
              var rowCache = RowCache(slots: (cp.baseAddress!, cp.baseAddress! + width))
              for outRow in range {
                let plane = outRow / height
                let oy = outRow % height
                let (top, bottom) = (plane * inH + rows.first[oy], plane * inH + rows.second[oy])
                let topRow = rowCache.row(top, keeping: bottom) { slot in
                  resizeHorizontally(slot, source: input + top * inW, columns: columns, count: width)
                }
                let bottomRow = rowCache.row(bottom, keeping: top) { slot in
                  resizeHorizontally(slot, source: input + bottom * inW, columns: columns, count: width)
                }
                blendRows(
                  out + outRow * width, topRow, bottomRow, topWeight: rows.firstWeight[oy],
                  bottomWeight: rows.secondWeight[oy], count: width)
              }
            }
          }
        }
      }
    }
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
