// Elementwise kernels, LayerNorm and softmax. Each runs one pass over memory, in parallel chunks
// of rows or elements; the per-chunk work is a small named function over pointers.

/// Elementwise work below this many values runs on the calling thread: waking threads costs more.
let parallelElementThreshold = 1 << 15

/// Runs `body` over chunks of `0..<count` in parallel when `count` is large enough to pay for it.
func parallelForElements(_ count: Int, _ body: (Range<Int>) -> Void) {
  if count < parallelElementThreshold {
    if count > 0 { body(0..<count) }
  } else {
    parallelForChunks(count, body)
  }
}

/// Applies `kernel(out, x, count)` over parallel chunks of x (one call per chunk).
func mapElements(
  _ x: Tensor,
  _ kernel: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void
) -> Tensor {
  Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { xp in
      let input = xp.baseAddress!
      parallelForElements(x.count) { range in
        kernel(out + range.lowerBound, input + range.lowerBound, range.count)
      }
    }
  }
}

/// max(x, 0).
public func relu(_ x: Tensor) -> Tensor {
  mapElements(x, reluKernel)
}

/// x * s.
public func scale(_ x: Tensor, by s: Float) -> Tensor {
  Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { xp in
      let input = xp.baseAddress!
      parallelForElements(x.count) { range in
        scaleVector(out + range.lowerBound, input + range.lowerBound, by: s, count: range.count)
      }
    }
  }
}

/// a + b, same shapes.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
  precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
  return Tensor(shape: a.shape) { out in
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        let (pa, pb) = (ap.baseAddress!, bp.baseAddress!)
        parallelForElements(a.count) { range in
          let i = range.lowerBound
          addVectors(out + i, pa + i, pb + i, count: range.count)
        }
      }
    }
  }
}

/// a += b, same shapes.
public func addInPlace(_ a: inout Tensor, _ b: Tensor) {
  precondition(a.shape == b.shape, "addInPlace: shapes \(a.shape) and \(b.shape) differ")
  let count = a.count
  a.data.withUnsafeMutableBufferPointer { ap in
    b.withUnsafeBufferPointer { bp in
      guard let pa = ap.baseAddress, let pb = bp.baseAddress else { return }
      parallelForElements(count) { range in
        let i = range.lowerBound
        addVectors(pa + i, pa + i, pb + i, count: range.count)
      }
    }
  }
}

/// Adds the vector v [C] to every row of x [..., C].
public func addRowVector(_ x: inout Tensor, _ v: Tensor) {
  let columns = v.count
  precondition(
    x.shape.last == columns, "addRowVector: rows of \(x.shape) do not have \(columns) values")
  guard columns > 0 else { return }
  let rows = x.count / columns
  x.data.withUnsafeMutableBufferPointer { xp in
    v.withUnsafeBufferPointer { vp in
      let (px, pv) = (xp.baseAddress!, vp.baseAddress!)
      if rows * columns < parallelElementThreshold {
        for row in 0..<rows { addVectors(px + row * columns, px + row * columns, pv, count: columns) }
      } else {
        parallelForChunks(rows) { range in
          for row in range { addVectors(px + row * columns, px + row * columns, pv, count: columns) }
        }
      }
    }
  }
}

/// LayerNorm over the last dimension (also LayerNorm2d in channels-last):
/// (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance mean((x - mean)^2).
public func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float) -> Tensor {
  guard let columns = x.shape.last else {
    preconditionFailure("layerNorm: scalar input")
  }
  precondition(
    weight.count == columns && bias.count == columns,
    "layerNorm: weight \(weight.shape) and bias \(bias.shape) for rows of \(columns)")
  guard columns > 0 else { return x }
  let rows = x.count / columns
  return Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { xp in
      weight.withUnsafeBufferPointer { wp in
        bias.withUnsafeBufferPointer { bp in
          let (px, pw, pb) = (xp.baseAddress!, wp.baseAddress!, bp.baseAddress!)
          let body = { (range: Range<Int>) in
            for row in range {
              layerNormRow(
                out + row * columns, px + row * columns, weight: pw, bias: pb, count: columns, eps: eps)
            }
          }
          if x.count < parallelElementThreshold { body(0..<rows) } else { parallelForChunks(rows, body) }
        }
      }
    }
  }
}

func layerNormRow(
  _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
  bias: UnsafePointer<Float>, count: Int, eps: Float
) {
  let (mean, inverse) = layerNormRowStatistics(x, count: count, eps: eps)
  layerNormRowApply(out, x, mean: mean, inverse: inverse, weight: weight, bias: bias, count: count)
}

/// (x - mean) * inverse * weight + bias over one row.
func layerNormRowApply(
  _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, mean: Float, inverse: Float,
  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, count: Int
) {
  var i = 0
  let meanVector = SIMD8<Float>(repeating: mean)
  let inverseVector = SIMD8<Float>(repeating: inverse)
  while i + 8 <= count {
    let normalized = (loadVector(x + i) - meanVector) * inverseVector
    storeVector(loadVector(bias + i).addingProduct(normalized, loadVector(weight + i)), out + i)
    i += 8
  }
  while i < count {
    out[i] = (x[i] - mean) * inverse * weight[i] + bias[i]
    i += 1
  }
}

/// A row's mean and 1 / sqrt(variance + eps), as `layerNorm` normalizes it.
func layerNormRowStatistics(_ x: UnsafePointer<Float>, count: Int, eps: Float) -> (
  mean: Float, inverse: Float
) {
  let roughMean = sumVector(x, count: count) / Float(count)
  // Second pass around the rough mean (torch's two-pass definition, no E[x^2] - mean^2
  // cancellation); the sum of the deviations also corrects the mean's own rounding error.
  let roughVector = SIMD8<Float>(repeating: roughMean)
  var deviations = SIMD8<Float>.zero
  var squares = SIMD8<Float>.zero
  var i = 0
  while i + 8 <= count {
    let d = loadVector(x + i) - roughVector
    deviations += d
    squares.addProduct(d, d)
    i += 8
  }
  var deviationTail: Float = 0
  var squareTail: Float = 0
  while i < count {
    let d = x[i] - roughMean
    deviationTail += d
    squareTail += d * d
    i += 1
  }
  let n = Float(count)
  let correction = (deviations.sum() + deviationTail) / n
  let variance = max(0, (squares.sum() + squareTail) / n - correction * correction)
  return (roughMean + correction, 1 / (variance + eps).squareRoot())
}

/// Each row's mean and 1 / sqrt(variance + eps) over the last dimension, the statistics that
/// `layerNorm` normalizes with (the same arithmetic).
func layerNormStatistics(_ x: Tensor, eps: Float) -> (mean: [Float], inverse: [Float]) {
  guard let columns = x.shape.last, columns > 0 else {
    preconditionFailure("layerNormStatistics: input \(x.shape)")
  }
  let rows = x.count / columns
  var mean = [Float](repeating: 0, count: rows)
  var inverse = [Float](repeating: 0, count: rows)
  x.withUnsafeBufferPointer { xp in
    for row in 0..<rows {
      (mean[row], inverse[row]) = layerNormRowStatistics(
        xp.baseAddress! + row * columns, count: columns, eps: eps)
    }
  }
  return (mean, inverse)
}

private func reluKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
  let zero = SIMD8<Float>.zero
  var i = 0
  while i + 8 <= count {
    var v = loadVector(x + i)
    v.replace(with: zero, where: v .< zero)
    storeVector(v, out + i)
    i += 8
  }
  while i < count {
    out[i] = x[i] < 0 ? 0 : x[i]
    i += 1
  }
}

// Per-file copies: SwiftPM's debug builds compile file by file, and the optimizer cannot inline a
// function from another file of the module (not even an @inlinable one), which would leave a call
// per vector in these loops.
@inline(__always)
private func loadVector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func loadVector(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func storeVector(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
