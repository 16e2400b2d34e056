import Foundation
import SAMTensor
import XCTest

// Tolerance as AttentionTests: 2e-6 of sum|p * v| plus 1e-7 absolute (float32 q k^T rounding moves
// the softmax weights by ~sqrt(d) * 2^-24 relative; the weighted sum adds sqrt(N) * 2^-24).
private let windowRelative = 2e-6
private let windowAbsolute = 1e-7

final class WindowAttentionTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  func testMatchesPadPartitionAttendReverseCrop() {
    var random = SeededRandom(seed: 60)
    // (H, W, window, heads, keyDim): padding at the bottom only, the right only, both, none, a
    // grid smaller than one window, TinyViT's 128 -> 133 stage-1 shape on a smaller grid, and its
    // 14 x 14 windows (196 keys, more than one 64-column step of the score kernel).
    for (h, w, ws, heads, kd) in [
      (9, 7, 7, 2, 8), (7, 10, 7, 1, 16), (11, 12, 5, 3, 8), (8, 8, 4, 2, 8), (3, 2, 4, 1, 8),
      (15, 15, 7, 2, 32), (16, 20, 14, 2, 24),
    ] {
      let qkv = random.tensor([h, w, heads * 3 * kd])
      let padding = random.tensor([heads * 3 * kd])
      let bias = random.tensor([heads, ws * ws, ws * ws], -2, 2)
      let scale = 1 / Float(kd).squareRoot()
      for (threads, width) in [(1, VectorKernels.Width.avx2), (2, .avx512), (3, .automatic)] {
        ComputeThreads.set(threads)
        VectorKernels.use(width)
        assertClose(
          windowedAttention(
            qkv: qkv, paddingRow: padding, windowSize: ws, heads: heads, keyDim: kd, bias: bias, scale: scale),
          naiveWindowedAttention(
            qkv: qkv, paddingRow: padding, windowSize: ws, heads: heads, keyDim: kd, bias: bias,
            scale: Double(scale)),
          relative: windowRelative, absolute: windowAbsolute,
          "window attention \(h)x\(w) window \(ws) heads \(heads) kd \(kd) threads \(threads) \(width)")
      }
    }
  }
}

/// The reference's steps one at a time: pad the grid with the padding row, cut windows, split each
/// token's row into per-head q, k, v, attend (Reference.attention), put the real tokens back.
private func naiveWindowedAttention(
  qkv: Tensor, paddingRow: Tensor, windowSize ws: Int, heads: Int, keyDim kd: Int, bias: Tensor,
  scale: Double
) -> Expected {
  let (h, w, channels) = (qkv.shape[0], qkv.shape[1], qkv.shape[2])
  let (rows, columns) = ((h + ws - 1) / ws, (w + ws - 1) / ws)
  let n = ws * ws
  var result = Expected(shape: [h, w, heads * kd])
  for wy in 0..<rows {
    for wx in 0..<columns {
      for head in 0..<heads {
        var q = [Float](), k = [Float](), v = [Float]()
        for t in 0..<n {
          let (y, x) = (wy * ws + t / ws, wx * ws + t % ws)
          for part in 0..<3 {
            for p in 0..<kd {
              let c = head * 3 * kd + part * kd + p
              let value = y < h && x < w ? qkv.data[(y * w + x) * channels + c] : paddingRow.data[c]
              if part == 0 { q.append(value) } else if part == 1 { k.append(value) } else { v.append(value) }
            }
          }
        }
        let headBias = Tensor(
          shape: [1, n, n], data: Array(bias.data[(head * n * n)..<((head + 1) * n * n)]))
        let attended = Reference.attention(
          q: Tensor(shape: [1, n, kd], data: q), k: Tensor(shape: [1, n, kd], data: k),
          v: Tensor(shape: [1, n, kd], data: v), bias: headBias, scale: scale)
        for t in 0..<n {
          let (y, x) = (wy * ws + t / ws, wx * ws + t % ws)
          guard y < h && x < w else { continue }
          for p in 0..<kd {
            let target = (y * w + x) * heads * kd + head * kd + p
            result.values[target] = attended.values[t * kd + p]
            result.magnitudes[target] = attended.magnitudes[t * kd + p]
          }
        }
      }
    }
  }
  return result
}
