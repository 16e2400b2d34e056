// Kernels for many rows attending to a few tokens in the rows' own layout (the mask decoder's
// image-to-token attention: 4096 image tokens, a few prompt tokens per head). The scores are kept
// as [rows, heads * tokens], so every product has the long side as its M and needs no transpose,
// and the output is finished block by block while the block is in cache.
import CSAMKernels

/// x [N, heads * d] -> [N * heads, heads * d], token-major: row t * heads + h holds
/// x[t, h*d ..< (h+1)*d] in the same columns and zeros in the other heads' columns. (The rows of
/// `headBlockDiagonal` in another order: scores against it come out with a token's heads adjacent.)
public func tokenMajorHeadBlocks(_ x: Tensor, heads: Int) -> Tensor {
  precondition(x.shape.count == 2 && heads > 0 && x.shape[1] % heads == 0, "tokenMajorHeadBlocks: \(x.shape)")
  let (tokens, width) = (x.shape[0], x.shape[1])
  let depth = width / heads
  let values = x.data
  var out = [Float](repeating: 0, count: tokens * heads * width)
  for t in 0..<tokens {
    for h in 0..<heads {
      let from = t * width + h * depth
      let to = (t * heads + h) * width + h * depth
      out.replaceSubrange(to..<(to + depth), with: values[from..<(from + depth)])
    }
  }
  return Tensor(shape: [tokens * heads, width], data: out)
}

/// Many rows' values stored transposed, 16 rows at a time: for each block of 16 rows, each
/// feature's 16 values together (one vector of `headScores`), the block's features one after
/// another (zero past the last row). For the mask decoder's image rows projected to the heads of
/// an attention, kept per image.
///
/// A block's features are contiguous so that `headScores` reads memory in order: the plain
/// transpose [width, rows] put a block's 128 features 16 KB apart, 128 streams that the hardware
/// prefetcher does not follow, and the kernel waited on L3 for most of its loads (measured on AVX2).
public struct TransposedRows: Sendable {
  public let rows: Int
  public let width: Int
  let values: [Float]

  /// x [rows, width]
  public init(_ x: Tensor) {
    precondition(x.shape.count == 2, "TransposedRows: x \(x.shape) must be [rows, width]")
    let (rows, width) = (x.shape[0], x.shape[1])
    (self.rows, self.width) = (rows, width)
    let blocks = (rows + 15) / 16
    values = [Float](unsafeUninitializedCapacity: blocks * width * 16) { out, initialized in
      out.initialize(repeating: 0)
      x.withUnsafeBufferPointer { xp in
        for r in 0..<rows {
          let block = (r / 16) * width * 16 + r % 16
          for c in 0..<width { out[block + c * 16] = xp[r * width + c] }
        }
      }
      initialized = blocks * width * 16
    }
  }
}

/// The rows' scores against a few tokens, head by head: x [rows, heads * d] (transposed), keys
/// [Nt, heads * d] (the tokens' projections, any scale included) -> [rows, Nt * heads], column
/// t * heads + h = sum over j < d of x[p, h d + j] keys[t, h d + j], one multiply-add chain over j
/// in order from zero. The same values as `linear(x, packed: PackedWeight(tokenMajorHeadBlocks(keys,
/// heads: heads)), bias: nil)`, whose chains only add the other heads' zeros (so the same bits for
/// finite values, up to the sign of a zero score), in 1/heads of its multiply-adds. d <= 16,
/// heads <= 256.
/// Parallel over blocks of 16 rows; a row's scores do not depend on the number of threads.
public func headScores(_ x: TransposedRows, keys: Tensor, heads: Int) -> Tensor {
  precondition(
    keys.shape.count == 2 && keys.shape[1] == x.width && heads > 0 && heads <= 256 && x.width >= heads
      && x.width % heads == 0 && x.width / heads <= 16,
    "headScores: rows of width \(x.width), keys \(keys.shape), \(heads) heads")
  let (rows, tokens, depth) = (x.rows, keys.shape[0], x.width / heads)
  let columns = tokens * heads
  return Tensor(shape: [rows, columns]) { out in
    x.values.withUnsafeBufferPointer { xp in
      keys.withUnsafeBufferPointer { kp in
        guard rows > 0, columns > 0, depth > 0 else { return }
        parallelForChunksIfLarge((rows + 15) / 16, work: rows * columns * depth) { range in
          sam_head_scores(
            out, columns, xp.baseAddress, 16, x.width * 16, range.lowerBound * 16,
            min(rows, range.upperBound * 16),
            kp.baseAddress, tokens, heads, depth)
        }
      }
    }
  }
}

/// Softmaxes over every `lanes`-th value of each row, in place: a row of x [R, T * lanes] holds,
/// for each lane s, the T logits x[r, t * lanes + s] of one softmax (an image token's scores, a
/// head per lane, against the T tokens), so 8 heads' softmaxes run side by side in vector lanes.
public func softmaxOverStridedGroups(_ x: inout Tensor, lanes: Int) {
  precondition(
    x.shape.count == 2 && lanes > 0 && x.shape[1] % lanes == 0,
    "softmaxOverStridedGroups: \(x.shape) with \(lanes) lanes")
  let (rows, columns) = (x.shape[0], x.shape[1])
  let length = columns / lanes
  guard rows > 0, length > 0 else { return }
  x.data.withUnsafeMutableBufferPointer { xp in
    let base = xp.baseAddress!
    parallelForChunksIfLarge(rows, work: rows * columns) { range in
      // 8 lanes (the decoder's 8 heads): two rows at a time in 16-lane vectors, in C.
      if lanes == 8 {
        sam_softmax_lanes8(base + range.lowerBound * columns, range.count, length)
        return
      }
      for row in range {
        var lane = 0
        while lane < lanes {
          let width = min(8, lanes - lane)
          softmaxStridedBlock(base + row * columns + lane, length: length, stride: lanes, width: width)
          lane += width
        }
      }
    }
  }
}

/// Softmax over p[t * stride + j], t in 0..<length, for each of `width` <= 8 adjacent lanes j.
private func softmaxStridedBlock(_ p: UnsafeMutablePointer<Float>, length: Int, stride: Int, width: Int) {
  if width < 8 {
    // The last lanes: through an 8-lane copy, the same arithmetic.
    var block = [Float](repeating: 0, count: length * 8)
    block.withUnsafeMutableBufferPointer { bp in
      let b = bp.baseAddress!
      for t in 0..<length { for j in 0..<width { b[t * 8 + j] = p[t * stride + j] } }
      softmaxStridedBlock(b, length: length, stride: 8, width: 8)
      for t in 0..<length { for j in 0..<width { p[t * stride + j] = b[t * 8 + j] } }
    }
    return
  }
  var maximum = loadVector(p)
  for t in 1..<max(length, 1) {
    let v = loadVector(p + t * stride)
    maximum.replace(with: v, where: v .> maximum)
  }
  var sum = SIMD8<Float>.zero
  for t in 0..<length {
    let e = vectorExpNonPositive(loadVector(p + t * stride) - maximum)
    sum += e
    storeVector(e, p + t * stride)
  }
  let inverse = 1 / sum
  for t in 0..<length { storeVector(loadVector(p + t * stride) * inverse, p + t * stride) }
}

/// LayerNorm(residual + bias + a b) by rows, and that plus `offset`:
/// a [M, K], b [K, N], residual, offset [M, N]; bias, normWeight, normBias [N]
/// -> (normalized [M, N], normalized + offset [M, N], each row's mean and 1 / sqrt(variance + eps)
/// before the norm's weight and bias).
/// One kernel (`sam_gemm_layer_norm_rows`, CSAMKernels/gemm.c): the packed GEMM (b packed once per
/// call, a's rows read in place) with the bias and the residual added in its tiles, each tile's
/// rows normalized and offset as soon as they are complete, while they are in L1, so neither the
/// product nor an un-normalized row is written to memory. Parallel over whole register tiles of
/// rows; a row's results do not depend on the number of threads.
public func layerNormOfProductAndResidual(
  _ a: Tensor, _ b: Tensor, residual: Tensor, bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
  offset: Tensor
) -> (normalized: Tensor, offset: Tensor, mean: [Float], inverse: [Float]) {
  let result = layerNormOfProduct(
    a, b, residual: residual, bias: bias, normWeight: normWeight, normBias: normBias, eps: eps,
    offset: offset,
    probe: nil)
  return (result.normalized, result.offset ?? Tensor(zeros: [0]), result.mean, result.inverse)
}

/// The same without the offset rows, for a caller that reads only the normalized rows: they are
/// not written to memory when the kernel normalizes each tile as it completes (as with a probe).
/// -> (normalized [M, N], mean, inverse).
public func layerNormOfProductAndResidual(
  _ a: Tensor, _ b: Tensor, residual: Tensor, bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float
) -> (normalized: Tensor, mean: [Float], inverse: [Float]) {
  // The kernel adds offset rows whatever it keeps; the residual stands in for them.
  let result = layerNormOfProduct(
    a, b, residual: residual, bias: bias, normWeight: normWeight, normBias: normBias, eps: eps,
    offset: residual, probe: nil, keepOffset: false)
  return (result.normalized, result.mean, result.inverse)
}

/// The same, and the offset rows times `probe` (`linear(normalized + offset, packed: probe,
/// bias: nil)`, the same bits) computed while the rows are in L1 instead of the offset rows:
/// -> (normalized [M, N], probed [M, probe.outFeatures], mean, inverse). The offset rows are not
/// written to memory when the kernel normalizes each tile as it completes (N columns of K inputs
/// that fit its scratch; else they are stored and read back while in L2).
public func layerNormOfProductAndResidual(
  _ a: Tensor, _ b: Tensor, residual: Tensor, bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
  offset: Tensor, probe: PackedWeight
) -> (normalized: Tensor, probed: Tensor, mean: [Float], inverse: [Float]) {
  precondition(
    probe.inFeatures == b.shape.last && probe.kernelH == 1 && probe.kernelW == 1,
    "layerNormOfProductAndResidual: probe [\(probe.outFeatures), \(probe.inFeatures)] for \(b.shape)")
  let result = layerNormOfProduct(
    a, b, residual: residual, bias: bias, normWeight: normWeight, normBias: normBias, eps: eps,
    offset: offset,
    probe: probe)
  return (
    result.normalized, result.probed ?? Tensor(zeros: [a.shape[0], probe.outFeatures]), result.mean,
    result.inverse
  )
}

private func layerNormOfProduct(
  _ a: Tensor, _ b: Tensor, residual: Tensor, bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
  offset: Tensor, probe: PackedWeight?, keepOffset: Bool = true
) -> (normalized: Tensor, offset: Tensor?, probed: Tensor?, mean: [Float], inverse: [Float]) {
  precondition(
    a.shape.count == 2 && b.shape.count == 2 && a.shape[1] == b.shape[0], "\(a.shape) x \(b.shape)")
  let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1])
  precondition(
    residual.shape == [m, n] && offset.shape == [m, n], "residual \(residual.shape), offset \(offset.shape)")
  precondition(bias.count == n && normWeight.count == n && normBias.count == n, "row terms for \(n) columns")
  let probeColumns = probe?.outFeatures ?? 0
  guard m > 0, n > 0 else {
    return (Tensor(zeros: [m, n]), Tensor(zeros: [m, n]), Tensor(zeros: [m, probeColumns]), [], [])
  }
  let packed = PackedWeight(transposed: b)
  // Offset rows are stored unless a probe takes them from the kernel's scratch or they are not
  // kept; the kernel needs them stored when it does not fuse.
  let storeOffset = (keepOffset && probe == nil) || sam_gemm_layer_norm_fuses(n, k) == 0
  var (offsetRows, probed) = ([Float](), [Float]())
  var (means, inverses) = ([Float](repeating: 0, count: m), [Float](repeating: 0, count: m))
  let emptyPanels = [Float]()
  let normalized = [Float](unsafeUninitializedCapacity: m * n) { normalizedBuffer, normalizedCount in
    offsetRows = [Float](unsafeUninitializedCapacity: storeOffset ? m * n : 0) { offsetBuffer, offsetCount in
      probed = [Float](unsafeUninitializedCapacity: m * probeColumns) { probedBuffer, probedCount in
        (probe?.panels ?? emptyPanels).withUnsafeBufferPointer { probePanels in
          a.withUnsafeBufferPointer { ap in
            packed.panels.withUnsafeBufferPointer { bp in
              means.withUnsafeMutableBufferPointer { meanBuffer in
                inverses.withUnsafeMutableBufferPointer { inverseBuffer in
                  withRowTerms(residual, offset, bias, normWeight, normBias) {
                    residual, offset, bias, weight, normBias in
                    var args = sam_gemm_args()
                    (args.out, args.ldo, args.x, args.ldx) = (
                      normalizedBuffer.baseAddress, n, ap.baseAddress, k
                    )
                    (args.packed, args.bias, args.residual, args.ldr) = (bp.baseAddress, bias, residual, n)
                    (args.n, args.k) = (n, k)
                    var norm = sam_gemm_norm_args()
                    (norm.weight, norm.bias, norm.eps) = (weight, normBias, eps)
                    (norm.offset, norm.ldf, norm.lds) = (offset, n, n)
                    norm.shifted = storeOffset ? offsetBuffer.baseAddress : nil
                    (norm.mean, norm.inverse) = (meanBuffer.baseAddress, inverseBuffer.baseAddress)
                    if probe != nil {
                      (norm.probe, norm.probe_n) = (probePanels.baseAddress, probeColumns)
                      (norm.probe_out, norm.ldp) = (probedBuffer.baseAddress, probeColumns)
                    }
                    let call = PackedGEMMNormCall(args: args, norm: norm)
                    // Thread shares in whole register tiles, and none for small products.
                    guard m * n * max(k, 1) >= parallelGEMMThreshold else {
                      call.rows(0..<m)
                      return
                    }
                    let tileRows = sam_gemm_tile_rows()
                    parallelForChunks((m + tileRows - 1) / tileRows) { range in
                      call.rows(min(m, range.lowerBound * tileRows)..<min(m, range.upperBound * tileRows))
                    }
                  }
                }
              }
            }
          }
        }
        probedCount = m * probeColumns
      }
      offsetCount = storeOffset ? m * n : 0
    }
    normalizedCount = m * n
  }
  return (
    Tensor(shape: [m, n], data: normalized),
    probe == nil && keepOffset ? Tensor(shape: [m, n], data: offsetRows) : nil,
    probe.map { _ in Tensor(shape: [m, probeColumns], data: probed) }, means, inverses
  )
}

/// One call of `sam_gemm_layer_norm_rows`, shared by the threads that run its rows.
private struct PackedGEMMNormCall: @unchecked Sendable {
  var args: sam_gemm_args
  var norm: sam_gemm_norm_args

  func rows(_ range: Range<Int>) {
    withUnsafePointer(to: args) { args in
      withUnsafePointer(to: norm) { sam_gemm_layer_norm_rows(args, $0, range.lowerBound, range.upperBound) }
    }
  }
}

/// The values of five tensors in place (none may be empty).
private func withRowTerms(
  _ t0: Tensor, _ t1: Tensor, _ t2: Tensor, _ t3: Tensor, _ t4: Tensor,
  _ body: (
    UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
    UnsafePointer<Float>
  )
    -> Void
) {
  t0.withUnsafeBufferPointer { p0 in
    t1.withUnsafeBufferPointer { p1 in
      t2.withUnsafeBufferPointer { p2 in
        t3.withUnsafeBufferPointer { p3 in
          t4.withUnsafeBufferPointer { p4 in
            body(p0.baseAddress!, p1.baseAddress!, p2.baseAddress!, p3.baseAddress!, p4.baseAddress!)
          }
        }
      }
    }
  }
}

// Per-file copies (see Vector.swift).
@inline(__always)
private func loadVector(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func storeVector(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
