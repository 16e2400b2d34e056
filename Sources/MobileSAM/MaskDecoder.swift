// Port of mobile_sam/modeling/mask_decoder.py (MaskDecoder).
import SAMTensor
import TorchCheckpoint

/// `MaskDecoder`: runs the two-way transformer on [iou token, 4 mask tokens, prompt tokens] against
/// the image embedding, upscales the image side 4x, and turns each mask token into a mask through
/// its hypernetwork MLP; the IoU head scores the masks.
struct MaskDecoder {
  static let transformerDim = 256
  static let numMaskTokens = 4  // num_multimask_outputs (3) + 1

  let iouToken: Tensor  // [1, 256]
  let maskTokens: Tensor  // [4, 256]
  let transformer: TwoWayTransformer
  let upscaleConv1Weight: Tensor  // output_upscaling.0, ConvTranspose2d 256 -> 64, [256, 64, 2, 2]
  let upscaleConv1Bias: Tensor
  let upscaleNorm: LayerNorm  // output_upscaling.1, LayerNorm2d(64)
  let upscaleConv2Weight: Tensor  // output_upscaling.3, ConvTranspose2d 64 -> 32, [64, 32, 2, 2]
  let upscaleConv2Bias: Tensor
  let hypernetworkMLPs: [DecoderMLP]  // output_hypernetworks_mlps.0 ... 3
  let iouPredictionHead: DecoderMLP

  init(_ weights: CheckpointWeights, _ prefix: String) throws {
    let dim = MaskDecoder.transformerDim
    iouToken = try weights.take("\(prefix).iou_token.weight", shape: [1, dim])
    maskTokens = try weights.take("\(prefix).mask_tokens.weight", shape: [MaskDecoder.numMaskTokens, dim])
    transformer = try TwoWayTransformer(
      weights, "\(prefix).transformer", depth: 2, embeddingDim: dim, numHeads: 8, mlpDim: 2048)
    upscaleConv1Weight = try weights.take("\(prefix).output_upscaling.0.weight", shape: [dim, dim / 4, 2, 2])
    upscaleConv1Bias = try weights.take("\(prefix).output_upscaling.0.bias", shape: [dim / 4])
    upscaleNorm = try LayerNorm(weights, "\(prefix).output_upscaling.1", dim: dim / 4, eps: 1e-6)
    upscaleConv2Weight = try weights.take(
      "\(prefix).output_upscaling.3.weight", shape: [dim / 4, dim / 8, 2, 2])
    upscaleConv2Bias = try weights.take("\(prefix).output_upscaling.3.bias", shape: [dim / 8])
    hypernetworkMLPs = try (0..<MaskDecoder.numMaskTokens).map {
      try DecoderMLP(
        weights, "\(prefix).output_hypernetworks_mlps.\($0)", inputDim: dim, hiddenDim: dim,
        outputDim: dim / 8,
        numLayers: 3)
    }
    iouPredictionHead = try DecoderMLP(
      weights, "\(prefix).iou_prediction_head", inputDim: dim, hiddenDim: 256,
      outputDim: MaskDecoder.numMaskTokens,
      numLayers: 3)
  }

  /// Decodes a batch of prompts against one image.
  /// - imageEmbedding: [4096, 256] (64x64 grid, channels-last); imagePE the same shape.
  /// - sparse: [B, Nt, 256] prompt tokens; dense: [B, 4096, 256].
  /// - maskIndices: which of the 4 decoder masks to return (1...3 for multimask, else 0).
  /// Returns low-res logits [B, masks, 256, 256] and IoU predictions [B, masks].
  /// - firstLayerImage: the transformer's first-layer image side for keys = image embedding + dense,
  ///   when every prompt of the batch has the same dense embedding and it was computed before
  ///   (`dense` is then not used).
  func callAsFunction(
    imageEmbedding: Tensor, imagePE: Tensor, sparse: Tensor, dense: Tensor?, maskIndices: [Int],
    firstLayerImage: TwoWayAttentionBlock.ImageSide? = nil
  ) -> (logits: Tensor, iou: Tensor) {
    let dim = MaskDecoder.transformerDim
    let batch = sparse.shape[0]
    let promptTokens = sparse.shape[1]
    let outputTokens = 1 + MaskDecoder.numMaskTokens
    let tokenCount = outputTokens + promptTokens
    let imageTokens = imageEmbedding.shape[0]

    // tokens = cat(iou_token, mask_tokens, sparse) per prompt: (B, 5 + Nt, 256)
    var tokenData = [Float]()
    tokenData.reserveCapacity(batch * tokenCount * dim)
    for b in 0..<batch {
      tokenData += iouToken.data
      tokenData += maskTokens.data
      tokenData += sparse.data[(b * promptTokens * dim)..<((b + 1) * promptTokens * dim)]
    }
    let tokens = Tensor(shape: [batch, tokenCount, dim], data: tokenData)

    let positional = Tensor(shape: [batch, imageTokens, dim], data: repeated(imagePE.data, batch))
    let firstLayer: TwoWayAttentionBlock.ImageSide
    if let firstLayerImage {
      firstLayer = firstLayerImage
    } else {
      // src = image embedding (repeated per prompt) + dense prompt embedding: (B, 4096, 256)
      guard let dense else { preconditionFailure("MaskDecoder: neither dense embeddings nor a first layer") }
      var src = Tensor(shape: [batch, imageTokens, dim], data: repeated(imageEmbedding.data, batch))
      addInPlace(&src, Tensor(shape: [batch, imageTokens, dim], data: dense.data))
      firstLayer = transformer.firstLayerImageSide(image: src, imagePE: positional)
    }

    let (hs, keys) = transformer(firstLayerImage: firstLayer, imagePE: positional, points: tokens)

    // Upscale the image side: (B, 64, 64, 256) -> (B, 256, 256, 32), one prompt at a time.
    let side = TinyViTConfig.gridSize
    let upscaledSide = side * 4
    let upscaledChannels = dim / 8
    var logits = [Float]()
    logits.reserveCapacity(batch * maskIndices.count * upscaledSide * upscaledSide)
    var iou = [Float]()
    for b in 0..<batch {
      let keysB = Tensor(
        shape: [side, side, dim],
        data: Array(keys.data[(b * imageTokens * dim)..<((b + 1) * imageTokens * dim)]))
      var up = convTranspose2d(keysB, weight: upscaleConv1Weight, bias: upscaleConv1Bias, stride: 2)
      up = upscaleNorm(up)
      geluInPlace(&up)
      up = convTranspose2d(up, weight: upscaleConv2Weight, bias: upscaleConv2Bias, stride: 2)
      geluInPlace(&up)
      // (256, 256, 32)

      // hyper_in: one 32-vector per selected mask token; masks = hyper_in @ upscaled.
      var hyper = Tensor(zeros: [maskIndices.count, upscaledChannels])
      for (row, index) in maskIndices.enumerated() {
        let tokenRow = (b * tokenCount + 1 + index) * dim
        let token = Tensor(shape: [1, dim], data: Array(hs.data[tokenRow..<(tokenRow + dim)]))
        let h = hypernetworkMLPs[index](token)
        for c in 0..<upscaledChannels { hyper.data[row * upscaledChannels + c] = h.data[c] }
      }
      up.shape = [upscaledSide * upscaledSide, upscaledChannels]
      logits += linear(up, weight: hyper, bias: nil).transposedMatrix().data  // (masks, 65536)

      let iouRow = b * tokenCount * dim
      let scores = iouPredictionHead(Tensor(shape: [1, dim], data: Array(hs.data[iouRow..<(iouRow + dim)])))
      iou += maskIndices.map { scores.data[$0] }
    }
    return (
      Tensor(shape: [batch, maskIndices.count, upscaledSide, upscaledSide], data: logits),
      Tensor(shape: [batch, maskIndices.count], data: iou)
    )
  }
}

private func repeated(_ values: [Float], _ times: Int) -> [Float] {
  if times == 1 { return values }  // shares the storage: no copy
  var out = [Float]()
  out.reserveCapacity(values.count * times)
  for _ in 0..<times { out += values }
  return out
}

extension Tensor {
  /// [rows, columns] -> [columns, rows]
  func transposedMatrix() -> Tensor {
    permute(self, [1, 0])
  }
}
