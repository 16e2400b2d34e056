import Foundation
import MobileSAM
import SAMImage
import SAMTensor
import TestSupport
import TorchCheckpoint
import XCTest

/// Recognizing a ViT checkpoint from its shapes, and refusing the shapes the engine cannot run.
final class ViTCheckpointTests: XCTestCase {
  private static let checkpoint = Result {
    try Checkpoint.load(contentsOf: Fixtures.url("vit/sam_vit_small_random.pth"))
  }

  private func expectLoadError(_ tensors: [String: Tensor], mentions words: [String]) throws {
    XCTAssertThrowsError(try MobileSAMModel(checkpoint: Checkpoint(tensors: tensors), source: "edited.pth")) {
      error in
      let message = error.localizedDescription
      for word in words { XCTAssertTrue(message.contains(word), "\"\(word)\" missing from: \(message)") }
    }
  }

  func testKindsAreReadFromTheFile() throws {
    XCTAssertEqual(
      try MobileSAMModel(checkpoint: Fixtures.url("reference/mobile_sam_random.pt")).kind, .vitT)
    XCTAssertEqual(
      try MobileSAMModel(checkpoint: Self.checkpoint.get(), source: "small.pth").kind, .vitCustom)
  }

  /// The official sizes are named by their registry names: a ViT-B-shaped state dict (built with
  /// zero tensors of the official shapes, 90M values) is `vit_b`.
  func testOfficialViTBShapesAreNamedVitB() throws {
    var tensors = try Self.checkpoint.get().tensors.filter { !$0.key.hasPrefix("image_encoder.") }
    let (dim, heads, mlp) = (768, 12, 3072)
    let prefix = "image_encoder"
    tensors["\(prefix).patch_embed.proj.weight"] = Tensor(zeros: [dim, 3, 16, 16])
    tensors["\(prefix).patch_embed.proj.bias"] = Tensor(zeros: [dim])
    tensors["\(prefix).pos_embed"] = Tensor(zeros: [1, 64, 64, dim])
    for block in 0..<12 {
      let p = "\(prefix).blocks.\(block)"
      let positions = [2, 5, 8, 11].contains(block) ? 127 : 27
      for (name, shape) in [
        ("norm1.weight", [dim]), ("norm1.bias", [dim]), ("norm2.weight", [dim]), ("norm2.bias", [dim]),
        ("attn.qkv.weight", [3 * dim, dim]), ("attn.qkv.bias", [3 * dim]), ("attn.proj.weight", [dim, dim]),
        ("attn.proj.bias", [dim]), ("attn.rel_pos_h", [positions, dim / heads]),
        ("attn.rel_pos_w", [positions, dim / heads]), ("mlp.lin1.weight", [mlp, dim]),
        ("mlp.lin1.bias", [mlp]),
        ("mlp.lin2.weight", [dim, mlp]), ("mlp.lin2.bias", [dim]),
      ] {
        tensors["\(p).\(name)"] = Tensor(zeros: shape)
      }
    }
    tensors["\(prefix).neck.0.weight"] = Tensor(zeros: [256, dim, 1, 1])
    tensors["\(prefix).neck.2.weight"] = Tensor(zeros: [256, 256, 3, 3])
    for norm in ["neck.1", "neck.3"] {
      tensors["\(prefix).\(norm).weight"] = Tensor(zeros: [256])
      tensors["\(prefix).\(norm).bias"] = Tensor(zeros: [256])
    }
    XCTAssertEqual(try MobileSAMModel(checkpoint: Checkpoint(tensors: tensors), source: "b.pth").kind, .vitB)
  }

  func testPatchSizeOtherThan16IsRefused() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.patch_embed.proj.weight"] = Tensor(zeros: [64, 3, 8, 8])
    try expectLoadError(tensors, mentions: ["edited.pth", "patch size is 8", "[64, 3, 8, 8]", "16x16"])
  }

  func testImageSizeOtherThan1024IsRefused() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.pos_embed"] = Tensor(zeros: [1, 32, 32, 64])
    try expectLoadError(tensors, mentions: ["edited.pth", "image size of 512", "1024x1024"])
  }

  func testRelativePositionTableOfNoKnownSizeIsRefused() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.blocks.2.attn.rel_pos_h"] = Tensor(zeros: [31, 16])
    try expectLoadError(
      tensors, mentions: ["edited.pth", "image_encoder.blocks.2.attn.rel_pos_h", "31 rows", "127", "27"])
  }

  func testMismatchedRelativePositionWidthIsNamed() throws {
    var tensors = try Self.checkpoint.get().tensors
    tensors["image_encoder.blocks.1.attn.rel_pos_w"] = Tensor(zeros: [127, 8])
    try expectLoadError(
      tensors, mentions: ["image_encoder.blocks.1.attn.rel_pos_w", "[127, 8]", "[127, 16]"])
  }

  /// A download cut short loses the zip's central directory at the end of the file. (The first
  /// 40 KB: the zip reader looks for the directory in the last 66,000 bytes one offset at a time,
  /// which takes seconds in a debug build.)
  func testTruncatedFileIsAClearError() throws {
    let source = Fixtures.url("vit/sam_vit_small_random.pth")
    let data = try Data(contentsOf: source)
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(UUID()).pth")
    defer { try? FileManager.default.removeItem(at: url) }
    try data.prefix(40_000).write(to: url)
    XCTAssertThrowsError(try MobileSAMModel(checkpoint: url)) { error in
      let message = error.localizedDescription
      XCTAssertTrue(message.contains(url.path) && message.contains("truncated"), message)
    }
  }

  /// A file whose tensors need more memory than allowed is refused from its declarations alone.
  func testFileClaimingMoreThanTheMemoryIsRefusedBeforeReading() {
    let url = Fixtures.url("vit/sam_vit_small_random.pth")
    XCTAssertThrowsError(try Checkpoint.load(contentsOf: url, memoryLimit: 1 << 20)) { error in
      let message = error.localizedDescription
      XCTAssertTrue(message.contains(url.path) && message.contains("more than the 1 MB"), message)
    }
  }

  /// A model whose weights are all borrowed (as the large float32 tensors of a full-size
  /// checkpoint are, from its file mapping; the fixture is float16, so here from a buffer of the
  /// test's own) embeds and predicts bit for bit as one whose weights are arrays.
  func testBorrowedWeightsGiveTheSameResults() throws {
    let checkpoint = try Self.checkpoint.get()
    let (owner, tensors) = WeightBuffer.borrowing(checkpoint.tensors)
    let borrowed = Checkpoint(tensors: tensors, scalarTypes: checkpoint.scalarTypes)
    XCTAssertTrue(borrowed.tensors.values.allSatisfy { $0.isBorrowed || $0.count == 0 })
    let image = try ImageDecoder.decode(contentsOf: Fixtures.url("images/picture3.jpg"))
    let prompts = [
      Prompt(
        points: [PromptPoint(x: 300, y: 200, label: 1)], box: PromptBox(x0: 50, y0: 60, x1: 500, y1: 400))
    ]
    var results: [(features: [Float], logits: [[Float]])] = []
    for source in [checkpoint, borrowed] {
      let model = try MobileSAMModel(checkpoint: source, source: "small.pth")
      let embedding = try model.embed(image)
      let prediction = try model.predict(embedding, prompts: prompts, multimask: true)[0]
      results.append((embedding.channelsFirstFeatures, prediction.lowResLogits))
    }
    XCTAssertEqual(results[0].features, results[1].features)
    XCTAssertEqual(results[0].logits, results[1].logits)
    XCTAssertEqual(Array(owner.values), owner.original, "borrowed weights are never written")
  }
}

/// Every tensor of a state dict copied into one buffer, and tensors borrowing their values from it
/// (they keep it alive).
private final class WeightBuffer {
  let values: UnsafeMutableBufferPointer<Float>
  let original: [Float]

  init(_ original: [Float]) {
    self.original = original
    values = .allocate(capacity: max(1, original.count))
    _ = values.initialize(from: original)
  }

  deinit { values.deallocate() }

  static func borrowing(_ source: [String: Tensor]) -> (buffer: WeightBuffer, tensors: [String: Tensor]) {
    let keys = source.keys.sorted()
    let buffer = WeightBuffer(keys.flatMap { source[$0]!.data })
    var tensors: [String: Tensor] = [:]
    var offset = 0
    for key in keys {
      let tensor = source[key]!
      let slice = UnsafeBufferPointer(rebasing: buffer.values[offset..<offset + tensor.count])
      tensors[key] = Tensor(shape: tensor.shape, borrowing: BorrowedFloats(slice, owner: buffer))
      offset += tensor.count
    }
    return (buffer, tensors)
  }
}
