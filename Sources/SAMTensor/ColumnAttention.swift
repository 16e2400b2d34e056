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
  // The product, split over the threads by panels of 32 output columns.
  let panels = (n + 31) / 32
  var out = Tensor(shape: [m, n]) { o in
    scores.withUnsafeBufferPointer { sp in
      values.withUnsafeBufferPointer { vp in
        let (s, v) = (sp.baseAddress!, vp.baseAddress!)
        parallelForChunks(panels) { range in
          sam_transposed_product(o, n, s, m, m, v, n, k, range.lowerBound * 32, min(n, range.upperBound * 32))
        }
      }
    }
  }
  out.data.withUnsafeMutableBufferPointer { op in
    for i in 0..<m {
      let row = op.baseAddress! + i * n
      scaleVector(row, row, by: 1 / sums[i], count: n)
    }
  }
  return out
}
