// A fused attention kernel for one group, with register-blocked SIMD loops (its two products in C,
// CSAMKernels/attention.c, for AVX-512 where the CPU has it). For the model's
// shapes (d = 16 or 32, N = 49 or 196 keys) it beats calling OpenBLAS twice per group, whose
// per-call overhead and packing dominate at these sizes.
import CSAMKernels

/// Scratch for `attentionRows`: the transposed keys [d, keysPadded] and scores for a block of
/// rows [rows, keysPadded].
struct AttentionScratch {
  var transposedKeys: UnsafeMutablePointer<Float>
  var scores: UnsafeMutablePointer<Float>
}

/// Keys rounded up to a whole number of 8-lane vectors.
@inline(__always)
func paddedKeyCount(_ keys: Int) -> Int { (keys + 7) / 8 * 8 }

/// Writes kT[p, j] = k[j, p] for j < keys and zeros for the padding columns.
func transposeKeys(
  _ k: UnsafePointer<Float>, into kT: UnsafeMutablePointer<Float>, keys: Int, depth: Int
) {
  let padded = paddedKeyCount(keys)
  for p in 0..<depth {
    let row = kT + p * padded
    for j in 0..<keys { row[j] = k[j * depth + p] }
    for j in keys..<padded { row[j] = 0 }
  }
}

/// Attention for query rows `rows` of one group, given its transposed keys in scratch:
/// out[i] = softmax(q[i] k^T * scale + bias[i]) v. Needs valueDepth % 8 == 0; scratch.scores
/// holds at least 4 * paddedKeyCount(keys) values.
func attentionRows(
  _ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, v: UnsafePointer<Float>,
  bias: UnsafePointer<Float>?, scratch: AttentionScratch, shape s: AttentionShape, rows: Range<Int>
) {
  let padded = paddedKeyCount(s.keys)
  var i0 = rows.lowerBound
  while i0 < rows.upperBound {
    let count = min(4, rows.upperBound - i0)
    let scores = scratch.scores
    // In C (CSAMKernels/attention.c): 32 columns at a time with AVX-512, 16 with AVX2.
    sam_attention_scores(scores, q + i0 * s.depth, scratch.transposedKeys, count, s.depth, padded)
    for r in 0..<count {
      let row = scores + r * padded
      scaleAndAddBias(row, bias: bias.map { $0 + (i0 + r) * s.keys }, scale: s.scale, count: s.keys)
      softmaxRow(row, count: s.keys)
    }
    // out rows = probabilities [count, keys] x v [keys, dv].
    sam_attention_values(out + i0 * s.valueDepth, scores, v, count, s.keys, padded, s.valueDepth)
    i0 += count
  }
}

/// row[j] = row[j] * scale + bias[j] (bias optional) for j < count.
private func scaleAndAddBias(
  _ row: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, scale: Float, count: Int
) {
  let sv = SIMD8<Float>(repeating: scale)
  var j = 0
  if let bias {
    while j + 8 <= count {
      storeVector(loadVector(bias + j).addingProduct(loadVector(row + j), sv), row + j)
      j += 8
    }
    while j < count {
      row[j] = bias[j].addingProduct(row[j], scale)
      j += 1
    }
  } else {
    while j + 8 <= count {
      storeVector(loadVector(row + j) * sv, row + j)
      j += 8
    }
    while j < count {
      row[j] *= scale
      j += 1
    }
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
