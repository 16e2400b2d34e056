// Scaled dot-product attention over independent groups (windows x heads, or heads).

/// softmax(q k^T * scale + bias) v for G independent groups:
/// q [G, Nq, d], k [G, Nk, d], v [G, Nk, dv] -> [G, Nq, dv]. bias, when given, is [H, Nq, Nk]
/// with G % H == 0, and group g uses bias[g % H] (groups ordered (window, head), heads fastest).
/// Parallel over groups (or over query rows when there are fewer groups than threads). When dv is
/// a multiple of 8 a fused SIMD kernel computes each group (AttentionKernel.swift); otherwise two
/// OpenBLAS GEMMs per group.
public func attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor?, scale: Float) -> Tensor {
  precondition(
    q.shape.count == 3 && k.shape.count == 3 && v.shape.count == 3,
    "attention: q \(q.shape), k \(k.shape), v \(v.shape) must be [G, N, d]")
  let (groups, queries, depth) = (q.shape[0], q.shape[1], q.shape[2])
  let (keys, valueDepth) = (k.shape[1], v.shape[2])
  precondition(
    k.shape[0] == groups && v.shape[0] == groups && k.shape[2] == depth && v.shape[1] == keys,
    "attention: q \(q.shape), k \(k.shape), v \(v.shape) do not agree")
  var biasHeads = 0
  if let bias {
    biasHeads = bias.shape.first ?? 0
    precondition(
      bias.shape.count == 3 && biasHeads > 0 && groups % biasHeads == 0 && bias.shape[1] == queries
        && bias.shape[2] == keys,
      "attention: bias \(bias.shape) does not fit \(groups) groups of [\(queries), \(keys)]")
  }
  let shape = AttentionShape(
    queries: queries, keys: keys, depth: depth, valueDepth: valueDepth, scale: scale)
  let outShape = [groups, queries, valueDepth]
  guard groups > 0, queries > 0, valueDepth > 0 else { return Tensor(zeros: outShape) }
  return Tensor(shape: outShape) { out in
    q.withUnsafeBufferPointer { qp in
      k.withUnsafeBufferPointer { kp in
        v.withUnsafeBufferPointer { vp in
          withValues(of: bias) { biasValues in
            // An empty bias may still have a base address: only a real bias counts.
            let bias = biasHeads > 0 ? biasValues : nil
            let (pq, pk, pv) = (qp.baseAddress!, kp.baseAddress!, vp.baseAddress!)
            if valueDepth % 8 == 0 {
              fusedAttention(
                out, q: pq, k: pk, v: pv, bias: bias, biasHeads: biasHeads, groups: groups, shape: shape)
            } else if groups >= ComputeThreads.count {
              parallelForChunks(groups) { range in
                var scores = [Float](repeating: 0, count: queries * keys)
                scores.withUnsafeMutableBufferPointer { sp in
                  for g in range {
                    attentionGroup(
                      out + g * queries * valueDepth, q: pq + g * queries * depth,
                      k: pk + g * keys * depth, v: pv + g * keys * valueDepth,
                      bias: bias.map { $0 + (g % biasHeads) * queries * keys },
                      scores: sp.baseAddress!, shape: shape, parallelRows: false)
                  }
                }
              }
            } else {
              // Few large groups (the mask decoder's heads): parallel inside each group instead.
              var scores = [Float](repeating: 0, count: queries * keys)
              scores.withUnsafeMutableBufferPointer { sp in
                for g in 0..<groups {
                  attentionGroup(
                    out + g * queries * valueDepth, q: pq + g * queries * depth,
                    k: pk + g * keys * depth, v: pv + g * keys * valueDepth,
                    bias: bias.map { $0 + (g % biasHeads) * queries * keys },
                    scores: sp.baseAddress!, shape: shape, parallelRows: true)
                }
              }
            }
          }
        }
      }
    }
  }
}

struct AttentionShape {
  var queries: Int
  var keys: Int
  var depth: Int
  var valueDepth: Int
  var scale: Float
}

/// One group: scores = q k^T * scale (+ bias), softmax by rows, out = scores v.
private func attentionGroup(
  _ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
  v: UnsafePointer<Float>, bias: UnsafePointer<Float>?, scores: UnsafeMutablePointer<Float>,
  shape s: AttentionShape, parallelRows: Bool
) {
  let beta: Float
  if let bias {
    scores.update(from: bias, count: s.queries * s.keys)
    beta = 1
  } else {
    beta = 0
  }
  sgemm(
    m: s.queries, n: s.keys, k: s.depth, a: q, lda: s.depth, transposeA: false, b: k, ldb: s.depth,
    transposeB: true, c: scores, ldc: s.keys, alpha: s.scale, beta: beta)
  if parallelRows && s.queries * s.keys >= parallelElementThreshold {
    parallelForChunks(s.queries) { range in
      for row in range { softmaxRow(scores + row * s.keys, count: s.keys) }
    }
  } else {
    for row in 0..<s.queries { softmaxRow(scores + row * s.keys, count: s.keys) }
  }
  sgemm(
    m: s.queries, n: s.valueDepth, k: s.keys, a: scores, lda: s.keys, transposeA: false, b: v,
    ldb: s.valueDepth, transposeB: false, c: out, ldc: s.valueDepth)
}

/// The fused-kernel path of `attention` (valueDepth % 8 == 0).
private func fusedAttention(
  _ out: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
  v: UnsafePointer<Float>, bias: UnsafePointer<Float>?, biasHeads: Int, groups: Int,
  shape s: AttentionShape
) {
  let padded = paddedKeyCount(s.keys)
  let transposedCount = s.depth * padded
  let scoresCount = 4 * padded
  if groups >= ComputeThreads.count {
    parallelForChunks(groups) { range in
      var scratchValues = [Float](repeating: 0, count: transposedCount + scoresCount)
      scratchValues.withUnsafeMutableBufferPointer { sp in
        let scratch = AttentionScratch(
          transposedKeys: sp.baseAddress!, scores: sp.baseAddress! + transposedCount)
        for g in range {
          transposeKeys(k + g * s.keys * s.depth, into: scratch.transposedKeys, keys: s.keys, depth: s.depth)
          attentionRows(
            out + g * s.queries * s.valueDepth, q: q + g * s.queries * s.depth,
            v: v + g * s.keys * s.valueDepth,
            bias: bias.map { $0 + (g % biasHeads) * s.queries * s.keys }, scratch: scratch, shape: s,
            rows: 0..<s.queries)
        }
      }
    }
    return
  }
  // Few groups (the mask decoder's heads): parallel over blocks of 4 query rows in each group.
  var transposed = [Float](repeating: 0, count: transposedCount)
  transposed.withUnsafeMutableBufferPointer { tp in
    let transposedKeys = tp.baseAddress!
    for g in 0..<groups {
      transposeKeys(k + g * s.keys * s.depth, into: transposedKeys, keys: s.keys, depth: s.depth)
      let blocks = (s.queries + 3) / 4
      parallelForChunksIfLarge(blocks, work: s.queries * padded * (s.depth + s.valueDepth)) { range in
        var scores = [Float](repeating: 0, count: scoresCount)
        scores.withUnsafeMutableBufferPointer { sp in
          attentionRows(
            out + g * s.queries * s.valueDepth, q: q + g * s.queries * s.depth,
            v: v + g * s.keys * s.valueDepth,
            bias: bias.map { $0 + (g % biasHeads) * s.queries * s.keys },
            scratch: AttentionScratch(transposedKeys: transposedKeys, scores: sp.baseAddress!),
            shape: s, rows: (range.lowerBound * 4)..<min(s.queries, range.upperBound * 4))
        }
      }
    }
  }
}
