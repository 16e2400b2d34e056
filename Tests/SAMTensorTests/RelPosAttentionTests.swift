import Foundation
import SAMTensor
import XCTest

final class RelPosAttentionTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    super.tearDown()
  }

  /// A table of 2 * size - 1 rows is only gathered: out[q, k] = table[q - k + size - 1].
  func testRelativePositionTableGathersOffsets() {
    var random = SeededRandom(seed: 80)
    let (size, channels) = (4, 3)
    let table = random.tensor([2 * size - 1, channels])
    let out = relativePositionTable(table, size: size)
    XCTAssertEqual(out.shape, [size, size, channels])
    for q in 0..<size {
      for k in 0..<size {
        for c in 0..<channels {
          XCTAssertEqual(
            out.data[(q * size + k) * channels + c], table.data[(q - k + size - 1) * channels + c])
        }
      }
    }
  }

  /// Tables of another length are resized as torch's F.interpolate(mode="linear") does (values
  /// printed by torch 2.15: up from 3 to 5 rows, down from 7 to 3), 1e-5 for float rounding.
  func testRelativePositionTableInterpolatesLikeTorch() {
    let up = relativePositionTable(Tensor(shape: [3, 1], data: [0, 1, 2]), size: 3)
    let down = relativePositionTable(Tensor(shape: [7, 1], data: [0, 1, 4, 9, 16, 25, 36]), size: 2)
    let torchUp: [Float] = [0, 0.4, 1, 1.6, 2]
    let torchDown: [Float] = [0.6666666, 9, 28.666664]
    // out[q, k] = resized[q - k + size - 1]
    for q in 0..<3 {
      for k in 0..<3 { XCTAssertEqual(up.data[q * 3 + k], torchUp[q - k + 2], accuracy: 1e-5) }
    }
    for q in 0..<2 {
      for k in 0..<2 { XCTAssertEqual(down.data[q * 2 + k], torchDown[q - k + 1], accuracy: 1e-5) }
    }
  }

  func testWindowPartitionPadsAndUnpartitionRestores() {
    var random = SeededRandom(seed: 81)
    for (h, w, ws) in [(9, 7, 4), (8, 8, 4), (3, 5, 14), (70, 70, 14)] {
      let x = random.tensor([h, w, 3])
      let padding = Tensor(shape: [3], data: [7, 8, 9])
      let windows = windowPartition(x, windowSize: ws, paddingRow: padding)
      let (rows, columns) = ((h + ws - 1) / ws, (w + ws - 1) / ws)
      XCTAssertEqual(windows.shape, [rows * columns, ws * ws, 3])
      // Naive: pad the grid, then read window (wy, wx) row by row.
      for window in 0..<(rows * columns) {
        for t in 0..<(ws * ws) {
          let y = window / columns * ws + t / ws
          let xPos = window % columns * ws + t % ws
          for c in 0..<3 {
            let want = y < h && xPos < w ? x.data[(y * w + xPos) * 3 + c] : padding.data[c]
            XCTAssertEqual(windows.data[(window * ws * ws + t) * 3 + c], want)
          }
        }
      }
      XCTAssertEqual(windowUnpartition(windows, windowSize: ws, height: h, width: w), x)
    }
  }

  /// Against the reference's steps in Double: scores, the two decomposed terms, softmax, values.
  /// Tolerance as AttentionTests: 2e-6 of sum |p * v| plus 1e-7 (float32 q k^T rounding moves the
  /// softmax weights by ~sqrt(d) * 2^-24 relative).
  func testRelativePositionAttentionMatchesNaive() {
    var random = SeededRandom(seed: 82)
    // (groups, height, width, d): one block, several blocks of 128 query rows with a partial last
    // one (12 x 12 = 144), a non-square grid, a depth that is not a multiple of 8.
    for (groups, height, width, d) in [(3, 4, 4, 8), (2, 12, 12, 16), (2, 5, 3, 12), (1, 14, 14, 64)] {
      let tokens = height * width
      let qkv = random.tensor([3, groups, tokens, d], -1.5, 1.5)
      let tableH = random.tensor([height, height, d], -0.5, 0.5)
      let tableW = random.tensor([width, width, d], -0.5, 0.5)
      let scale = 1 / Float(d).squareRoot()
      let want = naiveRelativePositionAttention(
        qkv: qkv, tableH: tableH, tableW: tableW, height: height, width: width, scale: Double(scale))
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        assertClose(
          relativePositionAttention(
            qkv: qkv, tableH: tableH, tableW: tableW, height: height, width: width, scale: scale),
          want, relative: 2e-6, absolute: 1e-7,
          "rel-pos attention groups \(groups) grid \(height)x\(width) d \(d) threads \(threads)")
      }
    }
  }
}

/// image_encoder.py `Attention.forward` with `add_decomposed_rel_pos`, one value at a time.
private func naiveRelativePositionAttention(
  qkv: Tensor, tableH: Tensor, tableW: Tensor, height: Int, width: Int, scale: Double
) -> Expected {
  let (groups, tokens, d) = (qkv.shape[1], qkv.shape[2], qkv.shape[3])
  func value(_ which: Int, _ g: Int, _ t: Int, _ c: Int) -> Double {
    Double(qkv.data[((which * groups + g) * tokens + t) * d + c])
  }
  var result = Expected(shape: [groups, tokens, d])
  for g in 0..<groups {
    for i in 0..<tokens {
      let (qy, qx) = (i / width, i % width)
      var scores = [Double](repeating: 0, count: tokens)
      for j in 0..<tokens {
        let (ky, kx) = (j / width, j % width)
        var dotQK = 0.0
        var relH = 0.0
        var relW = 0.0
        for c in 0..<d {
          let q = value(0, g, i, c)
          dotQK += q * value(1, g, j, c)
          relH += q * Double(tableH.data[(qy * height + ky) * d + c])
          relW += q * Double(tableW.data[(qx * width + kx) * d + c])
        }
        scores[j] = dotQK * scale + relH + relW
      }
      let maximum = scores.max() ?? 0
      let exps = scores.map { exp($0 - maximum) }
      let total = exps.reduce(0, +)
      for c in 0..<d {
        var sum = 0.0
        var magnitude = 0.0
        for j in 0..<tokens {
          let term = exps[j] / total * value(2, g, j, c)
          sum += term
          magnitude += abs(term)
        }
        result.values[(g * tokens + i) * d + c] = sum
        result.magnitudes[(g * tokens + i) * d + c] = magnitude
      }
    }
  }
  return result
}
