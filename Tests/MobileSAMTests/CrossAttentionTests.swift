import SAMTensor
import TorchCheckpoint
import XCTest

@testable import MobileSAM

/// The factored cross-attentions (CrossAttention.swift) against the straightforward
/// `DecoderAttention.callAsFunction` (project both sides, attend per head, out_proj), with random
/// weights and inputs of the decoder's shapes.
final class CrossAttentionTests: XCTestCase {
  private let (dim, heads, tokens) = (256, 8, 7)

  /// A `cross_attn_*` module (256 -> 128, 8 heads) with weights of a trained layer's scale.
  private func randomAttention(_ random: inout TestRandom) throws -> DecoderAttention {
    let internalDim = dim / 2
    var tensors: [String: Tensor] = [:]
    for name in ["q_proj", "k_proj", "v_proj"] {
      tensors["a.\(name).weight"] = random.tensor([internalDim, dim], scale: 1 / Float(dim).squareRoot())
      tensors["a.\(name).bias"] = random.tensor([internalDim], scale: 0.5)
    }
    tensors["a.out_proj.weight"] = random.tensor(
      [dim, internalDim], scale: 1 / Float(internalDim).squareRoot())
    tensors["a.out_proj.bias"] = random.tensor([dim], scale: 0.5)
    let weights = CheckpointWeights(Checkpoint(tensors: tensors), source: "random")
    let attention = try DecoderAttention(weights, "a", embeddingDim: dim, numHeads: heads, downsampleRate: 2)
    try weights.finish()
    return attention
  }

  /// 2e-5 relative to the largest output: float32 sums over 256 to 4096 terms taken in another
  /// order (the softmax sees the scores' rounding amplified by their spread of a few units).
  private func assertClose(_ got: Tensor, _ want: Tensor, _ label: String) {
    XCTAssertEqual(got.shape, want.shape, label)
    let scale = want.data.map(abs).max() ?? 0
    let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
    print("\(label): max |diff| \(worst), max |value| \(scale)")
    XCTAssertLessThanOrEqual(worst, 2e-5 * max(scale, 1), label)
  }

  func testTokensToImageEqualsProjectingTheImage() throws {
    var random = TestRandom(seed: 7)
    let attention = try randomAttention(&random)
    // 4096 image tokens as the decoder has, and an odd count.
    for imageTokens in [4096, 301] {
      let queries = random.tensor([tokens, dim], scale: 2)
      let keys = random.tensor([imageTokens, dim], scale: 2)
      let values = random.tensor([imageTokens, dim], scale: 2)
      let want = attention(
        q: queries.reshaped([1, tokens, dim]), k: keys.reshaped([1, imageTokens, dim]),
        v: values.reshaped([1, imageTokens, dim]))
      let got = attention.attendTokensToImage(queries: queries, imageKeys: keys, imageValues: values)
      assertClose(got, want.reshaped([tokens, dim]), "tokens to \(imageTokens) image tokens")
    }
  }

  /// A LayerNorm over 256 channels with random weight and bias.
  private func randomNorm(_ random: inout TestRandom) throws -> LayerNorm {
    let weights = CheckpointWeights(
      Checkpoint(tensors: [
        "n.weight": random.tensor([dim], scale: 1.5), "n.bias": random.tensor([dim], scale: 0.5),
      ]), source: "random")
    let norm = try LayerNorm(weights, "n", dim: dim, eps: 1e-5)
    try weights.finish()
    return norm
  }

  func testImageToTokensEqualsProjectingTheImage() throws {
    var random = TestRandom(seed: 8)
    let attention = try randomAttention(&random)
    let norm = try randomNorm(&random)
    for imageTokens in [4096, 301] {
      let image = random.tensor([imageTokens, dim], scale: 2)
      let keys = random.tensor([tokens, dim], scale: 2)
      let values = random.tensor([tokens, dim], scale: 2)
      let residual = random.tensor([imageTokens, dim], scale: 2)
      let positional = random.tensor([imageTokens, dim], scale: 1)
      var attended = attention(
        q: image.reshaped([1, imageTokens, dim]), k: keys.reshaped([1, tokens, dim]),
        v: values.reshaped([1, tokens, dim])
      ).reshaped([imageTokens, dim])
      addInPlace(&attended, residual)
      let want = norm(attended)
      let wantWithPositional = add(want, positional)
      let (got, gotWithPositional, _) = attention.attendImageToTokens(
        image: image, keys: keys, values: values, residual: residual, norm: norm, positional: positional)
      assertClose(got, want, "\(imageTokens) image tokens to tokens")
      assertClose(
        gotWithPositional, wantWithPositional, "\(imageTokens) image tokens to tokens, + positional")
      let projected = attention.qProj(image)
      let (gotProjected, gotProjectedWithPositional, _) = attention.attendImageToTokens(
        projectedImage: TransposedRows(projected), keys: keys, values: values, residual: residual, norm: norm,
        positional: positional)
      assertClose(gotProjected, want, "\(imageTokens) projected image tokens to tokens")
      assertClose(
        gotProjectedWithPositional, wantWithPositional,
        "\(imageTokens) projected image tokens to tokens, + positional")
    }
  }
}

/// Deterministic pseudo-random numbers (SplitMix64), so failures reproduce.
struct TestRandom {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [-scale, scale).
  mutating func tensor(_ shape: [Int], scale: Float) -> Tensor {
    let data = (0..<shape.reduce(1, *)).map { _ in scale * (2 * Float(next() >> 40) / Float(1 << 24) - 1) }
    return Tensor(shape: shape, data: data)
  }
}
