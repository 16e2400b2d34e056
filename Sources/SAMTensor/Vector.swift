// Small SIMD helpers over raw Float pointers, shared by the kernels.

@inline(__always)
func loadVector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func loadVector(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
func storeVector(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
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
