import CBLAS

/// Row-major single-precision GEMM through OpenBLAS:
/// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, where op transposes when asked.
/// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored (before op).
/// Large GEMMs are split into row blocks (or column blocks when n > m), one per thread of
/// `ComputeThreads`, each a single-threaded OpenBLAS call: one thread pool for everything, instead
/// of OpenBLAS's own workers spinning between GEMMs on the cores our loops need.
public func sgemm(
  m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
  b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
  c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float = 1, beta: Float = 0
) {
  guard m > 0, n > 0 else { return }
  _ = BLASCore.selection  // before the first GEMM: replace OpenBLAS's SSE3 fallback (BLASCore.swift)
  if k == 0 {
    // Nothing to multiply: only the beta scaling remains (OpenBLAS rejects lda = 0 here).
    scaleMatrix(c, rows: m, columns: n, stride: ldc, by: beta)
    return
  }
  let threads = ComputeThreads.count
  if threads > 1 && m * n * k >= parallelGEMMThreshold && max(m, n) >= 16 * threads {
    let gemm = GEMMCall(
      m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
      c: c, ldc: ldc, alpha: alpha, beta: beta)
    let splitRows = m >= n
    parallelForChunks(threads) { chunks in
      for chunk in chunks {
        let range = chunkRange(chunk, of: threads, count: splitRows ? m : n)
        if splitRows { gemm.rows(range) } else { gemm.columns(range) }
      }
    }
    return
  }
  callBLAS(
    m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB,
    c: c, ldc: ldc, alpha: alpha, beta: beta)
}

/// GEMMs of at least this many multiply-adds are split across our threads.
let parallelGEMMThreshold = 1 << 21

/// One GEMM's arguments, to run blocks of its rows or columns.
struct GEMMCall {
  var m: Int
  var n: Int
  var k: Int
  var a: UnsafePointer<Float>
  var lda: Int
  var transposeA: Bool
  var b: UnsafePointer<Float>
  var ldb: Int
  var transposeB: Bool
  var c: UnsafeMutablePointer<Float>
  var ldc: Int
  var alpha: Float
  var beta: Float

  /// Rows `range` of C: rows of op(A) (columns of A when transposed).
  func rows(_ range: Range<Int>) {
    guard !range.isEmpty else { return }
    let start = range.lowerBound
    callBLAS(
      m: range.count, n: n, k: k, a: a + (transposeA ? start : start * lda), lda: lda,
      transposeA: transposeA, b: b, ldb: ldb, transposeB: transposeB, c: c + start * ldc, ldc: ldc,
      alpha: alpha, beta: beta)
  }

  /// Columns `range` of C: columns of op(B) (rows of B when transposed).
  func columns(_ range: Range<Int>) {
    guard !range.isEmpty else { return }
    let start = range.lowerBound
    callBLAS(
      m: m, n: range.count, k: k, a: a, lda: lda, transposeA: transposeA,
      b: b + (transposeB ? start * ldb : start), ldb: ldb, transposeB: transposeB, c: c + start, ldc: ldc,
      alpha: alpha, beta: beta)
  }
}

private func callBLAS(
  m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, transposeA: Bool,
  b: UnsafePointer<Float>, ldb: Int, transposeB: Bool,
  c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, beta: Float
) {
  cblas_sgemm(
    CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

private func scaleMatrix(
  _ c: UnsafeMutablePointer<Float>, rows: Int, columns: Int, stride: Int, by beta: Float
) {
  for row in 0..<rows {
    let p = c + row * stride
    if beta == 0 {
      p.update(repeating: 0, count: columns)
    } else {
      for j in 0..<columns { p[j] *= beta }
    }
  }
}

/// nn.Linear: x [..., inF], weight [outF, inF], bias [outF] -> [..., outF], then `residual`
/// [..., outF] added (optional), then `activation`, all in the GEMM's output pass:
/// out = activation(x weight^T + bias + residual).
/// - Small weights (the 1x1 convolutions of TinyViT's first stages, whose activations are the
///   largest: 65536 x 256 floats) run as single-threaded GEMMs over blocks of rows that fit in L2,
///   each followed at once by its epilogue, so the output is written to memory once instead of
///   three times (GEMM, bias and activation pass, residual pass).
/// - Larger weights run as one GEMM (split over our threads by `sgemm`): without a residual or an
///   activation onto the bias rows, otherwise followed by one epilogue pass that adds the bias
///   and the residual and applies the activation.
/// (Measured: copying the bias into every row was 3.6% of an encode, a pass over memory of its
/// own; GEMMs in cache-sized row blocks were slower for large weights, because OpenBLAS packs the
/// weight again for every block.)
public func linear(
  _ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .identity, residual: Tensor? = nil
) -> Tensor {
  precondition(weight.shape.count == 2, "linear: weight must be [outF, inF], got \(weight.shape)")
  let outFeatures = weight.shape[0]
  let inFeatures = weight.shape[1]
  precondition(
    x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures) features")
  if let bias { precondition(bias.count == outFeatures, "linear: bias \(bias.shape) for \(outFeatures)") }
  let rows = inFeatures == 0 ? x.shape.dropLast().reduce(1, *) : x.count / inFeatures
  let outShape = Array(x.shape.dropLast()) + [outFeatures]
  if let residual {
    precondition(residual.shape == outShape, "linear: residual \(residual.shape) for output \(outShape)")
  }
  let epilogue = activation != .identity || residual != nil
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      weight.withUnsafeBufferPointer { wp in
        withValues(of: residual) { residualPointer in
          let biasInEpilogue = epilogue && inFeatures > 0
          withValues(of: bias) { biasPointer in
            let terms = EpilogueTerms(
              bias: biasInEpilogue ? biasPointer : nil, residual: residualPointer, activation: activation)
            let gemm = GEMMCall(
              m: rows, n: outFeatures, k: inFeatures, a: xp.baseAddress ?? UnsafePointer(out),
              lda: max(1, inFeatures),
              transposeA: false, b: wp.baseAddress ?? UnsafePointer(out), ldb: max(1, inFeatures),
              transposeB: true,
              c: out, ldc: outFeatures, alpha: 1, beta: 0)
            let blockRows = epilogueBlockRows(inFeatures: inFeatures, outFeatures: outFeatures)
            if (epilogue || bias != nil) && inFeatures > 0 && inFeatures * outFeatures <= blockedWeightLimit
              && rows >= 2 * blockRows * ComputeThreads.count
            {
              _ = BLASCore.selection  // before the first GEMM (BLASCore.swift)
              // Here the bias is always added in the epilogue, while the block is in cache.
              let blockTerms = EpilogueTerms(
                bias: biasPointer, residual: residualPointer, activation: activation)
              let blocks = (rows + blockRows - 1) / blockRows
              parallelForChunks(blocks) { range in
                for block in range {
                  let first = block * blockRows
                  let rowRange = first..<min(rows, first + blockRows)
                  gemm.rows(rowRange)
                  blockTerms.apply(out, rows: rowRange, columns: outFeatures)
                }
              }
              return
            }
            let beta = fillRows(out, rows: rows, columns: outFeatures, with: biasInEpilogue ? nil : bias)
            if inFeatures > 0 {
              sgemm(
                m: rows, n: outFeatures, k: inFeatures, a: xp.baseAddress!, lda: inFeatures,
                transposeA: false, b: wp.baseAddress!, ldb: inFeatures, transposeB: true,
                c: out, ldc: outFeatures, beta: beta)
            } else if bias == nil {
              out.update(repeating: 0, count: rows * outFeatures)
            }
            if epilogue {
              parallelForChunksIfLarge(rows, work: rows * outFeatures) { range in
                terms.apply(out, rows: range, columns: outFeatures)
              }
            }
          }
        }
      }
    }
  }
}

/// Weights of at most this many values (64K floats, 256 KB) take the blocked path of `linear`:
/// repacking them for every block of rows costs little next to the block's products.
let blockedWeightLimit = 1 << 16

/// Rows per block of the blocked `linear`: input and output rows of about 512 KB together, half
/// the L2 of the smallest cores we run on (1 MB), at least 16.
func epilogueBlockRows(inFeatures: Int, outFeatures: Int) -> Int {
  max(16, (1 << 17) / max(1, inFeatures + outFeatures))
}

/// What `linear` applies to its output rows after the product, in this order: bias, residual,
/// activation.
struct EpilogueTerms {
  var bias: UnsafePointer<Float>?
  var residual: UnsafePointer<Float>?
  var activation: Activation

  func apply(_ out: UnsafeMutablePointer<Float>, rows: Range<Int>, columns: Int) {
    guard !rows.isEmpty else { return }
    let block = out + rows.lowerBound * columns
    guard let residual else {
      applyEpilogue(
        block, rows: rows.count, columns: columns, stride: columns, bias: bias, activation: activation)
      return
    }
    for row in 0..<rows.count {
      let p = block + row * columns
      applyEpilogue(p, rows: 1, columns: columns, stride: columns, bias: bias, activation: .identity)
      addVectors(p, p, residual + (rows.lowerBound + row) * columns, count: columns)
      applyEpilogue(p, rows: 1, columns: columns, stride: columns, bias: nil, activation: activation)
    }
  }
}

/// Writes `bias` into every row and returns the GEMM beta to use: 1 to accumulate onto the bias,
/// or 0 without a bias, leaving the rows for a beta = 0 GEMM to overwrite (OpenBLAS then never
/// reads them, so they may be uninitialized).
func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, columns: Int, with bias: Tensor?) -> Float {
  guard let bias else { return 0 }
  bias.withUnsafeBufferPointer { bp in
    let b = bp.baseAddress!
    parallelForChunks(rows) { range in
      for row in range { (out + row * columns).update(from: b, count: columns) }
    }
  }
  return 1
}
