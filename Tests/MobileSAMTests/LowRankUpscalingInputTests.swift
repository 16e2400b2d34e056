import SAMTensor
import TorchCheckpoint
import XCTest

@testable import MobileSAM

/// The first upscaling convolution computed from the per-image part and the prompt's low-rank
/// updates (LowRankUpscalingInput.swift) against forming the final keys and convolving them.
final class LowRankUpscalingInputTests: XCTestCase {
  private let (channels, outputs, rank) = (256, 256, 56)

  private func randomNorm(_ random: inout TestRandom, _ name: String) throws -> LayerNorm {
    let weight = Tensor(
      shape: [channels], data: random.tensor([channels], scale: 0.5).data.map { 1 + $0 })
    let weights = CheckpointWeights(
      Checkpoint(tensors: ["\(name).weight": weight, "\(name).bias": random.tensor([channels], scale: 0.3)]),
      source: "random")
    let norm = try LayerNorm(weights, name, dim: channels, eps: 1e-5)
    try weights.finish()
    return norm
  }

  func testEqualsConvolvingTheFinalKeys() throws {
    var random = TestRandom(seed: 11)
    let tokens = 300
    let norm1 = try randomNorm(&random, "n1")
    let norm2 = try randomNorm(&random, "n2")
    let (c1, c2) = (random.tensor([channels], scale: 0.5), random.tensor([channels], scale: 0.5))
    let conv1 = random.tensor([channels, outputs], scale: 1 / Float(channels).squareRoot())
    let conv1Bias = random.tensor([outputs], scale: 0.2)
    // An image side with a per-row offset (as embeddings have), softmax-like weights.
    let offsets = random.tensor([tokens], scale: 2).data
    let image = random.tensor([tokens, channels], scale: 1)
    let keys = Tensor(
      shape: image.shape, data: image.data.enumerated().map { $0.element + offsets[$0.offset / channels] })
    let a1 = Tensor(
      shape: [tokens, rank], data: random.tensor([tokens, rank], scale: 0.5).data.map { $0 + 0.5 })
    let a2 = Tensor(
      shape: [tokens, rank], data: random.tensor([tokens, rank], scale: 0.5).data.map { $0 + 0.5 })
    let (p1, p2) = (
      random.tensor([rank, channels], scale: 0.3), random.tensor([rank, channels], scale: 0.3)
    )

    var x1 = matmul(a1, p1, adding: keys)
    addRowVector(&x1, c1)
    var x2 = matmul(a2, p2, adding: norm1(x1))
    addRowVector(&x2, c2)
    var want = matmul(norm2(x2), conv1)
    addRowVector(&want, conv1Bias)

    let lowRank = LowRankUpscalingInput(
      conv1: conv1, conv1Bias: conv1Bias, norm1: norm1, norm2: norm2, outBias1: c1, outBias2: c2)
    let stats1 = layerNormStatistics(x1, eps: norm1.eps)
    let stats2 = layerNormStatistics(x2, eps: norm2.eps)
    let got = lowRank(
      imageSide: lowRank.imageSide(keys),
      first: ImageToTokenUpdate(weights: a1, values: p1, mean: stats1.mean, inverse: stats1.inverse),
      second: ImageToTokenUpdate(weights: a2, values: p2, mean: stats2.mean, inverse: stats2.inverse))

    XCTAssertEqual(got.shape, want.shape)
    let scale = want.data.map(abs).max() ?? 0
    let worst = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? 0
    print("low-rank conv1: max |diff| \(worst), max |value| \(scale)")
    XCTAssertGreaterThan(scale, 0.5)
    XCTAssertLessThanOrEqual(worst, 2e-5 * max(scale, 1))
  }

  func testStatisticsAreLayerNorms() {
    var random = TestRandom(seed: 5)
    let x = random.tensor([9, 37], scale: 3)
    let stats = layerNormStatistics(x, eps: 1e-6)
    let ones = Tensor(shape: [37], data: [Float](repeating: 1, count: 37))
    let normalized = layerNorm(x, weight: ones, bias: Tensor(zeros: [37]), eps: 1e-6).data
    for (i, value) in x.data.enumerated() {
      let row = i / 37
      XCTAssertEqual((value - stats.mean[row]) * stats.inverse[row], normalized[i], accuracy: 1e-5)
    }
  }

  /// The model's own use: a box decoded from the image's kept side (the low-rank first stage) and
  /// from keys formed for the prompt (every product computed) give the same logits, and the same
  /// scores bit for bit (the transformer runs the same way in both).
  func testModelsLowRankPathEqualsTheDensePath() throws {
    let reference = try ReferenceModel.shared.get()
    let embedding = try reference.embedding("images/picture3.jpg")
    let (model, dim) = (reference.model, MaskDecoder.transformerDim)
    XCTAssertNotNil(embedding.promptFreeFirstLayer.upscalingSide)
    let imagePE = model.promptEncoder.densePositionalEncoding.reshaped([4096, dim])
    let sparse = model.promptEncoder.sparseEmbeddings(
      points: [], box: PromptBox(x0: 120, y0: 150, x1: 610, y1: 480))
    let batched = sparse.reshaped([1] + sparse.shape)
    let lowRank = model.maskDecoder(
      imageEmbedding: embedding.features, imagePE: imagePE, sparse: batched, dense: nil,
      maskIndices: [1, 2, 3],
      firstLayerImage: embedding.promptFreeFirstLayer)
    let dense = model.maskDecoder(
      imageEmbedding: embedding.features, imagePE: imagePE, sparse: batched,
      dense: model.promptEncoder.denseEmbedding(maskInput: nil).reshaped([1, 4096, dim]),
      maskIndices: [1, 2, 3])
    XCTAssertEqual(lowRank.iou.data, dense.iou.data)
    let scale = dense.logits.data.map(abs).max() ?? 0
    let worst = zip(lowRank.logits.data, dense.logits.data).map { abs($0 - $1) }.max() ?? .infinity
    print("low-rank vs dense logits: max |diff| \(worst), max |value| \(scale)")
    XCTAssertGreaterThan(scale, 0.1)
    XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1))
  }
}
