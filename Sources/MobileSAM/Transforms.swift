// Port of mobile_sam/utils/transforms.py (ResizeLongestSide) and of `Sam.preprocess` /
// `Sam.postprocess_masks` in mobile_sam/modeling/sam.py.
import SAMImage
import SAMTensor

enum Transforms {
  static let pixelMean: [Float] = [123.675, 116.28, 103.53]
  static let pixelStd: [Float] = [58.395, 57.12, 57.375]

  /// `SamPredictor.set_image` up to the encoder input: longest side to 1024 with Pillow's bilinear
  /// resize, per-channel normalization, zero padding at the bottom and right -> [1024, 1024, 3].
  static func encoderInput(_ image: RGBImage) -> (input: Tensor, resized: RGBImage) {
    let size = longestSideSize(width: image.width, height: image.height, target: TinyViTConfig.imageSize)
    let resized = resizeBilinearLikePillow(image, width: size.width, height: size.height)
    let side = TinyViTConfig.imageSize
    var data = [Float](repeating: 0, count: side * side * 3)
    for y in 0..<resized.height {
      for x in 0..<resized.width {
        for c in 0..<3 {
          let pixel = Float(resized.pixels[(y * resized.width + x) * 3 + c])
          data[(y * side + x) * 3 + c] = (pixel - pixelMean[c]) / pixelStd[c]
        }
      }
    }
    return (Tensor(shape: [side, side, 3], data: data), resized)
  }

  /// `ResizeLongestSide.apply_coords`: scales x and y separately, in double precision as numpy does,
  /// then rounds to float32 as `torch.as_tensor(..., dtype=torch.float)`.
  static func scalePoint(_ x: Float, _ y: Float, embedding: ImageEmbedding) -> (Float, Float) {
    let sx = Double(embedding.inputWidth) / Double(embedding.originalWidth)
    let sy = Double(embedding.inputHeight) / Double(embedding.originalHeight)
    return (Float(Double(x) * sx), Float(Double(y) * sy))
  }

  static func toInputFrame(_ prompt: Prompt, embedding: ImageEmbedding) -> Prompt {
    var out = prompt
    out.points = prompt.points.map {
      let (x, y) = scalePoint($0.x, $0.y, embedding: embedding)
      return PromptPoint(x: x, y: y, label: $0.label)
    }
    if let box = prompt.box {
      let (x0, y0) = scalePoint(box.x0, box.y0, embedding: embedding)
      let (x1, y1) = scalePoint(box.x1, box.y1, embedding: embedding)
      out.box = PromptBox(x0: x0, y0: y0, x1: x1, y1: y1)
    }
    return out
  }

  /// `Sam.postprocess_masks` for masks of one prompt, thresholded: low-res logits [M, 256, 256] ->
  /// bilinear to 1024 x 1024, crop to the resized image, bilinear to the original size, > 0.
  /// Only the kept corner of the 1024 x 1024 resize is computed (the same values), and the
  /// original-size logits are thresholded and counted for the stability score row by row instead
  /// of being stored.
  static func masksAtOriginalSize(_ lowRes: Tensor, embedding: ImageEmbedding) -> [ThresholdedPlane] {
    let side = TinyViTConfig.imageSize
    let cropped = resizeBilinear(
      lowRes, height: side, width: side, keepingTop: embedding.inputHeight, left: embedding.inputWidth)
    return resizeBilinearThresholded(
      cropped, height: embedding.originalHeight, width: embedding.originalWidth,
      threshold: maskThreshold, offset: stabilityOffset)
  }

  /// The grid pixels whose low-res logits `masksAtOriginalSize` reads: the 1024 x 1024 resize's
  /// kept corner (the resized image) comes from the top-left low-res logits, and each grid pixel
  /// gives 4 x 4 of them. A 1920 x 1080 photo needs 37 of the 64 grid rows.
  static func lowResGridRegion(_ embedding: ImageEmbedding) -> GridRegion {
    let (lowRes, side, grid) = (TinyViTConfig.gridSize * 4, TinyViTConfig.imageSize, TinyViTConfig.gridSize)
    func needed(_ kept: Int) -> Int {
      let extent = bilinearSourceExtent(inputSize: lowRes, outputSize: side, kept: kept)
      return min(grid, (extent + 3) / 4)
    }
    return GridRegion(rows: needed(embedding.inputHeight), columns: needed(embedding.inputWidth))
  }

  /// `SamPredictor.model.mask_threshold`.
  static let maskThreshold: Float = 0
  /// `stability_score_offset` of the automatic mask generator, as the reference's stability
  /// score is computed for these masks.
  static let stabilityOffset: Float = 1
}
