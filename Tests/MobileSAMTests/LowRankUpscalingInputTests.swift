import TorchCheckpoint
import XCTest

@testable import MobileSAM
@testable import SAMTensor

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
      second: ImageToTokenUpdate(weights: a2, values: p2, mean: stats2.mean, inverse: stats2.inverse)
    ).evaluated()

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

  /// The model's own use: prompts decoded as `predict` decodes them (the image's kept side, the
  /// low-rank first stage fused into the upscaling's row steps, the second layer from the first's
  /// low-rank update) and with keys formed for the prompt (every product computed) give the same
  /// logits within 1e-4 of their scale and the same scores within 1e-5. Measured: logits max
  /// |diff| 6.6e-6 at scale 2.6-4.8, scores 6e-7.
  func testModelsLowRankPathEqualsTheDensePath() throws {
    let reference = try ReferenceModel.shared.get()
    let embedding = try reference.embedding("images/picture3.jpg")
    let model = reference.model
    XCTAssertNotNil(embedding.promptFreeFirstLayer.upscalingSide)
    let box = PromptBox(x0: 120, y0: 150, x1: 610, y1: 480)
    let cases: [(String, Prompt)] = [
      ("box", Prompt(box: box)),
      ("point", Prompt(points: [PromptPoint(x: 300, y: 260, label: 1)])),
      (
        "points and box",
        Prompt(
          points: [PromptPoint(x: 300, y: 260, label: 1), PromptPoint(x: 500, y: 400, label: 0)], box: box)
      ),
    ]
    for (name, prompt) in cases {
      for multimask in [false, true] {
        let lowRank = try model.predictLowRes(embedding, prompts: [prompt], multimask: multimask)[0]
        let dense = densePath(model, embedding, prompt, multimask: multimask)
        XCTAssertEqual(lowRank.scores.count, dense.iou.count)
        for (got, want) in zip(lowRank.scores, dense.iou.data) {
          XCTAssertEqual(got, want, accuracy: 1e-5, "\(name) multimask \(multimask): scores")
        }
        let got = lowRank.lowResLogits.flatMap { $0 }
        let scale = dense.logits.data.map(abs).max() ?? 0
        let worst = zip(got, dense.logits.data).map { abs($0 - $1) }.max() ?? .infinity
        print(
          "\(name) multimask \(multimask): low-rank vs dense logits max |diff| \(worst), max |value| \(scale)"
        )
        XCTAssertEqual(got.count, dense.logits.count)
        XCTAssertGreaterThan(scale, 0.1)
        XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1), "\(name) multimask \(multimask)")
      }
    }
    // The single-point decoder (`decodePoints`) takes the same path.
    let decoded = model.decodePoints(embedding, points: [(x: 300, y: 260)])
    let dense = densePath(
      model, embedding, Prompt(points: [PromptPoint(x: 300, y: 260, label: 1)]), multimask: true)
    let worst = zip(decoded.lowResLogits.data, dense.logits.data).map { abs($0 - $1) }.max() ?? .infinity
    print("decodePoints: low-rank vs dense logits max |diff| \(worst)")
    XCTAssertLessThanOrEqual(worst, 1e-4 * max(dense.logits.data.map(abs).max() ?? 0, 1))
  }

  /// A prompt with a mask input has its own dense embedding, so it takes the dense path: the same
  /// bits as forming its keys and convolving them.
  func testMaskInputPromptTakesTheDensePath() throws {
    let reference = try ReferenceModel.shared.get()
    let maskCase = try XCTUnwrap(reference.cases.cases.first { $0.mask_input != nil }, "no mask-input case")
    let embedding = try reference.embedding(maskCase.image)
    let prompt = try maskCase.prompt
    let predicted = try reference.model.predictLowRes(embedding, prompts: [prompt], multimask: false)[0]
    let dense = densePath(reference.model, embedding, prompt, multimask: false)
    XCTAssertEqual(predicted.scores, dense.iou.data)
    XCTAssertTrue(predicted.lowResLogits.flatMap { $0 } == dense.logits.data, "mask-input logits differ")
  }

  /// One prompt through the decoder with its dense embedding and first layer computed for it (no
  /// kept image side, so no low-rank first stage).
  private func densePath(
    _ model: MobileSAMModel, _ embedding: ImageEmbedding, _ prompt: Prompt, multimask: Bool
  )
    -> (logits: Tensor, iou: Tensor)
  {
    let dim = MaskDecoder.transformerDim
    let inputFrame = Transforms.toInputFrame(prompt, embedding: embedding)
    let sparse = model.promptEncoder.sparseEmbeddings(points: inputFrame.points, box: inputFrame.box)
    return model.maskDecoder(
      imageEmbedding: embedding.features,
      imagePE: model.promptEncoder.densePositionalEncoding.reshaped([4096, dim]),
      sparse: sparse.reshaped([1] + sparse.shape),
      dense: model.promptEncoder.denseEmbedding(maskInput: prompt.maskInput).reshaped([1, 4096, dim]),
      maskIndices: multimask ? [1, 2, 3] : [0])
  }
}
