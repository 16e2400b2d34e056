// A fused attention kernel for one group, with register-blocked SIMD loops. For the model's
// shapes (d = 16 or 32, N = 49 or 196 keys) it beats calling OpenBLAS twice per group, whose
// per-call overhead and packing dominate at these sizes.

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
    // Scores for `count` rows (4 at a time when possible), 16 then 8 columns at a time.
    if count == 4 {
      var j0 = 0
      while j0 + 16 <= padded {
        scoreBlock4x16(scores + j0, q: q + i0 * s.depth, kT: scratch.transposedKeys + j0, shape: s)
        j0 += 16
      }
      if j0 < padded {
        scoreBlock4x8(scores + j0, q: q + i0 * s.depth, kT: scratch.transposedKeys + j0, shape: s)
      }
    } else {
      for r in 0..<count {
        var j0 = 0
        while j0 < padded {
          scoreBlock1x8(
            scores + r * padded + j0, q: q + (i0 + r) * s.depth, kT: scratch.transposedKeys + j0,
            shape: s)
          j0 += 8
        }
      }
    }
    for r in 0..<count {
      let row = scores + r * padded
      scaleAndAddBias(row, bias: bias.map { $0 + (i0 + r) * s.keys }, scale: s.scale, count: s.keys)
      softmaxRow(row, count: s.keys)
    }
    // out rows = probabilities [count, keys] x v [keys, dv], 16 then 8 columns at a time.
    var c0 = 0
    while c0 < s.valueDepth {
      let width = s.valueDepth - c0 >= 16 ? 16 : 8
      if count == 4 {
        weightedSum4(
          out + i0 * s.valueDepth + c0, probabilities: scores, v: v + c0, width: width, shape: s)
      } else {
        for r in 0..<count {
          weightedSum1(
            out + (i0 + r) * s.valueDepth + c0, probabilities: scores + r * padded, v: v + c0,
            width: width, shape: s)
        }
      }
      c0 += width
    }
    i0 += count
  }
}

/// scores[r, 0..<16] = q[r] . kT[:, 0..<16] for 4 rows.
private func scoreBlock4x16(
  _ scores: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, kT: UnsafePointer<Float>,
  shape s: AttentionShape
) {
  let padded = paddedKeyCount(s.keys)
  let d = s.depth
  var a00 = SIMD8<Float>.zero
  var a01 = SIMD8<Float>.zero
  var a10 = SIMD8<Float>.zero
  var a11 = SIMD8<Float>.zero
  var a20 = SIMD8<Float>.zero
  var a21 = SIMD8<Float>.zero
  var a30 = SIMD8<Float>.zero
  var a31 = SIMD8<Float>.zero
  for p in 0..<d {
    let k0 = loadVector(kT + p * padded)
    let k1 = loadVector(kT + p * padded + 8)
    let q0 = SIMD8<Float>(repeating: q[p])
    let q1 = SIMD8<Float>(repeating: q[d + p])
    let q2 = SIMD8<Float>(repeating: q[2 * d + p])
    let q3 = SIMD8<Float>(repeating: q[3 * d + p])
    a00.addProduct(q0, k0)
    a01.addProduct(q0, k1)
    a10.addProduct(q1, k0)
    a11.addProduct(q1, k1)
    a20.addProduct(q2, k0)
    a21.addProduct(q2, k1)
    a30.addProduct(q3, k0)
    a31.addProduct(q3, k1)
  }
  storeVector(a00, scores)
  storeVector(a01, scores + 8)
  storeVector(a10, scores + padded)
  storeVector(a11, scores + padded + 8)
  storeVector(a20, scores + 2 * padded)
  storeVector(a21, scores + 2 * padded + 8)
  storeVector(a30, scores + 3 * padded)
  storeVector(a31, scores + 3 * padded + 8)
}

/// scores[r, 0..<8] = q[r] . kT[:, 0..<8] for 4 rows.
private func scoreBlock4x8(
  _ scores: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, kT: UnsafePointer<Float>,
  shape s: AttentionShape
) {
  let padded = paddedKeyCount(s.keys)
  let d = s.depth
  var a0 = SIMD8<Float>.zero
  var a1 = SIMD8<Float>.zero
  var a2 = SIMD8<Float>.zero
  var a3 = SIMD8<Float>.zero
  for p in 0..<d {
    let k0 = loadVector(kT + p * padded)
    a0.addProduct(SIMD8(repeating: q[p]), k0)
    a1.addProduct(SIMD8(repeating: q[d + p]), k0)
    a2.addProduct(SIMD8(repeating: q[2 * d + p]), k0)
    a3.addProduct(SIMD8(repeating: q[3 * d + p]), k0)
  }
  storeVector(a0, scores)
  storeVector(a1, scores + padded)
  storeVector(a2, scores + 2 * padded)
  storeVector(a3, scores + 3 * padded)
}

/// scores[0..<8] = q . kT[:, 0..<8] for one row.
private func scoreBlock1x8(
  _ scores: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>, kT: UnsafePointer<Float>,
  shape s: AttentionShape
) {
  let padded = paddedKeyCount(s.keys)
  var a0 = SIMD8<Float>.zero
  for p in 0..<s.depth {
    a0.addProduct(SIMD8(repeating: q[p]), loadVector(kT + p * padded))
  }
  storeVector(a0, scores)
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

/// out[r, 0..<width] = sum over keys j of probabilities[r, j] * v[j, 0..<width] for 4 rows and
/// width 16 or 8 (v rows are valueDepth apart, probability rows paddedKeyCount apart).
private func weightedSum4(
  _ out: UnsafeMutablePointer<Float>, probabilities: UnsafePointer<Float>, v: UnsafePointer<Float>,
  width: Int, shape s: AttentionShape
) {
  let padded = paddedKeyCount(s.keys)
  let dv = s.valueDepth
  let (p0, p1, p2, p3) = (
    probabilities, probabilities + padded, probabilities + 2 * padded, probabilities + 3 * padded
  )
  var a00 = SIMD8<Float>.zero
  var a10 = SIMD8<Float>.zero
  var a20 = SIMD8<Float>.zero
  var a30 = SIMD8<Float>.zero
  if width == 16 {
    var a01 = SIMD8<Float>.zero
    var a11 = SIMD8<Float>.zero
    var a21 = SIMD8<Float>.zero
    var a31 = SIMD8<Float>.zero
    for j in 0..<s.keys {
      let v0 = loadVector(v + j * dv)
      let v1 = loadVector(v + j * dv + 8)
      let w0 = SIMD8<Float>(repeating: p0[j])
      let w1 = SIMD8<Float>(repeating: p1[j])
      let w2 = SIMD8<Float>(repeating: p2[j])
      let w3 = SIMD8<Float>(repeating: p3[j])
      a00.addProduct(w0, v0)
      a01.addProduct(w0, v1)
      a10.addProduct(w1, v0)
      a11.addProduct(w1, v1)
      a20.addProduct(w2, v0)
      a21.addProduct(w2, v1)
      a30.addProduct(w3, v0)
      a31.addProduct(w3, v1)
    }
    storeVector(a01, out + 8)
    storeVector(a11, out + dv + 8)
    storeVector(a21, out + 2 * dv + 8)
    storeVector(a31, out + 3 * dv + 8)
  } else {
    for j in 0..<s.keys {
      let v0 = loadVector(v + j * dv)
      a00.addProduct(SIMD8(repeating: p0[j]), v0)
      a10.addProduct(SIMD8(repeating: p1[j]), v0)
      a20.addProduct(SIMD8(repeating: p2[j]), v0)
      a30.addProduct(SIMD8(repeating: p3[j]), v0)
    }
  }
  storeVector(a00, out)
  storeVector(a10, out + dv)
  storeVector(a20, out + 2 * dv)
  storeVector(a30, out + 3 * dv)
}

/// One row of `weightedSum4`.
private func weightedSum1(
  _ out: UnsafeMutablePointer<Float>, probabilities: UnsafePointer<Float>, v: UnsafePointer<Float>,
  width: Int, shape s: AttentionShape
) {
  let dv = s.valueDepth
  var a0 = SIMD8<Float>.zero
  var a1 = SIMD8<Float>.zero
  for j in 0..<s.keys {
    let w = SIMD8<Float>(repeating: probabilities[j])
    a0.addProduct(w, loadVector(v + j * dv))
    if width == 16 { a1.addProduct(w, loadVector(v + j * dv + 8)) }
  }
  storeVector(a0, out)
  if width == 16 { storeVector(a1, out + 8) }
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
