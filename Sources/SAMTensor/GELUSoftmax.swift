// GELU (in C, CSAMKernels/gelu.c and gelu16.h, for AVX-512 where available) and softmax, built on a
// vector exp. The polynomial coefficients were fitted for this project (weighted least squares
// iterated towards minimax error, in double precision; GELU's: Scripts/fit_gelu.py).
import CSAMKernels

/// e^x for lanes x <= 0 (softmax after subtracting the maximum, GELU's e^(-z^2)): 2^n * p(r) with
/// n = round(x / ln 2), r = x - n ln 2 (|r| <= ln 2 / 2) and p the degree-7 Taylor polynomial
/// (truncation error < 6e-9 relative). Inputs below -87.33 give 0 (no denormals); NaN stays NaN.
/// Positive inputs are not supported (no overflow handling, to keep the loop short).
@_transparent  // @inline(__always) still left a call from softmaxRow; transparent is inlined in SIL
func vectorExpNonPositive(_ x: SIMD8<Float>) -> SIMD8<Float> {
  // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
  let magic = SIMD8<Float>(repeating: 12_582_912)
  let shifted = magic.addingProduct(x, SIMD8(repeating: 1.442_695_04))
  let n = shifted - magic
  // ln 2 split in two so that n * ln2High is exact for |n| <= 128.
  var r = x.addingProduct(n, SIMD8(repeating: -0.693_145_751_953_125))
  r = r.addingProduct(n, SIMD8(repeating: -1.428_606_765_330_187e-6))
  var p = SIMD8<Float>(repeating: 1.0 / 5040)
  p = SIMD8(repeating: 1.0 / 720).addingProduct(p, r)
  p = SIMD8(repeating: 1.0 / 120).addingProduct(p, r)
  p = SIMD8(repeating: 1.0 / 24).addingProduct(p, r)
  p = SIMD8(repeating: 1.0 / 6).addingProduct(p, r)
  p = SIMD8(repeating: 0.5).addingProduct(p, r)
  p = SIMD8(repeating: 1).addingProduct(p, r)
  p = SIMD8(repeating: 1).addingProduct(p, r)
  let exponent = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
  var result = p * unsafeBitCast(exponent, to: SIMD8<Float>.self)
  // Below -87.33 the exponent bits above are meaningless (or the lanes are -inf): use 0.
  // A named constant: with SIMD8(repeating:) inline, such comparisons were compiled lane by lane.
  let lower = SIMD8<Float>(repeating: -87.33)
  result.replace(with: 0, where: x .< lower)
  return result
}

/// Exact GELU as torch.nn.GELU() (the erf form, not the tanh approximation):
/// x * 0.5 * (1 + erf(x / sqrt(2))) = x Phi(x), with our own approximation (CSAMKernels/gelu16.h),
/// 16 lanes at a time with AVX-512, 8 with AVX2 (`VectorKernels`), the same bits either way.
///
/// It is computed as max(x, 0) - S(|x|) with S(a) = a Phi(-a), which cancels on neither side, and
/// S a piecewise polynomial: degree 7 in the position within each of 7 intervals of width 0.925
/// up to a = 6.01 (coefficients chosen per lane by a permute), 0 beyond. No divide and no exp.
/// Measured over every float32 in [-20, 20] against the exact value in double precision: within
/// 2.25e-7 relative for x >= -3 (where |GELU| >= 1e-30), within 5.5e-9 absolute below -3 (GELU is
/// returned as 0 below -6.01, where |GELU| < 5.5e-9). Special values: NaN -> NaN, +inf -> +inf,
/// -inf -> 0 (torch gives NaN: -inf * 0), -0 -> -0.
public func gelu(_ x: Tensor) -> Tensor {
  mapElements(x, geluKernel)
}

/// GELU in place (no new allocation): x = gelu(x).
public func geluInPlace(_ x: inout Tensor) {
  let count = x.count
  x.data.withUnsafeMutableBufferPointer { xp in
    guard let p = xp.baseAddress else { return }
    parallelForElements(count) { range in
      geluKernel(p + range.lowerBound, p + range.lowerBound, range.count)
    }
  }
}

/// A function applied to a kernel's output while it is still in cache (an epilogue), instead of as
/// a separate pass over memory.
public enum Activation: Sendable, Equatable {
  case identity
  /// Exact GELU, as `gelu`.
  case gelu
}

/// Epilogue over `rows` rows of `columns` values, `stride` apart: x = activation(x + bias), with
/// the bias (one value per column) optional. With neither a bias nor an activation it does nothing.
func applyEpilogue(
  _ x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int, bias: UnsafePointer<Float>?,
  activation: Activation
) {
  if bias == nil && activation == .identity { return }
  for row in 0..<rows {
    let p = x + row * stride
    if let bias { addBiasKernel(p, bias, columns) }
    if activation == .gelu { geluKernel(p, p, columns) }
  }
}

private func addBiasKernel(_ x: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>, _ count: Int) {
  var i = 0
  while i + 8 <= count {
    storeVector(loadVector(x + i) + loadVector(bias + i), x + i)
    i += 8
  }
  while i < count {
    x[i] += bias[i]
    i += 1
  }
}

/// Softmax over the last dimension, in place: exp(x - max) / sum.
public func softmaxLastDimension(_ x: inout Tensor) {
  guard let columns = x.shape.last, columns > 0 else { return }
  let rows = x.count / columns
  let total = x.count
  x.data.withUnsafeMutableBufferPointer { xp in
    let px = xp.baseAddress!
    let body = { (range: Range<Int>) in
      for row in range { softmaxRow(px + row * columns, count: columns) }
    }
    if total < parallelElementThreshold { body(0..<rows) } else { parallelForChunks(rows, body) }
  }
}

/// Softmax of one row in place.
func softmaxRow(_ x: UnsafeMutablePointer<Float>, count: Int) {
  let maximum = maxVector(x, count: count)
  let shift = SIMD8<Float>(repeating: maximum)
  var sums = SIMD8<Float>.zero
  var i = 0
  while i + 8 <= count {
    let e = vectorExpNonPositive(loadVector(x + i) - shift)
    sums += e
    storeVector(e, x + i)
    i += 8
  }
  var total = sums.sum()
  if i < count {
    // The tail goes through the same vector exp, padded with -inf (exp = 0).
    var lanes = SIMD8<Float>(repeating: -.infinity)
    for j in i..<count { lanes[j - i] = x[j] - maximum }
    let e = vectorExpNonPositive(lanes)
    for j in i..<count {
      x[j] = e[j - i]
      total += e[j - i]
    }
  }
  scaleVector(x, x, by: 1 / total, count: count)
}

/// out may alias x.
private func geluKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
  sam_gelu(out, x, count)
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
