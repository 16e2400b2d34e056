import Foundation
import MobileSAM
import SAMImage
import SAMTensor
import TestSupport
import XCTest

/// The model against the PyTorch reference's outputs (Tests/Fixtures/reference). When a test fails
/// after a deliberate change to the fixtures, regenerate them with Scripts/make_fixtures.py.
final class ParityTests: XCTestCase {
  private func reference() throws -> ReferenceModel { try ReferenceModel.shared.get() }

  /// 1e-3: float32 GEMMs summed in another order over 12 blocks, BatchNorm folded into convs.
  func testImageEmbeddingMatchesReference() throws {
    let reference = try reference()
    XCTAssertFalse(reference.cases.embeddings.isEmpty)
    for expected in reference.cases.embeddings {
      let want = try readFloat32Npy(Fixtures.url(expected.file))
      XCTAssertEqual(want.shape, [1, 256, 64, 64])
      let got = try reference.embedding(expected.image).channelsFirstFeatures
      let diff = maxAbsDifference(got, want.values)
      print("embedding \(expected.image): max |diff| \(diff)")
      XCTAssertLessThanOrEqual(diff, 1e-3, "embedding of \(expected.image)")
    }
  }

  func testResizedImageEqualsPillow() throws {
    let reference = try reference()
    for expected in reference.cases.resized {
      let want = try readUInt8Npy(Fixtures.url(expected.file))
      let image = try reference.image(expected.image)
      let size = longestSideSize(width: image.width, height: image.height, target: 1024)
      XCTAssertEqual(want.shape, [size.height, size.width, 3])
      let got = resizeBilinearLikePillow(image, width: size.width, height: size.height)
      XCTAssertEqual(got.pixels, want.values, "1024-side resize of \(expected.image) differs from Pillow's")
    }
  }

  /// Scores within 1e-3, low-res logits within 1e-2 (errors of the embedding amplified by the
  /// decoder), masks at original size with IoU >= 0.995 (pixels whose logit is within float noise
  /// of 0 may flip).
  func testPredictionsMatchReference() throws {
    let reference = try reference()
    XCTAssertGreaterThan(reference.cases.cases.count, 0)
    for testCase in reference.cases.cases {
      let embedding = try reference.embedding(testCase.image)
      let prediction = try reference.model.predict(
        embedding, prompts: [testCase.prompt], multimask: testCase.multimask)[0]
      XCTAssertEqual(prediction.scores.count, testCase.scores.count, testCase.name)
      for (got, want) in zip(prediction.scores, testCase.scores) {
        XCTAssertEqual(got, want, accuracy: 1e-3, "\(testCase.name): score")
      }
      // 1e-3: a few pixels whose logit is within float noise of +-1 may count differently.
      XCTAssertEqual(prediction.stabilityScores.count, testCase.stability.count, testCase.name)
      for (got, want) in zip(prediction.stabilityScores, testCase.stability) {
        XCTAssertEqual(got ?? -1, want, accuracy: 1e-3, "\(testCase.name): stability score")
      }
      let logits = try readFloat32Npy(Fixtures.url(testCase.logits))
      let logitDiff = maxAbsDifference(prediction.lowResLogits.flatMap { $0 }, logits.values)
      XCTAssertLessThanOrEqual(logitDiff, 1e-2, "\(testCase.name): low-res logits")
      var worstIoU = 1.0
      for (mask, rle) in zip(prediction.masks, testCase.masks) {
        XCTAssertEqual([mask.height, mask.width], rle.size, testCase.name)
        let want = BinaryMask(
          width: rle.size[1], height: rle.size[0],
          pixels: try decodeCOCORLE(rle.counts, width: rle.size[1], height: rle.size[0]))
        worstIoU = min(worstIoU, maskIoU(mask, want))
      }
      print("\(testCase.name): logits max |diff| \(logitDiff), worst mask IoU \(worstIoU)")
      XCTAssertGreaterThanOrEqual(worstIoU, 0.995, "\(testCase.name): mask IoU")
    }
  }

  /// A prompt's outputs do not depend on the prompts decoded beside it (issue 6, defect 10: a box
  /// scored 0.79615456 beside another box and 0.79615438 alone). Exact equality, not a tolerance:
  /// reproducible results mean the same bits whatever the batch-mates and their order.
  func testBatchMatesDoNotChangeAPromptsOutputs() throws {
    let reference = try reference()
    let image = "images/picture3.jpg"
    let embedding = try reference.embedding(image)
    let cases = reference.cases.cases.filter { $0.image == image }
    XCTAssertFalse(cases.isEmpty, "no reference case on \(image)")
    // The reference prompts, and boxes of every size so that batches of one shape fill up.
    var prompts = try cases.map { try $0.prompt }
    for i in 0..<10 {
      let (x, y) = (Float(100 + 150 * i), Float(80 + 90 * i))
      prompts.append(Prompt(box: PromptBox(x0: x, y0: y, x1: x + 60 + Float(70 * i), y1: y + 500)))
    }
    for multimask in [false, true] {
      let together = try reference.model.predict(embedding, prompts: prompts, multimask: multimask)
      let reversed = Array(
        try reference.model.predict(embedding, prompts: prompts.reversed(), multimask: multimask).reversed())
      XCTAssertEqual(together.count, prompts.count)
      for (index, prompt) in prompts.enumerated() {
        let alone = try reference.model.predict(embedding, prompts: [prompt], multimask: multimask)[0]
        for (name, other) in [("with all", together[index]), ("reversed", reversed[index])] {
          let what = "prompt \(index + 1) (multimask \(multimask)) \(name)"
          XCTAssertEqual(alone.scores, other.scores, "\(what): scores")
          XCTAssertEqual(alone.stabilityScores, other.stabilityScores, "\(what): stability scores")
          XCTAssertTrue(alone.lowResLogits == other.lowResLogits, "\(what): low-res logits differ")
          XCTAssertTrue(alone.masks.map(\.pixels) == other.masks.map(\.pixels), "\(what): masks differ")
        }
      }
    }
  }

  /// Several prompts are decoded side by side, one thread each, and a prompt alone across all the
  /// threads: the same bits, whatever the thread count (the split of each GEMM and loop is the
  /// same; only who runs it differs). Checked at 2 and 3 threads, whatever this machine has.
  func testPromptsSideBySideEqualAloneForAnyThreadCount() throws {
    let reference = try reference()
    let image = "images/picture3.jpg"
    let embedding = try reference.embedding(image)
    var prompts = try reference.cases.cases.filter { $0.image == image }.map { try $0.prompt }
    prompts.append(Prompt(points: [PromptPoint(x: 400, y: 300, label: 1)]))
    prompts.append(Prompt(box: PromptBox(x0: 10, y0: 20, x1: 700, y1: 500)))
    let saved = ComputeThreads.count
    defer { ComputeThreads.set(saved) }
    for threads in [2, 3] {
      ComputeThreads.set(threads)
      for multimask in [false, true] {
        let together = try reference.model.predict(embedding, prompts: prompts, multimask: multimask)
        for (p, prompt) in prompts.enumerated() {
          let alone = try reference.model.predict(embedding, prompts: [prompt], multimask: multimask)[0]
          let what = "prompt \(p + 1) (multimask \(multimask)), \(threads) threads"
          XCTAssertEqual(alone.scores, together[p].scores, "\(what): scores")
          XCTAssertTrue(alone.lowResLogits == together[p].lowResLogits, "\(what): low-res logits differ")
          XCTAssertTrue(alone.masks.map(\.pixels) == together[p].masks.map(\.pixels), "\(what): masks differ")
        }
      }
    }
  }

  /// The masks made one at a time from the low-resolution logits (as a job makes them, to bound
  /// its memory) are exactly `predict`'s: same computation, plane by plane.
  func testMasksMadeOneAtATimeEqualPredict() throws {
    let reference = try reference()
    let first = reference.cases.cases[0]
    let embedding = try reference.embedding(first.image)
    let prompts = try reference.cases.cases.filter { $0.image == first.image }.prefix(3).map { try $0.prompt }
    let predictions = try reference.model.predict(embedding, prompts: prompts, multimask: true)
    let decoded = try reference.model.predictLowRes(embedding, prompts: prompts, multimask: true)
    XCTAssertEqual(decoded.count, predictions.count)
    for (prediction, lowRes) in zip(predictions, decoded) {
      XCTAssertEqual(lowRes.scores, prediction.scores)
      for i in lowRes.scores.indices {
        let made = reference.model.mask(lowRes, index: i, embedding: embedding)
        XCTAssertEqual(made.mask, prediction.masks[i])
        XCTAssertEqual(made.stabilityScore, prediction.stabilityScores[i])
      }
    }
  }

  /// A job asks only for the low-res logits its masks read (`LowResCoverage.masksOnly`): the
  /// same scores and the same masks bit for bit, the computed logits equal to the full ones and the
  /// rest NaN, for a landscape photo, a portrait one (the same transposed) and a near-square one,
  /// with boxes, points and a mask input (whose first stage the upscaling forms otherwise).
  func testMasksOnlyCoverageGivesTheSameMasks() throws {
    let reference = try reference()
    let landscape = try reference.image("images/picture3.jpg")  // 2241 x 1500
    var transposed = [UInt8](repeating: 0, count: landscape.pixels.count)
    for y in 0..<landscape.height {
      for x in 0..<landscape.width {
        for c in 0..<3 {
          transposed[(x * landscape.height + y) * 3 + c] = landscape.pixels[(y * landscape.width + x) * 3 + c]
        }
      }
    }
    let portrait = RGBImage(width: landscape.height, height: landscape.width, pixels: transposed)
    let cases: [(String, ImageEmbedding, Bool)] = [
      ("landscape", try reference.embedding("images/picture3.jpg"), true),
      ("portrait", try reference.model.embed(portrait), true),
      ("near-square", try reference.embedding("images/picture1.jpg"), false),
    ]
    for (name, embedding, cropped) in cases {
      let (w, h) = (Float(embedding.originalWidth), Float(embedding.originalHeight))
      var prompts = [
        Prompt(box: PromptBox(x0: w * 0.2, y0: h * 0.3, x1: w * 0.7, y1: h * 0.9)),
        Prompt(points: [PromptPoint(x: w * 0.5, y: h * 0.4, label: 1), PromptPoint(x: 3, y: 4, label: 0)]),
      ]
      let earlier = try reference.model.predictLowRes(embedding, prompts: [prompts[0]], multimask: false)
      prompts.append(
        Prompt(points: [PromptPoint(x: w * 0.4, y: h * 0.6, label: 1)], maskInput: earlier[0].lowResLogits[0])
      )
      for multimask in [false, true] {
        let full = try reference.model.predictLowRes(embedding, prompts: prompts, multimask: multimask)
        let part = try reference.model.predictLowRes(
          embedding, prompts: prompts, multimask: multimask, coverage: .masksOnly)
        for (p, (all, some)) in zip(full, part).enumerated() {
          let what = "\(name), prompt \(p + 1), multimask \(multimask)"
          XCTAssertEqual(some.scores, all.scores, "\(what): scores")
          for i in all.scores.indices {
            let pairs = zip(some.lowResLogits[i], all.lowResLogits[i])
            let skipped = pairs.filter { $0.0.isNaN }.count
            XCTAssertEqual(
              pairs.filter { !$0.0.isNaN && $0.0.bitPattern != $0.1.bitPattern }.count, 0, "\(what): logits")
            XCTAssertEqual(skipped > 0, cropped, "\(what): \(skipped) logits not computed")
            let (a, b) = (
              reference.model.mask(all, index: i, embedding: embedding),
              reference.model.mask(some, index: i, embedding: embedding)
            )
            XCTAssertTrue(a.mask == b.mask, "\(what), mask \(i): masks differ")
            XCTAssertEqual(a.stabilityScore, b.stabilityScore, "\(what), mask \(i): stability")
          }
        }
      }
    }
  }

  func testInvalidPromptsAreRejectedBeforeDecoding() throws {
    let reference = try reference()
    let embedding = try reference.embedding(reference.cases.cases[0].image)
    let invalid: [(Prompt, String)] = [
      (Prompt(), "no point and no box"),
      (Prompt(points: [PromptPoint(x: .nan, y: 3, label: 1)]), "non-finite"),
      (Prompt(points: [PromptPoint(x: 1, y: .infinity, label: 1)]), "non-finite"),
      (Prompt(points: [PromptPoint(x: 1, y: 3, label: 2)]), "label 2"),
      (Prompt(box: PromptBox(x0: 10, y0: 10, x1: 5, y1: 20)), "x1 < x0"),
      (Prompt(box: PromptBox(x0: 10, y0: 10, x1: 20, y1: 5)), "y1 < y0"),
      (Prompt(box: PromptBox(x0: .nan, y0: 10, x1: 20, y1: 25)), "non-finite"),
      (Prompt(box: PromptBox(x0: 1, y0: 1, x1: 20, y1: 25), maskInput: [0, 1]), "256x256"),
    ]
    for (prompt, message) in invalid {
      XCTAssertThrowsError(
        try reference.model.predict(
          embedding, prompts: [Prompt(points: [PromptPoint(x: 1, y: 1, label: 1)]), prompt], multimask: false)
      ) { error in
        let text = error.localizedDescription
        XCTAssertTrue(text.contains("prompt 2") && text.contains(message), "unclear message: \(text)")
      }
    }
  }
}

func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
  guard a.count == b.count else { return .infinity }
  var worst: Float = 0
  for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
  return worst
}
