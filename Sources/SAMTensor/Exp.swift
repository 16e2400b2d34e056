// Vector exp and GELU for SIMD8<Float>. The polynomial coefficients were fitted for this project
// (weighted least squares iterated towards minimax relative error, in double precision).

/// e^x for each lane: 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 (|r| <= ln 2 / 2) and
/// p the degree-7 Taylor polynomial (truncation error < 6e-9 relative). Inputs below -87.33 give
/// 0 (no denormals), above 88.72 give +infinity.
@inline(__always)
func vectorExp(_ x: SIMD8<Float>) -> SIMD8<Float> {
  let upper = SIMD8<Float>(repeating: 88.3)
  let lower = SIMD8<Float>(repeating: -87.33)
  let clamped = pointwiseMax(pointwiseMin(x, upper), lower)
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
  result.replace(with: .infinity, where: x .> SIMD8(repeating: 88.72))
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
  let absZ = pointwiseMax(z, -z)
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
  let erfcAbs = pointwiseMax(gaussian * q, .zero)
  let cut = SIMD8<Float>(repeating: 0.5)
  onePlusErf.replace(with: erfcAbs, where: z .<= -cut)
  onePlusErf.replace(with: SIMD8(repeating: 2) - erfcAbs, where: z .>= cut)
  return x * half * onePlusErf
}
