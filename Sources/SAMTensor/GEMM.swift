import CBLAS

/// Row-major single-precision GEMM through OpenBLAS:
/// C[m, n] = alpha * op(A)[m, k] * op(B)[k, n] + beta * C, where op transposes when asked.
/// `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored (before op).
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

/// nn.Linear: x [..., inF], weight [outF, inF], bias [outF] -> [..., outF]. One GEMM.
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
  precondition(weight.shape.count == 2, "linear: weight must be [outF, inF], got \(weight.shape)")
  let outFeatures = weight.shape[0]
  let inFeatures = weight.shape[1]
  precondition(
    x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures) features")
  if let bias { precondition(bias.count == outFeatures, "linear: bias \(bias.shape) for \(outFeatures)") }
  let rows = inFeatures == 0 ? x.shape.dropLast().reduce(1, *) : x.count / inFeatures
  let outShape = Array(x.shape.dropLast()) + [outFeatures]
  return Tensor(shape: outShape) { out in
    x.data.withUnsafeBufferPointer { xp in
      weight.data.withUnsafeBufferPointer { wp in
        let beta = fillRows(out, rows: rows, columns: outFeatures, with: bias)
        guard inFeatures > 0 else {
          if bias == nil { out.update(repeating: 0, count: rows * outFeatures) }
          return
        }
        sgemm(
          m: rows, n: outFeatures, k: inFeatures, a: xp.baseAddress!, lda: inFeatures,
          transposeA: false, b: wp.baseAddress!, ldb: inFeatures, transposeB: true,
          c: out, ldc: outFeatures, beta: beta)
      }
    }
  }
}

/// Writes `bias` into every row and returns the GEMM beta to use: 1 to accumulate onto the bias,
/// or 0 without a bias, leaving the rows for a beta = 0 GEMM to overwrite (OpenBLAS then never
/// reads them, so they may be uninitialized).
func fillRows(_ out: UnsafeMutablePointer<Float>, rows: Int, columns: Int, with bias: Tensor?) -> Float {
  guard let bias else { return 0 }
  bias.data.withUnsafeBufferPointer { bp in
    let b = bp.baseAddress!
    parallelForChunks(rows) { range in
      for row in range { (out + row * columns).update(from: b, count: columns) }
    }
  }
  return 1
}
