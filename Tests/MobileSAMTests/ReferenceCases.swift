import Foundation
import MobileSAM
import SAMImage
import TestSupport
import TorchCheckpoint
import XCTest

/// Tests/Fixtures/reference/cases.json, written by Scripts/make_fixtures.py from the PyTorch
/// reference with seeded random weights.
struct ReferenceCases: Decodable {
  struct Embedding: Decodable {
    let image: String
    let file: String
  }
  struct RLE: Decodable {
    let size: [Int]
    let counts: String
  }
  struct Case: Decodable {
    let name: String
    let image: String
    let width: Int
    let height: Int
    let points: [[Double]]
    let box: [Double]?
    let mask_input: String?
    let multimask: Bool
    let scores: [Float]
    let logits: String
    let masks: [RLE]
    let areas: [Int]
    /// `calculate_stability_score` of the reference on the logits at original size, offset 1.
    let stability: [Float]

    var prompt: Prompt {
      get throws {
        Prompt(
          points: points.map { PromptPoint(x: Float($0[0]), y: Float($0[1]), label: Int($0[2])) },
          box: box.map { PromptBox(x0: Float($0[0]), y0: Float($0[1]), x1: Float($0[2]), y1: Float($0[3])) },
          maskInput: try mask_input.map { try readFloat32Npy(Fixtures.url($0)).values })
      }
    }
  }
  let checkpoint: String
  let embeddings: [Embedding]
  let resized: [Embedding]
  let cases: [Case]

  static func load() throws -> ReferenceCases {
    let url = Fixtures.url("reference/cases.json")
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw MissingFixture(path: url.path)
    }
    return try JSONDecoder().decode(ReferenceCases.self, from: Data(contentsOf: url))
  }
}

/// The model, the fixtures and decoded photos, loaded once for all parity tests.
final class ReferenceModel: @unchecked Sendable {
  static let shared = Result { try ReferenceModel() }

  let cases: ReferenceCases
  let model: MobileSAMModel
  private var images: [String: RGBImage] = [:]
  private var embeddings: [String: ImageEmbedding] = [:]
  private let lock = NSLock()

  private init() throws {
    cases = try ReferenceCases.load()
    model = try MobileSAMModel(checkpoint: Fixtures.url(cases.checkpoint))
  }

  func image(_ path: String) throws -> RGBImage {
    lock.lock()
    defer { lock.unlock() }
    if let image = images[path] { return image }
    let image = try ImageDecoder.decode(contentsOf: Fixtures.url(path))
    images[path] = image
    return image
  }

  func embedding(_ path: String) throws -> ImageEmbedding {
    let image = try image(path)
    lock.lock()
    defer { lock.unlock() }
    if let embedding = embeddings[path] { return embedding }
    let embedding = try model.embed(image)
    embeddings[path] = embedding
    return embedding
  }
}

/// Intersection over union of two binary masks of the same size.
func maskIoU(_ a: BinaryMask, _ b: BinaryMask) -> Double {
  var intersection = 0
  var union = 0
  for i in 0..<a.pixels.count {
    let x = a.pixels[i] != 0
    let y = b.pixels[i] != 0
    if x && y { intersection += 1 }
    if x || y { union += 1 }
  }
  return union == 0 ? 1 : Double(intersection) / Double(union)
}
