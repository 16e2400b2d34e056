import Foundation
import SAMTensor
import XCTest

// Tolerance: 2e-6 of sum|p * v| plus 1e-7 absolute. q k^T is a float32 dot product of d terms,
// its rounding (about sqrt(d) * 2^-24 * |q||k| * scale <= 5e-7 for the inputs here) moves the
// softmax weights by that relative amount; the second GEMM adds sqrt(Nk) * 2^-24.
private let attentionRelative = 2e-6
private let attentionAbsolute = 1e-7

final class AttentionTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    super.tearDown()
  }

  func testFewerGroupsThanThreadsSplitsQueryRows() {
    // 2 groups on 3 threads: rows are split in blocks of 4 across threads; 1001 rows leave a
    // partial block.
    ComputeThreads.set(3)
    var random = SeededRandom(seed: 43)
    let q = random.tensor([2, 1001, 16])
    let k = random.tensor([2, 13, 16])
    let v = random.tensor([2, 13, 16])
    let bias = random.tensor([2, 1001, 13])
    assertClose(
      attention(q: q, k: k, v: v, bias: bias, scale: 0.25),
      Reference.attention(q: q, k: k, v: v, bias: bias, scale: 0.25),
      relative: attentionRelative, absolute: attentionAbsolute, "attention split rows")
  }

  func testAwkwardShapesWithAndWithoutBias() {
    var random = SeededRandom(seed: 40)
    // (G, Nq, Nk, d, dv, bias heads)
    for (g, nq, nk, d, dv, heads) in [
      // dv not a multiple of 8: the OpenBLAS path.
      (6, 5, 7, 3, 4, 3), (1, 9, 2, 5, 5, 1), (4, 1, 11, 8, 3, 2), (3, 13, 13, 9, 9, 1), (1, 3, 1, 2, 2, 1),
      // dv a multiple of 8: the fused kernel, with row counts not multiples of 4, keys not
      // multiples of 8 or 16, 8- and 16-wide value columns, and fewer groups than threads.
      (6, 13, 11, 5, 8, 3), (4, 6, 17, 7, 24, 2), (3, 4, 16, 3, 16, 1), (1, 13, 9, 5, 40, 1),
      (2, 1, 1, 1, 8, 2),
      (1, 3, 25, 4, 16, 1),
    ] {
      let q = random.tensor([g, nq, d])
      let k = random.tensor([g, nk, d])
      let v = random.tensor([g, nk, dv])
      let bias = random.tensor([heads, nq, nk], -2, 2)
      let scale = 1 / Float(d).squareRoot()
      for b in [bias, nil] {
        assertClose(
          attention(q: q, k: k, v: v, bias: b, scale: scale),
          Reference.attention(q: q, k: k, v: v, bias: b, scale: Double(scale)),
          relative: attentionRelative, absolute: attentionAbsolute,
          "attention G\(g) Nq\(nq) Nk\(nk) d\(d) dv\(dv) bias \(b != nil)")
      }
    }
  }

  func testWindowAttentionShapes() {
    var random = SeededRandom(seed: 41)
    // TinyViT: stage 1 (128x128 grid, 7x7 windows, 4 heads; fewer windows here) and stage 2
    // (64x64 padded to 70x70, 14x14 windows, 5 heads), d = 32, attention biases per head.
    for (windows, heads, tokens) in [(12, 4, 49), (25, 5, 196)] {
      let g = windows * heads
      let q = random.tensor([g, tokens, 32])
      let k = random.tensor([g, tokens, 32])
      let v = random.tensor([g, tokens, 32])
      let bias = random.tensor([heads, tokens, tokens], -3, 3)
      let scale = 1 / Float(32).squareRoot()
      assertClose(
        attention(q: q, k: k, v: v, bias: bias, scale: scale),
        Reference.attention(q: q, k: k, v: v, bias: bias, scale: Double(scale)),
        relative: attentionRelative, absolute: attentionAbsolute, "window attention G\(g) N\(tokens)")
    }
  }

  func testDecoderAttentionShapes() {
    // Mask decoder: 8 heads of token-to-image (Nq 7, Nk 4096, d 16) and image-to-token (Nq 4096,
    // Nk 7): fewer groups than threads takes the parallel-within-group path.
    var random = SeededRandom(seed: 42)
    for (nq, nk) in [(7, 4096), (4096, 7)] {
      let q = random.tensor([8, nq, 16])
      let k = random.tensor([8, nk, 16])
      let v = random.tensor([8, nk, 16])
      let scale = 1 / Float(16).squareRoot()
      assertClose(
        attention(q: q, k: k, v: v, bias: nil, scale: scale),
        Reference.attention(q: q, k: k, v: v, bias: nil, scale: Double(scale)),
        relative: attentionRelative, absolute: attentionAbsolute, "decoder attention Nq\(nq) Nk\(nk)")
    }
  }
}
