// Small SIMD helpers over raw Float pointers, shared by the kernels.

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

/// out[i] = a[i] + b[i] for i in 0..<count (out may alias a or b).
func addVectors(
  _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
  count: Int
) {
  var i = 0
  while i + 8 <= count {
    storeVector(loadVector(a + i) + loadVector(b + i), out + i)
    i += 8
  }
  while i < count {
    out[i] = a[i] + b[i]
    i += 1
  }
}

/// out[i] = a[i] * s for i in 0..<count (out may alias a).
func scaleVector(
  _ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, by s: Float, count: Int
) {
  let sv = SIMD8<Float>(repeating: s)
  var i = 0
  while i + 8 <= count {
    storeVector(loadVector(a + i) * sv, out + i)
    i += 8
  }
  while i < count {
    out[i] = a[i] * s
    i += 1
  }
}

func sumVector(_ x: UnsafePointer<Float>, count: Int) -> Float {
  var sums = SIMD8<Float>.zero
  var i = 0
  while i + 8 <= count {
    sums += loadVector(x + i)
    i += 8
  }
  var total = sums.sum()
  while i < count {
    total += x[i]
    i += 1
  }
  return total
}

func maxVector(_ x: UnsafePointer<Float>, count: Int) -> Float {
  var maxima = SIMD8<Float>(repeating: -.infinity)
  var i = 0
  while i + 8 <= count {
    let v = loadVector(x + i)
    maxima.replace(with: v, where: v .> maxima)  // not pointwiseMax: a library call here
    i += 8
  }
  // Lane by lane: SIMD8.max() is a call into the standard library here.
  var result = maxima[0]
  for lane in 1..<8 where maxima[lane] > result { result = maxima[lane] }
  while i < count {
    result = max(result, x[i])
    i += 1
  }
  return result
}
