// TinyViT's windowed multi-head attention computed straight from the qkv projection of the whole
// grid: no padded copy of the grid, no window partition or reverse, no head split or merge. Each
// window gathers its tokens' keys and values per head into small scratch buffers that stay in
// cache and runs the attention of its real tokens' queries (CSAMKernels/attention.c, with the
// products of the fused attention kernel), writing them back in grid order. Padded tokens are keys
// only: their outputs would be cropped away.
import CSAMKernels

/// The attention of tiny_vit_sam.py `TinyViTBlock.forward` (pad, window partition, `Attention`
/// without its output projection, window reverse, crop), from the qkv projection of the grid:
/// - qkv [H, W, heads * 3 * keyDim]: per token and head, q, k and v of keyDim values each (the
///   reference's interleaved `view(B, N, heads, -1).split([kd, kd, d], dim=3)`, with d = keyDim).
/// - paddingRow [heads * 3 * keyDim]: the qkv of a padded token. The grid is padded at the bottom
///   and right to whole windows; padded tokens take part as keys (the reference does not mask them).
/// - bias [heads, N, N], N = windowSize^2: added to the scaled scores of each window.
/// Returns [H, W, heads * keyDim], each token's heads concatenated (`transpose(1, 2).reshape`).
/// keyDim must be a multiple of 8. Parallel over windows.
public func windowedAttention(
  qkv: Tensor, paddingRow: Tensor, windowSize: Int, heads: Int, keyDim: Int, bias: Tensor, scale: Float
) -> Tensor {
  precondition(qkv.shape.count == 3, "windowedAttention: qkv must be [H, W, C], got \(qkv.shape)")
  let (height, width, channels) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
  let tokens = windowSize * windowSize
  precondition(
    windowSize > 0 && heads > 0 && keyDim > 0 && keyDim % 8 == 0 && channels == heads * 3 * keyDim,
    "windowedAttention: qkv \(qkv.shape) is not [H, W, \(heads) heads * 3 * \(keyDim)] (keyDim % 8 == 0)")
  precondition(
    paddingRow.count == channels, "windowedAttention: padding row \(paddingRow.shape) for \(channels)")
  precondition(
    bias.shape == [heads, tokens, tokens],
    "windowedAttention: bias \(bias.shape) is not [\(heads), \(tokens), \(tokens)]")
  let geometry = WindowGeometry(
    height: height, width: width, windowSize: windowSize, heads: heads, keyDim: keyDim)
  let windows = geometry.rowsOfWindows * geometry.columnsOfWindows
  return Tensor(shape: [height, width, heads * keyDim]) { out in
    qkv.withUnsafeBufferPointer { qkvp in
      paddingRow.withUnsafeBufferPointer { pp in
        bias.withUnsafeBufferPointer { bp in
          let sources = WindowSources(
            grid: qkvp.baseAddress!, padding: pp.baseAddress!, bias: bp.baseAddress!)
          let shares = geometry.balancedShares(threads: min(ComputeThreads.count, windows))
          parallelForChunks(shares.count - 1) { chunk in
            let range = shares[chunk.lowerBound]..<shares[chunk.upperBound]
            let rows = UnsafeMutablePointer<Int>.allocate(capacity: tokens)
            let scratch = UnsafeMutablePointer<Float>.allocate(
              capacity: sam_window_attention_scratch(tokens, heads, keyDim))
            defer {
              rows.deallocate()
              scratch.deallocate()
            }
            for window in range {
              attendWindow(
                window, out: out, sources: sources, rows: rows, scratch: scratch, geometry: geometry,
                scale: scale)
            }
          }
        }
      }
    }
  }
}

struct WindowGeometry {
  var height: Int
  var width: Int
  var windowSize: Int
  var heads: Int
  var keyDim: Int
  var rowsOfWindows: Int { (height + windowSize - 1) / windowSize }
  var columnsOfWindows: Int { (width + windowSize - 1) / windowSize }

  /// Boundaries of `threads` contiguous ranges of windows (`threads + 1` values from 0 to the
  /// window count) of about equal work. The windows at the bottom and right hold few real tokens,
  /// and only real tokens are computed as queries: equal window counts left one thread up to 16%
  /// more work (TinyViT's 5 x 5 windows of 14 x 14 over a 64 x 64 grid). A window costs its real
  /// tokens plus a quarter of its tokens (the gather of keys and values, measured).
  func balancedShares(threads: Int) -> [Int] {
    let tokens = windowSize * windowSize
    var costs: [Int] = []
    for wy in 0..<rowsOfWindows {
      for wx in 0..<columnsOfWindows {
        let realRows = min(windowSize, height - wy * windowSize)
        let realColumns = min(windowSize, width - wx * windowSize)
        costs.append(4 * realRows * realColumns + tokens)
      }
    }
    let total = costs.reduce(0, +)
    var shares = [0]
    var done = 0
    for (window, cost) in costs.enumerated() where shares.count < threads {
      done += cost
      // Close the current share once it holds its part of the total.
      if done * threads >= total * shares.count { shares.append(window + 1) }
    }
    while shares.count < threads { shares.append(costs.count) }
    shares.append(costs.count)
    return shares
  }
}

struct WindowSources {
  var grid: UnsafePointer<Float>
  var padding: UnsafePointer<Float>
  var bias: UnsafePointer<Float>
}

/// All heads of one window, in C (CSAMKernels/attention.c): `rows` receives each token's grid row,
/// or -1 for a padded token.
private func attendWindow(
  _ window: Int, out: UnsafeMutablePointer<Float>, sources: WindowSources, rows: UnsafeMutablePointer<Int>,
  scratch: UnsafeMutablePointer<Float>, geometry g: WindowGeometry, scale: Float
) {
  let ws = g.windowSize
  let tokens = ws * ws
  let (y0, x0) = (window / g.columnsOfWindows * ws, window % g.columnsOfWindows * ws)
  for t in 0..<tokens {
    let (y, x) = (y0 + t / ws, x0 + t % ws)
    rows[t] = y < g.height && x < g.width ? y * g.width + x : -1
  }
  sam_window_attention(
    out, g.heads * g.keyDim, sources.grid, g.heads * 3 * g.keyDim, sources.padding, rows, sources.bias,
    tokens,
    g.heads, g.keyDim, scale, scratch)
}
