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
  bias: UnsafePointer<Float>?, scratch: AttentionScratch, shape s: AttentionShape, rows: Range<Int>,
  keyStride: Int? = nil
) {
  // The transposed keys' rows (and the score rows) `keyStride` apart: paddedKeyCount(keys) or more.
  let padded = keyStride ?? paddedKeyCount(s.keys)
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

/// Keys [G, N, d] transposed once, for keys that many calls attend to (the mask decoder's
/// per-image keys): each group's [d, stride], zero past N, as `attentionRows` reads them.
/// `attention(q:keys:v:scale:)` then skips the transpose that `attention` does per call.
///
/// The stride is paddedKeyCount(N), plus 16 when that is a multiple of 256: the decoder's 4096
/// keys put the d rows a block of scores reads exactly 16 KB apart, all in one L1 cache set.
public struct TransposedKeys: Sendable {
  public let groups: Int
  public let keys: Int
  public let depth: Int
  let stride: Int
  let values: [Float]

  public init(_ k: Tensor) {
    precondition(k.shape.count == 3, "TransposedKeys: k \(k.shape) must be [G, N, d]")
    let (groups, keys, depth) = (k.shape[0], k.shape[1], k.shape[2])
    let padded = paddedKeyCount(keys)
    let stride = padded % 256 == 0 ? padded + 16 : padded
    (self.groups, self.keys, self.depth, self.stride) = (groups, keys, depth, stride)
    values = [Float](unsafeUninitializedCapacity: groups * depth * stride) { buffer, count in
      buffer.initialize(repeating: 0)
      k.withUnsafeBufferPointer { kp in
        for g in 0..<groups {
          let from = kp.baseAddress! + g * keys * depth
          let to = buffer.baseAddress! + g * depth * stride
          for p in 0..<depth {
            for j in 0..<keys { to[p * stride + j] = from[j * depth + p] }
          }
        }
      }
      count = groups * depth * stride
    }
  }
}

/// `attention(q:k:v:bias:nil, scale:)` with the keys transposed beforehand: q [G, Nq, d],
/// v [G, Nk, dv] -> [G, Nq, dv], dv a multiple of 8. Parallel over groups. The query rows run in
/// blocks of 4, the last block padded with zero rows (a block of fewer rows takes the kernel's
/// slower path), so each row's values are those `attention` gives.
public func attention(q: Tensor, keys: TransposedKeys, v: Tensor, scale: Float) -> Tensor {
  precondition(
    q.shape.count == 3 && v.shape.count == 3 && q.shape[0] == keys.groups && q.shape[2] == keys.depth
      && v.shape[0] == keys.groups && v.shape[1] == keys.keys && v.shape[2] % 8 == 0,
    "attention: q \(q.shape), keys [\(keys.groups), \(keys.keys), \(keys.depth)], v \(v.shape)")
  let (groups, queries, depth, valueDepth) = (q.shape[0], q.shape[1], q.shape[2], v.shape[2])
  let shape = AttentionShape(
    queries: queries, keys: keys.keys, depth: depth, valueDepth: valueDepth, scale: scale)
  let padded = keys.stride
  let paddedQueries = (queries + 3) / 4 * 4
  var padding = shape
  padding.queries = paddedQueries
  return Tensor(shape: [groups, queries, valueDepth]) { out in
    q.withUnsafeBufferPointer { qp in
      v.withUnsafeBufferPointer { vp in
        keys.values.withUnsafeBufferPointer { kp in
          parallelForChunks(groups) { range in
            // Per chunk: the scores of a block of 4 rows, a group's zero-padded queries and outputs.
            var scratchValues = [Float](
              repeating: 0, count: 4 * padded + paddedQueries * (depth + valueDepth))
            scratchValues.withUnsafeMutableBufferPointer { sp in
              let scores = sp.baseAddress!
              let paddedQ = scores + 4 * padded
              let paddedOut = paddedQ + paddedQueries * depth
              for g in range {
                paddedQ.update(from: qp.baseAddress! + g * queries * depth, count: queries * depth)
                attentionRows(
                  paddedOut, q: paddedQ, v: vp.baseAddress! + g * keys.keys * valueDepth, bias: nil,
                  scratch: AttentionScratch(
                    transposedKeys: UnsafeMutablePointer(mutating: kp.baseAddress! + g * depth * padded),
                    scores: scores),
                  shape: padding, rows: 0..<paddedQueries, keyStride: padded)
                (out + g * queries * valueDepth).update(from: paddedOut, count: queries * valueDepth)
              }
            }
          }
        }
      }
    }
  }
}
