// A few tokens attending to many rows, with the scores stored as the rows see them (C kernels in
// CSAMKernels/token_attention.c). The mask decoder's token-to-image attentions compute their
// scores as the image rows [4096, 256] times the tokens' packed query heads, the rows read in place
// (`linear(_:packed:)`); this takes the softmax down each column and multiplies by the image values,
// read in place too.
import CSAMKernels

/// Rows per block of the column reductions: a block's partial maxima and sums are combined in block
/// order, so the result does not depend on the number of threads.
private let columnBlockRows = 512

/// Attention of M tokens over K rows, from scores [K, M] (column i: token i's logits over the rows)
/// and values [K, N]: out[i] = sum over p of softmax(scores[:, i])[p] * values[p], [M, N].
/// `scores` is overwritten with e^(score - the column's maximum); out is the product of their
/// transpose with values (one multiply-add chain over p in order per value), each row divided by
/// its column's sum.
public func attendColumns(_ scores: inout Tensor, values: Tensor) -> Tensor {
  precondition(
    scores.shape.count == 2 && values.shape.count == 2 && scores.shape[0] == values.shape[0],
    "attendColumns: scores \(scores.shape), values \(values.shape)")
  let (k, m, n) = (scores.shape[0], scores.shape[1], values.shape[1])
  precondition(n % 16 == 0, "attendColumns: values \(values.shape) need a multiple of 16 columns")
  guard k > 0, m > 0, n > 0 else { return Tensor(zeros: [m, n]) }
  let sums = exponentiateColumns(&scores)
  var out = transposedProduct(scores, values)
  out.data.withUnsafeMutableBufferPointer { op in
    for i in 0..<m {
      let row = op.baseAddress! + i * n
      scaleVector(row, row, by: 1 / sums[i], count: n)
    }
  }
  return out
}

/// The numerators of a softmax down each column of scores [K, M], in place: e^(x - the column's
/// maximum), and each column's sum of them (over the rows in blocks of 512, the blocks' sums added
/// in order, so the result does not depend on the number of threads). -> sums [M].
public func exponentiateColumns(_ scores: inout Tensor) -> [Float] {
  precondition(scores.shape.count == 2, "exponentiateColumns: scores \(scores.shape)")
  let (k, m) = (scores.shape[0], scores.shape[1])
  guard k > 0, m > 0 else { return [Float](repeating: 0, count: m) }
  let blocks = (k + columnBlockRows - 1) / columnBlockRows
  func rows(_ block: Int) -> Range<Int> { (block * columnBlockRows)..<min(k, (block + 1) * columnBlockRows) }
  // Each block's maxima, then the maximum of those (exact in any order).
  var partial = [Float](repeating: -.infinity, count: blocks * m)
  var maxima = [Float](repeating: -.infinity, count: m)
  var sums = [Float](repeating: 0, count: m)
  scores.data.withUnsafeMutableBufferPointer { sp in
    partial.withUnsafeMutableBufferPointer { pp in
      let (s, p) = (sp.baseAddress!, pp.baseAddress!)
      parallelForChunks(blocks) { range in
        for block in range {
          let r = rows(block)
          sam_column_max(p + block * m, s + r.lowerBound * m, m, r.count, m)
        }
      }
      for block in 0..<blocks {
        for i in 0..<m { maxima[i] = max(maxima[i], p[block * m + i]) }
      }
      // e^(x - max) in place, each block's column sums, then the sums added in block order.
      maxima.withUnsafeBufferPointer { mp in
        parallelForChunks(blocks) { range in
          for block in range {
            let r = rows(block)
            sam_column_exp(s + r.lowerBound * m, m, r.count, m, mp.baseAddress!, p + block * m)
          }
        }
      }
      for block in 0..<blocks {
        for i in 0..<m { sums[i] += p[block * m + i] }
      }
    }
  }
  return sums
}

/// a [K, M] and b [K, N] -> a^T b [M, N], both read in place (`sam_transposed_product`: one
/// multiply-add chain over the K rows in order per value), split over the threads by panels of 32
/// columns of b. N must be a multiple of 16.
public func transposedProduct(_ a: Tensor, _ b: Tensor) -> Tensor {
  precondition(
    a.shape.count == 2 && b.shape.count == 2 && a.shape[0] == b.shape[0] && b.shape[1] % 16 == 0,
    "transposedProduct: \(a.shape)^T x \(b.shape) (b needs a multiple of 16 columns)")
  let (k, m, n) = (a.shape[0], a.shape[1], b.shape[1])
  guard k > 0, m > 0, n > 0 else { return Tensor(zeros: [m, n]) }
  let panels = (n + 31) / 32
  return Tensor(shape: [m, n]) { o in
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        let (pa, pb) = (ap.baseAddress!, bp.baseAddress!)
        parallelForChunks(panels) { range in
          sam_transposed_product(
            o, n, pa, m, m, pb, n, k, range.lowerBound * 32, min(n, range.upperBound * 32))
        }
      }
    }
  }
}

/// The same head by head: a [K, heads * M] (head h's M columns together, h * M + i), values
/// [K, heads * d] -> [M, heads * d], out[i, h * d + j] = sum over p of a[p, h * M + i] *
/// values[p, h * d + j]: each head's columns of a against its own columns of values only, a
/// heads-th of the multiply-adds of `transposedProduct`. d must be a multiple of 16. Parallel over
/// the heads.
public func transposedHeadProducts(_ a: Tensor, values: Tensor, heads: Int) -> Tensor {
  precondition(
    a.shape.count == 2 && values.shape.count == 2 && a.shape[0] == values.shape[0] && heads > 0
      && a.shape[1] % heads == 0 && values.shape[1] % (16 * heads) == 0,
    "transposedHeadProducts: \(a.shape)^T x \(values.shape) by \(heads) heads")
  let (k, m, width) = (a.shape[0], a.shape[1] / heads, values.shape[1])
  let depth = width / heads
  guard k > 0, m > 0 else { return Tensor(zeros: [m, width]) }
  return Tensor(shape: [m, width]) { o in
    a.withUnsafeBufferPointer { ap in
      values.withUnsafeBufferPointer { vp in
        let (pa, pv) = (ap.baseAddress!, vp.baseAddress!)
        parallelForChunks(heads) { range in
          for h in range {
            sam_transposed_product(
              o, width, pa + h * m, heads * m, m, pv, width, k, h * depth, (h + 1) * depth)
          }
        }
      }
    }
  }
}

/// x [K, M * heads] with a row's columns token-major (t * heads + h), each row times its scale
/// -> [K, heads * M] head-major (h * M + t): the layout `transposedHeadProducts` reads.
public func headMajorColumns(_ x: Tensor, heads: Int, rowScales: [Float]) -> Tensor {
  precondition(
    x.shape.count == 2 && heads > 0 && x.shape[1] % heads == 0 && rowScales.count == x.shape[0],
    "headMajorColumns: \(x.shape) by \(heads) heads, \(rowScales.count) scales")
  let (rows, columns) = (x.shape[0], x.shape[1])
  let tokens = columns / heads
  return Tensor(shape: x.shape) { out in
    x.withUnsafeBufferPointer { xp in
      let px = xp.baseAddress!
      parallelForChunksIfLarge(rows, work: rows * columns) { range in
        for r in range {
          let (from, to, s) = (px + r * columns, out + r * columns, rowScales[r])
          for t in 0..<tokens {
            for h in 0..<heads { to[h * tokens + t] = from[t * heads + h] * s }
          }
        }
      }
    }
  }
}

/// rowScales[r] * (a[r, c] + b[r, c]) + c[r, c] for a, b, c [K, N] (a row-scaled sum plus a
/// term that is not scaled: the low-rank scores of MobileSAM's second decoder layer).
public func rowScaledSum(_ a: Tensor, _ b: Tensor, rowScales: [Float], plus c: Tensor) -> Tensor {
  precondition(
    a.shape.count == 2 && a.shape == b.shape && a.shape == c.shape && rowScales.count == a.shape[0],
    "rowScaledSum: \(a.shape), \(b.shape), \(c.shape), \(rowScales.count) scales")
  let (rows, columns) = (a.shape[0], a.shape[1])
  return Tensor(shape: a.shape) { out in
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        c.withUnsafeBufferPointer { cp in
          let (pa, pb, pc) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
          parallelForChunksIfLarge(rows, work: rows * columns) { range in
            for r in range {
              let s = rowScales[r]
              for i in (r * columns)..<((r + 1) * columns) { out[i] = s * (pa[i] + pb[i]) + pc[i] }
            }
          }
        }
      }
    }
  }
}
