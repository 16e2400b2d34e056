// Kernels of SAM's ViT image encoder (segment_anything/modeling/image_encoder.py): the
// relative-position tables of `get_rel_pos`, window partition and reverse with padding, and
// attention with the decomposed relative-position bias of `add_decomposed_rel_pos`, computed one
// block of query rows at a time so that a global block over 4096 tokens never holds more than
// a few MB of scores (16 heads x 4096 x 4096 at once would be 1 GB).
import CBLAS

/// `get_rel_pos(size, size, table)`: table [L, C] -> [size, size, C] with
/// out[q, k] = resized[q - k + size - 1], where `resized` is the table linearly interpolated to
/// 2 * size - 1 rows when L differs (`F.interpolate(mode="linear")`, align_corners False).
public func relativePositionTable(_ table: Tensor, size: Int) -> Tensor {
  precondition(table.shape.count == 2 && table.shape[0] > 0, "relativePositionTable: table \(table.shape)")
  precondition(size > 0, "relativePositionTable: size \(size)")
  let (rows, channels) = (table.shape[0], table.shape[1])
  let distances = 2 * size - 1
  let values = table.data  // one copy at most (the table may be borrowed)
  var resized = values
  if rows != distances {
    resized = [Float](repeating: 0, count: distances * channels)
    let ratio = Float(rows) / Float(distances)
    for i in 0..<distances {
      // torch's source index for align_corners=False, clamped at 0 (area_pixel_compute_source_index).
      let source = max(0, (Float(i) + 0.5) * ratio - 0.5)
      let i0 = min(Int(source), rows - 1)
      let i1 = min(i0 + 1, rows - 1)
      let lambda1 = source - Float(i0)
      let lambda0 = 1 - lambda1
      for c in 0..<channels {
        resized[i * channels + c] = lambda0 * values[i0 * channels + c] + lambda1 * values[i1 * channels + c]
      }
    }
  }
  var out = [Float](repeating: 0, count: size * size * channels)
  for q in 0..<size {
    for k in 0..<size {
      let source = (q - k + size - 1) * channels
      for c in 0..<channels { out[(q * size + k) * channels + c] = resized[source + c] }
    }
  }
  return Tensor(shape: [size, size, channels], data: out)
}

/// `window_partition`: x [H, W, C] -> [windows, ws * ws, C], windows in row-major order over the
/// grid padded at the bottom and right to whole windows; padded tokens are `paddingRow` [C]
/// (the reference pads with zeros; a caller that applies a per-token map before partitioning
/// passes the map of a zero token).
public func windowPartition(_ x: Tensor, windowSize ws: Int, paddingRow: Tensor) -> Tensor {
  precondition(x.shape.count == 3 && ws > 0, "windowPartition: x \(x.shape), window \(ws)")
  let (height, width, channels) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(paddingRow.count == channels, "windowPartition: padding \(paddingRow.shape) for \(channels)")
  let (rowsOfWindows, columnsOfWindows) = ((height + ws - 1) / ws, (width + ws - 1) / ws)
  let windows = rowsOfWindows * columnsOfWindows
  return Tensor(shape: [windows, ws * ws, channels]) { out in
    x.withUnsafeBufferPointer { xp in
      paddingRow.withUnsafeBufferPointer { pp in
        let (input, padding) = (xp.baseAddress!, pp.baseAddress!)
        parallelForChunksIfLarge(windows, work: windows * ws * ws * channels) { range in
          for window in range {
            let (y0, x0) = (window / columnsOfWindows * ws, window % columnsOfWindows * ws)
            for t in 0..<(ws * ws) {
              let (y, x) = (y0 + t / ws, x0 + t % ws)
              let source = y < height && x < width ? input + (y * width + x) * channels : padding
              (out + (window * ws * ws + t) * channels).update(from: source, count: channels)
            }
          }
        }
      }
    }
  }
}

/// `window_unpartition`: x [windows, ws * ws, C] -> [H, W, C], dropping the padded tokens.
public func windowUnpartition(_ x: Tensor, windowSize ws: Int, height: Int, width: Int) -> Tensor {
  let (rowsOfWindows, columnsOfWindows) = ((height + ws - 1) / ws, (width + ws - 1) / ws)
  precondition(
    x.shape.count == 3 && x.shape[0] == rowsOfWindows * columnsOfWindows && x.shape[1] == ws * ws,
    "windowUnpartition: x \(x.shape) is not the \(ws)x\(ws) windows of a \(height)x\(width) grid")
  let channels = x.shape[2]
  return Tensor(shape: [height, width, channels]) { out in
    x.withUnsafeBufferPointer { xp in
      let input = xp.baseAddress!
      parallelForChunksIfLarge(height, work: height * width * channels) { range in
        for y in range {
          for x in 0..<width {
            let window = y / ws * columnsOfWindows + x / ws
            let t = (y % ws) * ws + x % ws
            (out + (y * width + x) * channels).update(
              from: input + (window * ws * ws + t) * channels, count: channels)
          }
        }
      }
    }
  }
}

/// Attention of image_encoder.py `Attention.forward` with `use_rel_pos`, for G groups (batch x
/// heads) whose N = height * width tokens lie on a grid:
/// out = softmax(q k^T * scale + relH[q, kh] + relW[q, kw]) v, where for a query at (y, x)
/// relH[q, kh] = q . tableH[y, kh] and relW[q, kw] = q . tableW[x, kw] (unscaled q, as
/// `add_decomposed_rel_pos` receives it), and key index = kh * width + kw.
/// - qkv [3, G, N, d]: q, k, v stacked (the reference's `qkv.reshape(3, B * heads, N, -1)`).
/// - tableH [height, height, d], tableW [width, width, d]: `get_rel_pos` outputs
///   (`relativePositionTable`).
/// Returns [G, N, d]. Parallel over (group, block of query rows); each block holds its scores
/// [rows, N] in per-thread scratch.
public func relativePositionAttention(
  qkv: Tensor, tableH: Tensor, tableW: Tensor, height: Int, width: Int, scale: Float
) -> Tensor {
  precondition(qkv.shape.count == 4 && qkv.shape[0] == 3, "relativePositionAttention: qkv \(qkv.shape)")
  let (groups, tokens, depth) = (qkv.shape[1], qkv.shape[2], qkv.shape[3])
  precondition(
    tokens == height * width && depth > 0,
    "relativePositionAttention: \(tokens) tokens for a \(height)x\(width) grid")
  precondition(
    tableH.shape == [height, height, depth] && tableW.shape == [width, width, depth],
    "relativePositionAttention: tables \(tableH.shape), \(tableW.shape) for grid \(height)x\(width), d \(depth)"
  )
  let geometry = RelativeAttentionGeometry(
    groups: groups, tokens: tokens, depth: depth, height: height, width: width,
    blockRows: min(tokens, relativeAttentionBlockRows), scale: scale)
  let blocksPerGroup = (tokens + geometry.blockRows - 1) / geometry.blockRows
  _ = BLASCore.selection  // before the first GEMM: replace OpenBLAS's SSE3 fallback (BLASCore.swift)
  // The tables transposed per position, [position, d, keys padded to 8]: a row's bias terms are
  // then sums of d vectors (no horizontal sums).
  let transposedH = transposeRelativeTable(tableH)
  let transposedW = transposeRelativeTable(tableW)
  return Tensor(shape: [groups, tokens, depth]) { out in
    qkv.withUnsafeBufferPointer { qkvp in
      transposedH.withUnsafeBufferPointer { hp in
        transposedW.withUnsafeBufferPointer { wp in
          let sources = RelativeAttentionSources(
            qkv: qkvp.baseAddress!, tableH: hp.baseAddress!, tableW: wp.baseAddress!)
          parallelForChunks(groups * blocksPerGroup) { range in
            let scratch = UnsafeMutablePointer<Float>.allocate(
              capacity: geometry.blockRows * tokens + paddedCount(height) + paddedCount(width))
            defer { scratch.deallocate() }
            for item in range {
              let group = item / blocksPerGroup
              let firstRow = (item % blocksPerGroup) * geometry.blockRows
              attendQueryBlock(
                out, group: group, rows: firstRow..<min(tokens, firstRow + geometry.blockRows),
                sources: sources, scratch: scratch, geometry: geometry)
            }
          }
        }
      }
    }
  }
}

/// Query rows per work item: 128 x 4096 scores are 2 MB, and a 128-row GEMM keeps OpenBLAS
/// efficient.
let relativeAttentionBlockRows = 128

struct RelativeAttentionGeometry {
  var groups: Int
  var tokens: Int
  var depth: Int
  var height: Int
  var width: Int
  var blockRows: Int
  var scale: Float
}

struct RelativeAttentionSources {
  var qkv: UnsafePointer<Float>
  var tableH: UnsafePointer<Float>
  var tableW: UnsafePointer<Float>
}

/// Query rows `rows` of one group: scores by GEMM, the two bias terms, softmax, weighted values.
private func attendQueryBlock(
  _ out: UnsafeMutablePointer<Float>, group: Int, rows: Range<Int>, sources: RelativeAttentionSources,
  scratch: UnsafeMutablePointer<Float>, geometry g: RelativeAttentionGeometry
) {
  let (n, d) = (g.tokens, g.depth)
  let plane = g.groups * n * d
  let q = sources.qkv + group * n * d
  let k = q + plane
  let v = k + plane
  let count = rows.count
  let scores = scratch  // [count, n]
  let relH = scratch + g.blockRows * n  // [height padded to 8]
  let relW = relH + paddedCount(g.height)  // [width padded to 8]
  let (paddedH, paddedW) = (paddedCount(g.height), paddedCount(g.width))
  let qRows = q + rows.lowerBound * d
  cblas_sgemm(
    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(n), Int32(d), g.scale, qRows, Int32(d),
    k, Int32(d), 0, scores, Int32(n))
  for r in 0..<count {
    let token = rows.lowerBound + r
    let (y, x) = (token / g.width, token % g.width)
    let query = qRows + r * d
    transposedMatrixVector(
      relH, query, table: sources.tableH + y * d * paddedH, depth: d, paddedColumns: paddedH)
    transposedMatrixVector(
      relW, query, table: sources.tableW + x * d * paddedW, depth: d, paddedColumns: paddedW)
    let row = scores + r * n
    addDecomposedBias(row, relH: relH, relW: relW, height: g.height, width: g.width)
    softmaxRow(row, count: n)
  }
  cblas_sgemm(
    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(count), Int32(d), Int32(n), 1, scores, Int32(n), v,
    Int32(d), 0, out + (group * n + rows.lowerBound) * d, Int32(d))
}

@inline(__always)
func paddedCount(_ count: Int) -> Int { (count + 7) / 8 * 8 }

/// table [P, K, d] -> [P, d, K padded to 8] (padding zero).
private func transposeRelativeTable(_ table: Tensor) -> [Float] {
  let (positions, keys, depth) = (table.shape[0], table.shape[1], table.shape[2])
  let padded = paddedCount(keys)
  var out = [Float](repeating: 0, count: positions * depth * padded)
  let values = table.data  // one copy at most
  for p in 0..<positions {
    for kIndex in 0..<keys {
      for c in 0..<depth {
        out[(p * depth + c) * padded + kIndex] = values[(p * keys + kIndex) * depth + c]
      }
    }
  }
  return out
}

/// out[j] = sum over c of vector[c] * table[c, j] for j < paddedColumns (a multiple of 8).
private func transposedMatrixVector(
  _ out: UnsafeMutablePointer<Float>, _ vector: UnsafePointer<Float>, table: UnsafePointer<Float>, depth: Int,
  paddedColumns: Int
) {
  var j = 0
  while j + 32 <= paddedColumns {
    var a0 = SIMD8<Float>.zero
    var a1 = SIMD8<Float>.zero
    var a2 = SIMD8<Float>.zero
    var a3 = SIMD8<Float>.zero
    for c in 0..<depth {
      let w = SIMD8<Float>(repeating: vector[c])
      let row = table + c * paddedColumns + j
      a0.addProduct(w, loadVector(row))
      a1.addProduct(w, loadVector(row + 8))
      a2.addProduct(w, loadVector(row + 16))
      a3.addProduct(w, loadVector(row + 24))
    }
    storeVector(a0, out + j)
    storeVector(a1, out + j + 8)
    storeVector(a2, out + j + 16)
    storeVector(a3, out + j + 24)
    j += 32
  }
  while j < paddedColumns {
    var a0 = SIMD8<Float>.zero
    for c in 0..<depth {
      a0.addProduct(SIMD8<Float>(repeating: vector[c]), loadVector(table + c * paddedColumns + j))
    }
    storeVector(a0, out + j)
    j += 8
  }
}

/// row[kh * width + kw] += relH[kh] + relW[kw].
private func addDecomposedBias(
  _ row: UnsafeMutablePointer<Float>, relH: UnsafePointer<Float>, relW: UnsafePointer<Float>, height: Int,
  width: Int
) {
  for kh in 0..<height {
    let segment = row + kh * width
    let h = SIMD8<Float>(repeating: relH[kh])
    var kw = 0
    while kw + 8 <= width {
      storeVector(loadVector(segment + kw) + h + loadVector(relW + kw), segment + kw)
      kw += 8
    }
    while kw < width {
      segment[kw] += relH[kh] + relW[kw]
      kw += 1
    }
  }
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
