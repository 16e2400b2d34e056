// Port of mobile_sam/modeling/sam.py (Sam) and mobile_sam/predictor.py (SamPredictor), for `vit_t`
// and, with segment_anything's ViT image encoder, for the original SAM `vit_b`, `vit_l`, `vit_h`.
import Foundation
import SAMImage
import SAMTensor
import TorchCheckpoint

/// Errors a user can cause through the model API.
public enum MobileSAMError: Error, LocalizedError, Equatable {
  case invalidPrompt(index: Int, reason: String)
  case checkpoint(file: String, reason: String)
  /// The longest side scaled to 1024 leaves the other side at 0 pixels (the reference fails too).
  case imageTooThin(width: Int, height: Int)

  public var errorDescription: String? {
    switch self {
    case .invalidPrompt(let index, let reason): return "prompt \(index + 1): \(reason)"
    case .imageTooThin(let width, let height):
      return "a \(width)x\(height) image cannot be encoded: resized to 1024 on its longest side, its"
        + " other side is 0 pixels"
    case .checkpoint(let file, let reason):
      // The reader's messages already name the file; say it once.
      let cause = reason.contains(file) ? reason : "\(file): \(reason)"
      return "not a usable SAM checkpoint (vit_t, vit_b, vit_l or vit_h): \(cause)"
    }
  }
}

/// Which model a checkpoint holds, read from its keys and shapes: MobileSAM's TinyViT (`vit_t`),
/// the original SAM's ViT-B/L/H, or a ViT encoder of another size (`vit_custom`, e.g. the small
/// test fixtures). `rawValue` is the name SAM's model registry uses.
public enum SAMModelKind: String, Sendable, CaseIterable {
  case vitT = "vit_t"
  case vitB = "vit_b"
  case vitL = "vit_l"
  case vitH = "vit_h"
  case vitCustom = "vit_custom"
}

/// The image encoder a checkpoint holds: MobileSAM's TinyViT or SAM's ViT.
enum ImageEncoder: Sendable {
  case tinyViT(TinyViT)
  case vit(ImageEncoderViT)

  /// Picks the encoder by its patch embedding's keys: TinyViT's is two convolution + BatchNorm
  /// pairs (`patch_embed.seq`), the ViT's one 16x16 convolution (`patch_embed.proj`).
  init(_ weights: CheckpointWeights, _ prefix: String) throws {
    if weights.contains("\(prefix).patch_embed.proj.weight") {
      self = .vit(try ImageEncoderViT(weights, prefix, config: try ViTConfig(weights, prefix)))
    } else {
      self = .tinyViT(try TinyViT(weights, prefix))
    }
  }

  var kind: SAMModelKind {
    switch self {
    case .tinyViT: return .vitT
    case .vit(let encoder):
      switch encoder.config {
      case .vitB: return .vitB
      case .vitL: return .vitL
      case .vitH: return .vitH
      default: return .vitCustom
      }
    }
  }

  /// x [1024, 1024, 3] -> [64, 64, 256]
  func callAsFunction(_ x: Tensor) -> Tensor {
    switch self {
    case .tinyViT(let encoder): return encoder(x)
    case .vit(let encoder): return encoder(x)
    }
  }
}

/// The per-image result of the image encoder. Opaque to callers: later versions may cache more in
/// it without changing them.
public struct ImageEmbedding: Sendable {
  public let originalWidth: Int
  public let originalHeight: Int
  /// Size of the image after its longest side was resized to 1024 (before padding).
  public let inputWidth: Int
  public let inputHeight: Int
  /// The encoder's output: [64 * 64, 256], channels-last.
  let features: Tensor
  /// The mask decoder's first-layer work on the image side for prompts without a mask input (keys =
  /// features + `no_mask_embed`): the same for all of them, so done once here.
  let promptFreeFirstLayer: TwoWayAttentionBlock.ImageSide

  /// The embedding as the reference lays it out, (1, 256, 64, 64) flattened.
  public var channelsFirstFeatures: [Float] { permute(features, [1, 0]).data }
}

/// One prompt's decoder output before its masks are made at original size.
public struct LowResPrediction: Sendable {
  /// Predicted IoU per mask, in the reference's order (as `Prediction.scores`).
  public var scores: [Float]
  /// 256 * 256 logits per mask, row-major.
  public var lowResLogits: [[Float]]
}

/// Which of a mask's 256 x 256 low-res logits `MobileSAMModel.predictLowRes` computes.
public enum LowResCoverage: Sendable, Equatable {
  /// All of them.
  case full
  /// Those that the mask at original size reads (`MobileSAMModel.mask(_:index:embedding:)`): the
  /// padding below or right of a photo that is not square is cropped away, and its logits are not
  /// computed (NaN), nor the upscaling work behind them (two fifths of it for a 16:9 photo). The
  /// masks are the same bits.
  case masksOnly
}

/// MobileSAM (`vit_t`) or the original SAM (`vit_b`, `vit_l`, `vit_h`) loaded from a checkpoint:
/// `embed` once per image, then `predict` any number of prompts against the embedding. Everything
/// but the image encoder is the same module in both.
public final class MobileSAMModel: Sendable {
  let imageEncoder: ImageEncoder
  /// The model the checkpoint holds, read from its keys and shapes.
  public var kind: SAMModelKind { imageEncoder.kind }
  let promptEncoder: PromptEncoder
  let maskDecoder: MaskDecoder

  /// Loads the official `mobile_sam.pt` or `sam_vit_b/l/h_*.pth` (or a file saved the same way),
  /// recognizing which from its keys and shapes. Strict: every key is used
  /// or deliberately ignored; a missing key or a wrong shape is an error naming it.
  public convenience init(checkpoint url: URL) throws {
    let checkpoint: Checkpoint
    do {
      checkpoint = try Checkpoint.load(contentsOf: url)
    } catch {
      throw MobileSAMError.checkpoint(file: url.path, reason: error.localizedDescription)
    }
    try self.init(checkpoint: checkpoint, source: url.path)
  }

  public init(checkpoint: Checkpoint, source: String) throws {
    let weights = CheckpointWeights(checkpoint, source: source)
    // The classification head of TinyViT is not used by SAM (its forward never calls it).
    weights.ignore(prefix: "image_encoder.head.")
    weights.ignore(prefix: "image_encoder.norm_head.")
    // BatchNorm's training counter plays no part in inference.
    weights.ignore(suffix: ".num_batches_tracked")
    do {
      imageEncoder = try ImageEncoder(weights, "image_encoder")
      promptEncoder = try PromptEncoder(weights, "prompt_encoder")
      let imagePE = promptEncoder.densePositionalEncoding
      maskDecoder = try MaskDecoder(
        weights, "mask_decoder",
        imagePE: imagePE.reshaped([imagePE.count / PromptEncoder.embedDim, PromptEncoder.embedDim]))
      try weights.finish()
    } catch let error as MobileSAMError {
      throw error
    } catch {
      throw MobileSAMError.checkpoint(file: source, reason: error.localizedDescription)
    }
  }

  /// Runs the image encoder (`SamPredictor.set_image`): the expensive part, once per image.
  public func embed(_ image: RGBImage) throws -> ImageEmbedding {
    let size = longestSideSize(width: image.width, height: image.height, target: TinyViTConfig.imageSize)
    guard size.width > 0, size.height > 0 else {
      throw MobileSAMError.imageTooThin(width: image.width, height: image.height)
    }
    let (input, resized) = Transforms.encoderInput(image)
    var features = imageEncoder(input)
    features.shape = [TinyViTConfig.gridSize * TinyViTConfig.gridSize, TinyViTConfig.neckChannels]
    let keys = add(features, promptEncoder.denseEmbedding(maskInput: nil).reshaped(features.shape))
    let firstLayer = maskDecoder.promptFreeImageSide(
      keys: keys, imagePE: promptEncoder.densePositionalEncoding.reshaped(features.shape))
    return ImageEmbedding(
      originalWidth: image.width, originalHeight: image.height, inputWidth: resized.width,
      inputHeight: resized.height, features: features, promptFreeFirstLayer: firstLayer)
  }

  /// One prediction per prompt, in order; each equals what `SamPredictor.predict` gives for that
  /// prompt alone, and is the same bit for bit whatever other prompts come with it. Throws
  /// `invalidPrompt` before doing any work when a prompt is invalid.
  ///
  /// Each prompt is decoded on its own. Stacking a batch's token rows into the same GEMMs made a
  /// prompt's last bits depend on its batch-mates (issue 6: a box scored 0.79615456 beside another
  /// box, 0.79615438 alone), because OpenBLAS picks its kernels and blocking, and `sgemm` its
  /// split over threads, by the matrix sizes. Batches saved little: most of a prompt's cost is its
  /// own 4096-token image side and its masks, the same work either way; only the token rows (5 to
  /// 10 per prompt) shared GEMM calls. Several prompts are decoded side by side, one per thread,
  /// each splitting its work as it would over all the threads (SAMTensor's `sideBySide`), so
  /// the bits are those of the prompt alone.
  public func predict(_ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool) throws -> [Prediction]
  {
    return try predictLowRes(embedding, prompts: prompts, multimask: multimask).map { decoded in
      let made = decoded.scores.indices.map { mask(decoded, index: $0, embedding: embedding) }
      return Prediction(
        masks: made.map(\.mask), scores: decoded.scores, stabilityScores: made.map(\.stabilityScore),
        lowResLogits: decoded.lowResLogits)
    }
  }

  /// `predict` up to the low-resolution logits: scores and 256 x 256 logits per mask, and no mask
  /// at original size yet. `mask(_:index:embedding:)` makes those one at a time, so that a caller
  /// holds one full-size mask at a time however large the image (a 13000 x 13000 mask is 169 MB).
  public func predictLowRes(_ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool) throws
    -> [LowResPrediction]
  {
    try predictLowRes(embedding, prompts: prompts, multimask: multimask, coverage: .full)
  }

  /// The same, with `coverage` choosing which low-res logits are computed: `.masksOnly` for a
  /// caller that only makes masks at original size from them (`mask(_:index:embedding:)`).
  public func predictLowRes(
    _ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool, coverage: LowResCoverage
  ) throws -> [LowResPrediction] {
    for (index, prompt) in prompts.enumerated() {
      if let reason = prompt.validationError {
        throw MobileSAMError.invalidPrompt(index: index, reason: reason)
      }
    }
    // The first layers' token sides (and the second layers' self-attention) of the prompts
    // without a mask input together, then each
    // prompt's rest side by side, one thread each (SAMTensor's `sideBySide`): the same bits as one
    // prompt alone.
    let region = coverage == .masksOnly ? Transforms.lowResGridRegion(embedding) : nil
    let tokenSides = promptTokenSides(embedding, prompts: prompts)
    return sideBySideMap(prompts.count) {
      decode(
        embedding, prompts: [prompts[$0]], multimask: multimask, region: region,
        tokenSides: tokenSides[$0])[0]
    }
  }

  /// For each prompt without a mask input, when there are several, its first layer's token side
  /// and second layer's self-attention computed with the others' of the same token count
  /// (`MaskDecoder.promptTokenSides`): the MLP's and the attentions' weights and the image side's
  /// keys and values are then read once per call, not once per prompt. nil for the others.
  private func promptTokenSides(_ embedding: ImageEmbedding, prompts: [Prompt]) -> [PromptTokenSides?] {
    var result = [PromptTokenSides?](repeating: nil, count: prompts.count)
    let promptFree = prompts.indices.filter { prompts[$0].maskInput == nil }
    guard promptFree.count > 1 else { return result }
    let sparse = promptFree.map { index in
      let frame = Transforms.toInputFrame(prompts[index], embedding: embedding)
      return promptEncoder.sparseEmbeddings(points: frame.points, box: frame.box)
    }
    let groups = Dictionary(grouping: promptFree.indices) { sparse[$0].shape[0] }
    for members in groups.values.sorted(by: { $0[0] < $1[0] }) {
      let sides = maskDecoder.promptTokenSides(
        members.map { sparse[$0] }, firstLayer: embedding.promptFreeFirstLayer)
      for (member, side) in zip(members, sides) { result[promptFree[member]] = side }
    }
    return result
  }

  /// Mask `index` of a prompt at the original image size (`Sam.postprocess_masks`, > 0) with its
  /// stability score.
  public func mask(_ prediction: LowResPrediction, index: Int, embedding: ImageEmbedding) -> (
    mask: BinaryMask, stabilityScore: Float?
  ) {
    let lowRes = Tensor(shape: [1, 256, 256], data: prediction.lowResLogits[index])
    let plane = Transforms.masksAtOriginalSize(lowRes, embedding: embedding)[0]
    return (
      BinaryMask(width: embedding.originalWidth, height: embedding.originalHeight, pixels: plane.mask),
      stabilityScore(intersections: plane.countAboveHigh, unions: plane.countAboveLow)
    )
  }

  /// Decodes prompts that share one shape as one batch, to low-resolution logits.
  private func decode(
    _ embedding: ImageEmbedding, prompts: [Prompt], multimask: Bool, region: GridRegion?,
    tokenSides: PromptTokenSides? = nil
  ) -> [LowResPrediction] {
    let dim = MaskDecoder.transformerDim
    let inputFrame = prompts.map { Transforms.toInputFrame($0, embedding: embedding) }
    let sparseParts = inputFrame.map { promptEncoder.sparseEmbeddings(points: $0.points, box: $0.box) }
    let tokens = sparseParts[0].shape[0]
    let sparse = Tensor(shape: [prompts.count, tokens, dim], data: sparseParts.flatMap(\.data))
    // Without mask inputs the dense embeddings are all `no_mask_embed`, whose first-layer work the
    // embedding holds; with any mask input, everything is computed here.
    let promptFree = prompts.allSatisfy { $0.maskInput == nil }
    let dense =
      promptFree
      ? nil
      : Tensor(
        shape: [prompts.count, embedding.features.shape[0], dim],
        data: prompts.flatMap { promptEncoder.denseEmbedding(maskInput: $0.maskInput).data })
    var imagePE = promptEncoder.densePositionalEncoding
    imagePE.shape = embedding.features.shape
    let maskIndices = multimask ? [1, 2, 3] : [0]
    let (logits, iou) = maskDecoder(
      imageEmbedding: embedding.features, imagePE: imagePE, sparse: sparse, dense: dense,
      maskIndices: maskIndices, firstLayerImage: promptFree ? embedding.promptFreeFirstLayer : nil,
      region: region, tokenSides: tokenSides.map { [$0] })

    let masksPerPrompt = maskIndices.count
    let planeSize = 256 * 256
    return (0..<prompts.count).map { b in
      let start = b * masksPerPrompt * planeSize
      return LowResPrediction(
        scores: Array(iou.data[(b * masksPerPrompt)..<((b + 1) * masksPerPrompt)]),
        lowResLogits: (0..<masksPerPrompt).map {
          Array(logits.data[(start + $0 * planeSize)..<(start + ($0 + 1) * planeSize)])
        })
    }
  }
}

/// `calculate_stability_score` of mobile_sam/utils/amg.py: the IoU of the masks thresholded at
/// threshold + offset and threshold - offset (the first inside the second, so it is the ratio of
/// their areas); nil when the looser mask is empty (0 / 0).
func stabilityScore(intersections: Int, unions: Int) -> Float? {
  guard unions > 0 else { return nil }
  return Float(intersections) / Float(unions)
}

/// A neutral name for the model class, which holds any of the four SAM kinds.
public typealias SAMModel = MobileSAMModel
