// Matrix products and layouts for attention computed head by head without projecting the long
// side (the mask decoder's cross-attentions: a few tokens against 4096 image tokens). A head's
// slice of a projection, q_h = x W_h^T, is reached by multiplying with a block-diagonal spread of
// the other side instead of slicing W: row (h, t) of `headBlockDiagonal(k)` holds k[t]'s head-h
// values in head h's columns and zeros elsewhere, so `headBlockDiagonal(k) W` stacks k_h W_h.

/// a [m, k] x b [k, n] -> [m, n], times `alpha`; `transposeA` reads a stored as [k, m],
/// `transposeB` reads b stored as [n, k]. With `adding`, the product is added to a copy of it
/// ([m, n]). One GEMM: each row of the result depends only on its row of op(a) and on b, and the
/// threads split the result by the same rule whatever else is in the batch of rows.
public func matmul(
  _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false, alpha: Float = 1,
  adding c: Tensor? = nil
) -> Tensor {
  precondition(a.shape.count == 2 && b.shape.count == 2, "matmul: \(a.shape) x \(b.shape) are not matrices")
  let (m, k) = transposeA ? (a.shape[1], a.shape[0]) : (a.shape[0], a.shape[1])
  let (kb, n) = transposeB ? (b.shape[1], b.shape[0]) : (b.shape[0], b.shape[1])
  precondition(k == kb, "matmul: inner sizes of \(a.shape) and \(b.shape) differ")
  if let c { precondition(c.shape == [m, n], "matmul: adding \(c.shape) to [\(m), \(n)]") }
  var out = c ?? Tensor(zeros: [m, n])
  guard m > 0, n > 0, k > 0 else { return out }
  a.withUnsafeBufferPointer { ap in
    b.withUnsafeBufferPointer { bp in
      out.data.withUnsafeMutableBufferPointer { op in
        sgemm(
          m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], transposeA: transposeA,
          b: bp.baseAddress!, ldb: b.shape[1], transposeB: transposeB, c: op.baseAddress!, ldc: n,
          alpha: alpha, beta: c == nil ? 0 : 1)
      }
    }
  }
  return out
}

/// x [N, heads * d] -> [heads * N, heads * d]: row h * N + t holds x[t, h*d ..< (h+1)*d] in the
/// same columns and zeros in the other heads' columns.
public func headBlockDiagonal(_ x: Tensor, heads: Int) -> Tensor {
  precondition(x.shape.count == 2 && heads > 0 && x.shape[1] % heads == 0, "headBlockDiagonal: \(x.shape)")
  let (tokens, width) = (x.shape[0], x.shape[1])
  let depth = width / heads
  var out = Tensor(zeros: [heads * tokens, width])
  for h in 0..<heads {
    for t in 0..<tokens {
      let from = t * width + h * depth
      let to = (h * tokens + t) * width + h * depth
      out.data.replaceSubrange(to..<(to + depth), with: x.data[from..<(from + depth)])
    }
  }
  return out
}

/// The inverse gather: y [heads * N, heads * d] -> [N, heads * d], out[t, h*d + j] =
/// y[h * N + t, h*d + j] (each head's own columns of its own rows).
public func headDiagonalBlocks(_ y: Tensor, heads: Int) -> Tensor {
  precondition(
    y.shape.count == 2 && heads > 0 && y.shape[0] % heads == 0 && y.shape[1] % heads == 0,
    "headDiagonalBlocks: \(y.shape) for \(heads) heads")
  let (tokens, width) = (y.shape[0] / heads, y.shape[1])
  let depth = width / heads
  var out = Tensor(zeros: [tokens, width])
  for h in 0..<heads {
    for t in 0..<tokens {
      let from = (h * tokens + t) * width + h * depth
      let to = t * width + h * depth
      out.data.replaceSubrange(to..<(to + depth), with: y.data[from..<(from + depth)])
    }
  }
  return out
}
