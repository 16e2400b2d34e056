import SAMTensor
import XCTest

@testable import MobileSAM

/// The transformer's second layer from the first layer's low-rank update (LowRankSecondLayer.swift)
/// against the same layer on the first layer's keys and keys + PE, formed and projected, with the
/// fixture model's weights and a real image side.
final class LowRankSecondLayerTests: XCTestCase {
  func testSecondLayerEqualsProjectingTheFirstLayersKeys() throws {
    let reference = try ReferenceModel.shared.get()
    let model = reference.model
    let embedding = try reference.embedding("images/picture3.jpg")
    let first = embedding.promptFreeFirstLayer
    let image = try XCTUnwrap(first.secondLayerSide, "the kept image side has no second-layer part")
    let decoder = model.maskDecoder
    let transformer = decoder.transformer
    let (dim, lowRank) = (MaskDecoder.transformerDim, decoder.lowRankSecondLayer)
    let imagePE = model.promptEncoder.densePositionalEncoding.reshaped([4096, dim])
    let box = PromptBox(x0: 120, y0: 150, x1: 610, y1: 480)
    let prompts = [
      Prompt(box: box), Prompt(points: [PromptPoint(x: 300, y: 260, label: 1)]),
      Prompt(
        points: [PromptPoint(x: 300, y: 260, label: 1), PromptPoint(x: 500, y: 400, label: 0)], box: box),
    ]
    for (index, prompt) in prompts.enumerated() {
      let frame = Transforms.toInputFrame(prompt, embedding: embedding)
      let sparse = model.promptEncoder.sparseEmbeddings(points: frame.points, box: frame.box)
      let points = Tensor(
        shape: [5 + sparse.shape[0], dim],
        data: decoder.iouToken.data + decoder.maskTokens.data + sparse.data)
      let (queries, keys, keysWithPE, update) = transformer.layers[0](
        queries: points, image: first, queryPE: points, keyPE: imagePE)
      // The final attention's query heads for the IoU token and the first mask token.
      let next = { (q: Tensor) in
        transformer.finalAttnTokenToImage.tokenQueryHeads(
          add(
            Tensor(shape: [2, dim], data: Array(q.data[0..<(2 * dim)])),
            Tensor(shape: [2, dim], data: Array(points.data[0..<(2 * dim)]))))
      }
      let want = transformer.layers[1](
        queries: queries, keys: keys, keysWithPE: keysWithPE, queryPE: points, keyPE: imagePE,
        scoringNext: next)
      let got = transformer.layers[1](
        queries: queries, keys: keys, lowRank: lowRank, image: image, prompt: lowRank.prompt(update),
        queryPE: points, keyPE: imagePE, scoringNext: next)
      for (label, g, w) in [
        ("queries", got.0, want.0), ("keys", got.1, want.1), ("final scores", got.2, want.2),
        ("update weights", got.3.weights, want.3.weights), ("update values", got.3.values, want.3.values),
      ] {
        XCTAssertEqual(g.shape, w.shape, "prompt \(index) \(label)")
        let scale = w.data.map(abs).max() ?? 0
        let worst = zip(g.data, w.data).map { abs($0 - $1) }.max() ?? .infinity
        print("prompt \(index) \(label): max |diff| \(worst), max |value| \(scale)")
        XCTAssertGreaterThan(scale, 0.01, "prompt \(index) \(label)")
        XCTAssertLessThanOrEqual(worst, 2e-5 * max(scale, 1), "prompt \(index) \(label)")
      }
      // The norm statistics of the new keys.
      let worstMean = zip(got.3.mean, want.3.mean).map { abs($0 - $1) }.max() ?? .infinity
      let worstInverse = zip(got.3.inverse, want.3.inverse).map { abs($0 / $1 - 1) }.max() ?? .infinity
      XCTAssertLessThanOrEqual(worstMean, 2e-5, "prompt \(index) means")
      XCTAssertLessThanOrEqual(worstInverse, 2e-5, "prompt \(index) inverse deviations")
    }
  }
}
