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
            for outRow in range {
              let plane = outRow / height
              let oy = outRow % height
              let source = input + plane * inH * inW
              resizeRow(
                out + outRow * width, top: source + rows.first[oy] * inW,
                bottom: source + rows.second[oy] * inW, topWeight: rows.firstWeight[oy],
                bottomWeight: rows.secondWeight[oy], columns: columns, count: width)
            }
          }
        }
      }
    }
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

/// One output row blended from two input rows.
private func resizeRow(
  _ out: UnsafeMutablePointer<Float>, top: UnsafePointer<Float>, bottom: UnsafePointer<Float>,
  topWeight: Float, bottomWeight: Float, columns c: LinearTapPointers, count: Int
) {
  for j in 0..<count {
    let (x0, x1) = (c.first[j], c.second[j])
    let (w0, w1) = (c.firstWeight[j], c.secondWeight[j])
    out[j] = topWeight * (w0 * top[x0] + w1 * top[x1]) + bottomWeight * (w0 * bottom[x0] + w1 * bottom[x1])
  }
}
