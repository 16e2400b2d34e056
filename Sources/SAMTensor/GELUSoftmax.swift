// Kernels built on a vector exp: GELU and softmax. The polynomial coefficients were fitted for this project
// (weighted least squares iterated towards minimax relative error, in double precision).

/// e^x for each lane: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (|r| <= ln 2 / 2) and
/// p the degree-7 Taylor polynomial (truncation error < 6e-9 relative). Inputs below -87.33 give
/// 0 (no denormals), above 88.72 give +infinity.
@_transparent  // @inline(__always) still left a call from geluVector; transparent is inlined in SIL
func vectorExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
  let upper = SIMD8<Float>(repeating: 88.3)
  let lower = SIMD8<Float>(repeating: -87.33)
  // Clamped with compare-and-blend: pointwiseMin/Max are calls into the standard library here.
  // NaN compares false and passes through (and comes out as NaN).
  var clamped = x
  clamped.replace(with: upper, where: x .> upper)
  clamped.replace(with: lower, where: x .< lower)
  // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
  let magic = SIMD8<Float>(repeating: 12_582_912)
  let shifted = magic.addingProduct(clamped, SIMD8(repeating: 1.442_695_04))
  let n = shifted - magic
  // ln 2 split in two so that n * ln2High is exact for |n| <= 128.
  var r = clamped.addingProduct(n, SIMD8(repeating: -0.693_145_751_953_125))
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
  result.replace(with: 0, where: x .< lower)
  // A named constant: with SIMD8(repeating:) inline, this comparison was compiled lane by lane.
  let overflow = SIMD8<Float>(repeating: 88.72)
  result.replace(with: .infinity, where: x .> overflow)
  return result
}

/// GELU x * Phi(x) with Phi(x) = (1 + erf(z)) / 2, z = x / sqrt(2), computed without cancellation:
/// - |z| < 0.5: 1 + erf(z) with erf(z) = z * P(z^2)          (P: degree 4, rel. error 1.4e-9)
/// - z <= -0.5: 1 + erf(z) = erfc(|z|) = e^(-z^2) * Q(t)     (Q: degree 9, rel. error 1e-9)
/// - z >= 0.5: 1 + erf(z) = 2 - erfc(z)
/// with t = 1 / (1 + |z| / 2), Q fitted on [0.5, 9.5] (below z = -9.34, e^(-z^2) underflows).
/// Evaluated in float32 the result is within ~4e-7 relative of exact everywhere. z^2 = x^2 / 2 is kept as a high + low pair so that e^(-z^2) stays
/// accurate to float precision even far in the tail.
@inline(__always)
func geluVector(_ x: SIMD8<Float>) -> SIMD8<Float> {
  let half = SIMD8<Float>(repeating: 0.5)
  let z = x * SIMD8(repeating: 0.707_106_781_186_547_5)
  let squareHigh = x * x
  let squareLow = (-squareHigh).addingProduct(x, x)  // exact remainder of x * x (FMA)
  let z2 = squareHigh * half
  // Central part: 1 + z * P(z^2).
  var p = SIMD8<Float>(repeating: 0.00471799762991058)
  p = SIMD8(repeating: -0.026757188606322917).addingProduct(p, z2)
  p = SIMD8(repeating: 0.11282822892882503).addingProduct(p, z2)
  p = SIMD8(repeating: -0.3761260857873261).addingProduct(p, z2)
  p = SIMD8(repeating: 1.1283791655684754).addingProduct(p, z2)
  var onePlusErf = SIMD8<Float>(repeating: 1).addingProduct(z, p)
  // Tails: erfc(|z|) = e^(-z^2) * Q(t).
  let absZ = unsafeBitCast(
    unsafeBitCast(z, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
  let t = SIMD8<Float>(repeating: 1) / SIMD8(repeating: 1).addingProduct(absZ, half)
  var q = SIMD8<Float>(repeating: -0.07558986155436809)
  q = SIMD8(repeating: 0.35625437082332917).addingProduct(q, t)
  q = SIMD8(repeating: -0.6202196686373181).addingProduct(q, t)
  q = SIMD8(repeating: 0.4160935386398329).addingProduct(q, t)
  q = SIMD8(repeating: -0.11451218671440616).addingProduct(q, t)
  q = SIMD8(repeating: 0.23815121032465728).addingProduct(q, t)
  q = SIMD8(repeating: 0.23406931206387477).addingProduct(q, t)
  q = SIMD8(repeating: 0.28377191616272374).addingProduct(q, t)
  q = SIMD8(repeating: 0.281967795231186).addingProduct(q, t)
  q = SIMD8(repeating: 4.213516002892635e-06).addingProduct(q, t)
  // e^(-(high + low) / 2) = e^(-high / 2) * (1 - low / 2); |low / 2| < 2^-24 * z^2.
  let gaussian = vectorExp(-z2) * SIMD8(repeating: 1).addingProduct(squareLow, -half)
  var erfcAbs = gaussian * q
  erfcAbs.replace(with: 0, where: erfcAbs .< 0)
  let cut = SIMD8<Float>(repeating: 0.5)
  onePlusErf.replace(with: erfcAbs, where: z .<= -cut)
  onePlusErf.replace(with: SIMD8(repeating: 2) - erfcAbs, where: z .>= cut)
  return x * half * onePlusErf
}

/// Exact GELU as torch.nn.GELU(): x * 0.5 * (1 + erf(x / sqrt(2))), with our own erf
/// approximation (relative error below 1e-8 in double; see `geluVector`).
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
    let e = vectorExp(loadVector(x + i) - shift)
    sums += e
    storeVector(e, x + i)
    i += 8
  }
  var total = sums.sum()
  if i < count {
    // The tail goes through the same vector exp, padded with -inf (exp = 0).
    var lanes = SIMD8<Float>(repeating: -.infinity)
    for j in i..<count { lanes[j - i] = x[j] - maximum }
    let e = vectorExp(lanes)
    for j in i..<count {
      x[j] = e[j - i]
      total += e[j - i]
    }
  }
  scaleVector(x, x, by: 1 / total, count: count)
}

/// out may alias x.
/// out may alias x: each vector is read before it is written.
private func geluKernel(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ count: Int) {
  var i = 0
  while i + 8 <= count {
    storeVector(geluVector(loadVector(x + i)), out + i)
    i += 8
  }
  if i < count {
    var lanes = SIMD8<Float>.zero
    for j in i..<count { lanes[j - i] = x[j] }
    let y = geluVector(lanes)
    for j in i..<count { out[j] = y[j - i] }
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
