// The model side of mobile_sam/automatic_mask_generator.py (`_process_batch`): many single-point
// prompts decoded against one embedding, and their masks brought to the image size one at a time.
import SAMTensor

/// What the decoder gives for a batch of single-point prompts, three masks per point in the
/// reference's order (point-major, then decoder masks 1, 2, 3).
public struct PointDecodings: Sendable {
  /// Low-res logits [points * 3, 256, 256].
  public var lowResLogits: Tensor
  /// Predicted IoU per mask [points * 3].
  public var scores: [Float]
}

extension MobileSAMModel {
  /// Decodes each point, in pixels of the embedded image, as one prompt with a single foreground
  /// point and multimask output (`predict_torch(points[:, None, :], ones, multimask_output=True)`).
  /// The coordinates stay in double precision until they are normalized, as the generator's
  /// float64 grid does in the reference (its prompt encoder casts to float32 after dividing by
  /// 1024). Each point is decoded on its own, as `predict` decodes each prompt (a batch-mate
  /// would change the last bits of the GEMMs' results).
  ///
  /// With `scoreAbove`, a point none of whose three predicted IoUs is above it gets no mask
  /// logits (zeros): the scores come from the transformer's IoU token alone, and the hypernetworks
  /// and the upscaling (about half of the decoder's work per point) are skipped. (The mask tokens'
  /// final attention is not: it shares one pass over the image side with the IoU token's.)
  /// With `coverage` `.masksOnly`, only the logits `MaskUpscaling.planes` reads are computed (the
  /// others are NaN).
  public func decodePoints(
    _ embedding: ImageEmbedding, points: [(x: Double, y: Double)], scoreAbove: Float? = nil,
    coverage: LowResCoverage = .full
  ) -> PointDecodings {
    let region = coverage == .masksOnly ? Transforms.lowResGridRegion(embedding) : nil
    let planeSize = 256 * 256
    var logits = [Float](repeating: 0, count: points.count * 3 * planeSize)
    var scores = [Float](repeating: 0, count: points.count * 3)
    var imagePE = promptEncoder.densePositionalEncoding
    imagePE.shape = embedding.features.shape
    let dim = MaskDecoder.transformerDim
    let sparse = points.map {
      Tensor(
        shape: [2, dim],
        data: promptEncoder.singlePointEmbedding(normalized: normalizedInputCoordinates($0, embedding)))
    }
    // The first layers' token sides of all the points together, the rest side by side, one thread
    // each: the same bits as each point alone (`predictLowRes`).
    let tokenSides = maskDecoder.promptTokenSides(
      sparse, firstLayer: embedding.promptFreeFirstLayer)
    logits.withUnsafeMutableBufferPointer { lp in
      scores.withUnsafeMutableBufferPointer { sp in
        sideBySide(points.count) { index in
          let outputs = maskDecoder.transformerOutputs(
            firstLayer: embedding.promptFreeFirstLayer, imagePE: imagePE, sparse: sparse[index],
            maskIndices: [1, 2, 3], tokenSides: tokenSides[index])
          let iou = maskDecoder.scores(outputs)
          (sp.baseAddress! + index * 3).update(from: iou, count: 3)
          if let scoreAbove, !iou.contains(where: { $0 > scoreAbove }) { return }
          let planes = maskDecoder.masks(outputs, region: region)
          (lp.baseAddress! + index * 3 * planeSize).update(from: planes, count: 3 * planeSize)
        }
      }
    }
    return PointDecodings(
      lowResLogits: Tensor(shape: [points.count * 3, 256, 256], data: logits), scores: scores)
  }

  /// `ResizeLongestSide.apply_coords` in float64, the pixel-centre shift and the division by the
  /// 1024 input size of `PositionEmbeddingRandom.forward_with_coords`, then float32.
  private func normalizedInputCoordinates(_ point: (x: Double, y: Double), _ embedding: ImageEmbedding)
    -> (x: Float, y: Float)
  {
    let sx = Double(embedding.inputWidth) / Double(embedding.originalWidth)
    let sy = Double(embedding.inputHeight) / Double(embedding.originalHeight)
    let size = Double(PromptEncoder.inputImageSize)
    return (Float((point.x * sx + 0.5) / size), Float((point.y * sy + 0.5) / size))
  }
}

extension PromptEncoder {
  /// Sparse embedding [2, 256] of one foreground point given in normalized input coordinates,
  /// followed by the not-a-point padding token (there is no box).
  func singlePointEmbedding(normalized point: (x: Float, y: Float)) -> [Float] {
    let dim = PromptEncoder.embedDim
    var out = [Float](repeating: 0, count: 2 * dim)
    peLayer.encode(x: point.x, y: point.y, into: &out, at: 0)
    for c in 0..<dim {
      out[c] += pointEmbeddings[1].data[c]
      out[dim + c] = notAPointEmbed.data[c]
    }
    return out
  }
}

/// Masks of the embedded image from low-res logits, as `Sam.postprocess_masks` and
/// `calculate_stability_score` give them, for masks decided one at a time.
public enum MaskUpscaling {
  /// Low-res logits [P, 256, 256] -> one thresholded plane per mask at the embedded image's
  /// size, with the counts above `threshold + offset` and `threshold - offset` (the stability
  /// score's intersection and union).
  public static func planes(
    _ lowRes: Tensor, embedding: ImageEmbedding, threshold: Float, offset: Float
  ) -> [ThresholdedPlane] {
    let side = TinyViTConfig.imageSize
    let cropped = resizeBilinear(
      lowRes, height: side, width: side, keepingTop: embedding.inputHeight, left: embedding.inputWidth)
    return resizeBilinearThresholded(
      cropped, height: embedding.originalHeight, width: embedding.originalWidth, threshold: threshold,
      offset: offset)
  }
}
