// TinyViT's windowed multi-head attention computed straight from the qkv projection of the whole
// grid: no padded copy of the grid, no window partition or reverse, no head split or merge. Each
// window gathers its tokens' q, k, v per head into small scratch buffers that stay in cache, runs
// the fused attention kernel (AttentionKernel.swift) and writes its real tokens back in grid order.

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
  let shape = AttentionShape(queries: tokens, keys: tokens, depth: keyDim, valueDepth: keyDim, scale: scale)
  let windows = geometry.rowsOfWindows * geometry.columnsOfWindows
  return Tensor(shape: [height, width, heads * keyDim]) { out in
    qkv.withUnsafeBufferPointer { qkvp in
      paddingRow.withUnsafeBufferPointer { pp in
        bias.withUnsafeBufferPointer { bp in
          let sources = WindowSources(
            grid: qkvp.baseAddress!, padding: pp.baseAddress!, bias: bp.baseAddress!)
          parallelForChunks(windows) { range in
            let scratch = WindowScratch(tokens: tokens, keyDim: keyDim)
            defer { scratch.deallocate() }
            for window in range {
              attendWindow(
                window, out: out, sources: sources, scratch: scratch, geometry: geometry, shape: shape)
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
}

struct WindowSources {
  var grid: UnsafePointer<Float>
  var padding: UnsafePointer<Float>
  var bias: UnsafePointer<Float>
}

/// Per-thread buffers: each token's qkv row (or -1 for padding), one head's q, transposed k, v and
/// output, and the kernel's scores.
struct WindowScratch {
  var rowOffsets: UnsafeMutablePointer<Int>
  var queries: UnsafeMutablePointer<Float>
  var transposedKeys: UnsafeMutablePointer<Float>
  var values: UnsafeMutablePointer<Float>
  var output: UnsafeMutablePointer<Float>
  var scores: UnsafeMutablePointer<Float>

  init(tokens: Int, keyDim: Int) {
    let padded = paddedKeyCount(tokens)
    rowOffsets = .allocate(capacity: tokens)
    queries = .allocate(capacity: tokens * keyDim)
    transposedKeys = .allocate(capacity: keyDim * padded)
    values = .allocate(capacity: tokens * keyDim)
    output = .allocate(capacity: tokens * keyDim)
    scores = .allocate(capacity: 4 * padded)
    // The key padding columns stay zero; the gather only writes the real ones.
    transposedKeys.initialize(repeating: 0, count: keyDim * padded)
  }

  func deallocate() {
    rowOffsets.deallocate()
    queries.deallocate()
    transposedKeys.deallocate()
    values.deallocate()
    output.deallocate()
    scores.deallocate()
  }
}

/// All heads of one window: gather, attend, scatter the real tokens.
private func attendWindow(
  _ window: Int, out: UnsafeMutablePointer<Float>, sources: WindowSources, scratch: WindowScratch,
  geometry g: WindowGeometry, shape: AttentionShape
) {
  let ws = g.windowSize
  let tokens = ws * ws
  let channels = g.heads * 3 * g.keyDim
  let outChannels = g.heads * g.keyDim
  let (y0, x0) = (window / g.columnsOfWindows * ws, window % g.columnsOfWindows * ws)
  for t in 0..<tokens {
    let (y, x) = (y0 + t / ws, x0 + t % ws)
    scratch.rowOffsets[t] = y < g.height && x < g.width ? y * g.width + x : -1
  }
  let padded = paddedKeyCount(tokens)
  let kd = g.keyDim
  for head in 0..<g.heads {
    for t in 0..<tokens {
      let offset = scratch.rowOffsets[t]
      let row = (offset >= 0 ? sources.grid + offset * channels : sources.padding) + head * 3 * kd
      (scratch.queries + t * kd).update(from: row, count: kd)
      for p in 0..<kd { scratch.transposedKeys[p * padded + t] = row[kd + p] }
      (scratch.values + t * kd).update(from: row + 2 * kd, count: kd)
    }
    attentionRows(
      scratch.output, q: scratch.queries, v: scratch.values, bias: sources.bias + head * tokens * tokens,
      scratch: AttentionScratch(transposedKeys: scratch.transposedKeys, scores: scratch.scores), shape: shape,
      rows: 0..<tokens)
    for t in 0..<tokens {
      let offset = scratch.rowOffsets[t]
      guard offset >= 0 else { continue }
      (out + offset * outChannels + head * kd).update(from: scratch.output + t * kd, count: kd)
    }
  }
}
