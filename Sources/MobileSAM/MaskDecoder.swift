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
  /// output_upscaling: ConvTranspose2d 256 -> 64 (.0), LayerNorm2d(64) (.1), GELU (.2),
  /// ConvTranspose2d 64 -> 32 (.3), GELU (.4), fused with the hypernetwork products.
  let outputUpscaling: UpscalingProducts
  /// The first upscaling convolution of a prompt's final keys from a per-image product and the
  /// transformer's two image-side updates (LowRankUpscalingInput.swift), for prompts without a
  /// mask input.
  let lowRankUpscaling: LowRankUpscalingInput
  /// The transformer's second layer from the first layer's low-rank update of the image side
  /// (LowRankSecondLayer.swift), for prompts without a mask input.
  let lowRankSecondLayer: LowRankSecondLayer
  let hypernetworkMLPs: [DecoderMLP]  // output_hypernetworks_mlps.0 ... 3
  let iouPredictionHead: DecoderMLP

  /// imagePE [4096, 256]: the prompt encoder's dense positional encoding.
  init(_ weights: CheckpointWeights, _ prefix: String, imagePE: Tensor) throws {
    let dim = MaskDecoder.transformerDim
    iouToken = try weights.take("\(prefix).iou_token.weight", shape: [1, dim])
    maskTokens = try weights.take("\(prefix).mask_tokens.weight", shape: [MaskDecoder.numMaskTokens, dim])
    transformer = try TwoWayTransformer(
      weights, "\(prefix).transformer", depth: 2, embeddingDim: dim, numHeads: 8, mlpDim: 2048)
    let upscaleNorm = try LayerNorm(weights, "\(prefix).output_upscaling.1", dim: dim / 4, eps: 1e-6)
    let conv1Weight = try weights.take("\(prefix).output_upscaling.0.weight", shape: [dim, dim / 4, 2, 2])
    let conv1Bias = try weights.take("\(prefix).output_upscaling.0.bias", shape: [dim / 4])
    let (first, second) = (transformer.layers[0], transformer.layers[1])
    // Each grid cell's 2x2 block, as UpscalingProducts lays out its first stage.
    lowRankUpscaling = LowRankUpscalingInput(
      conv1: UpscalingProducts.blockMatrix(conv1Weight),
      conv1Bias: Tensor(shape: [dim], data: UpscalingProducts.blockBias(conv1Bias)),
      norm1: first.norm4, norm2: second.norm4, outBias1: first.crossAttnImageToToken.outProj.bias,
      outBias2: second.crossAttnImageToToken.outProj.bias)
    lowRankSecondLayer = LowRankSecondLayer(
      second, firstNorm: first.norm4, firstOutBias: first.crossAttnImageToToken.outProj.bias, imagePE: imagePE
    )
    outputUpscaling = UpscalingProducts(
      conv1Weight: conv1Weight, conv1Bias: conv1Bias,
      normWeight: upscaleNorm.weight, normBias: upscaleNorm.bias, eps: upscaleNorm.eps,
      conv2Weight: try weights.take("\(prefix).output_upscaling.3.weight", shape: [dim / 4, dim / 8, 2, 2]),
      conv2Bias: try weights.take("\(prefix).output_upscaling.3.bias", shape: [dim / 8]))
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

  /// Decodes a batch of prompts against one image, each prompt on its own (its outputs never depend
  /// on its batch-mates).
  /// - imageEmbedding: [4096, 256] (64x64 grid, channels-last); imagePE the same shape.
  /// - sparse: [B, Nt, 256] prompt tokens; dense: [B, 4096, 256].
  /// - maskIndices: which of the 4 decoder masks to return (1...3 for multimask, else 0).
  /// Returns low-res logits [B, masks, 256, 256] and IoU predictions [B, masks].
  /// - firstLayerImage: the transformer's first-layer image side for keys = image embedding + dense,
  ///   when every prompt of the batch has the same dense embedding and it was computed before
  ///   (`dense` is then not used).
  /// - region: the grid pixels whose logits are computed (`UpscalingProducts`), the others NaN;
  ///   nil: all.
  /// - tokenSides: with `firstLayerImage`, each prompt's `PromptTokenSides` computed
  ///   beforehand (`promptTokenSides`).
  func callAsFunction(
    imageEmbedding: Tensor, imagePE: Tensor, sparse: Tensor, dense: Tensor?, maskIndices: [Int],
    firstLayerImage: TwoWayAttentionBlock.ImageSide? = nil, region: GridRegion? = nil,
    tokenSides: [PromptTokenSides]? = nil
  ) -> (logits: Tensor, iou: Tensor) {
    precondition(
      tokenSides == nil || firstLayerImage != nil && tokenSides?.count == sparse.shape[0],
      "MaskDecoder: first-layer queries without the first layer's image side, or not one per prompt")
    let dim = MaskDecoder.transformerDim
    let batch = sparse.shape[0]
    let promptTokens = sparse.shape[1]
    let imageTokens = imageEmbedding.shape[0]
    let upscaledSide = TinyViTConfig.gridSize * 4
    var logits = [Float]()
    logits.reserveCapacity(batch * maskIndices.count * upscaledSide * upscaledSide)
    var iou = [Float]()
    for b in 0..<batch {
      let firstLayer: TwoWayAttentionBlock.ImageSide
      if let firstLayerImage {
        firstLayer = firstLayerImage
      } else {
        // src = image embedding + this prompt's dense prompt embedding: (4096, 256)
        guard let dense else {
          preconditionFailure("MaskDecoder: neither dense embeddings nor a first layer")
        }
        let plane = imageTokens * dim
        let src = add(
          imageEmbedding,
          Tensor(shape: [imageTokens, dim], data: Array(dense.data[(b * plane)..<((b + 1) * plane)])))
        firstLayer = transformer.firstLayerImageSide(image: src, imagePE: imagePE)
      }
      let prompt = Tensor(
        shape: [promptTokens, dim],
        data: Array(sparse.data[(b * promptTokens * dim)..<((b + 1) * promptTokens * dim)]))
      let outputs = transformerOutputs(
        firstLayer: firstLayer, imagePE: imagePE, sparse: prompt, maskIndices: maskIndices,
        tokenSides: tokenSides?[b])
      logits += masks(outputs, region: region)
      iou += scores(outputs)
    }
    return (
      Tensor(shape: [batch, maskIndices.count, upscaledSide, upscaledSide], data: logits),
      Tensor(shape: [batch, maskIndices.count], data: iou)
    )
  }

  /// The two-way transformer for one prompt: sparse [Nt, 256] -> what `scores` and `masks` need
  /// for the masks `maskIndices`.
  /// - tokenSides: this prompt's rows of `promptTokenSides`, when computed with others'.
  func transformerOutputs(
    firstLayer: TwoWayAttentionBlock.ImageSide, imagePE: Tensor, sparse: Tensor, maskIndices: [Int],
    tokenSides: PromptTokenSides? = nil
  ) -> TransformerOutputs {
    let dim = MaskDecoder.transformerDim
    let tokens = self.tokens(sparse)
    // The final attention for the IoU token and the chosen mask tokens, in one pass.
    let rows = [0] + maskIndices.map { 1 + $0 }
    let (queries, keys, finalScores, updates) = transformer(
      firstLayerImage: firstLayer, imagePE: imagePE, points: tokens, finalRows: rows,
      tokenSides: tokenSides, lowRank: lowRankSecondLayer)
    let attended = transformer.finalAttention(
      rows: rows, queries: queries, keys: keys, scores: finalScores)  // (1 + masks, 256)
    return TransformerOutputs(
      iouToken: Tensor(shape: [1, dim], data: Array(attended.data[0..<dim])),
      maskTokens: Tensor(shape: [maskIndices.count, dim], data: Array(attended.data[dim...])),
      maskIndices: maskIndices, keys: keys, upscalingSide: firstLayer.upscalingSide, updates: updates)
  }

  /// tokens = cat(iou_token, mask_tokens, sparse): sparse [Nt, 256] -> (5 + Nt, 256).
  private func tokens(_ sparse: Tensor) -> Tensor {
    Tensor(
      shape: [1 + MaskDecoder.numMaskTokens + sparse.shape[0], MaskDecoder.transformerDim],
      data: iouToken.data + maskTokens.data + sparse.data)
  }

  /// The first layer's token side and the second layer's self-attention of many prompts against
  /// one image side, all at once (`TwoWayAttentionBlock.tokenSide(prompts:)` and
  /// `attendToTokens`: the same bits as each alone): sparse prompts [Nt, 256] each, of one token
  /// count -> each prompt's `PromptTokenSides` ([5 + Nt, 256] each), for
  /// `transformerOutputs(tokenSides:)`.
  func promptTokenSides(_ sparse: [Tensor], firstLayer: TwoWayAttentionBlock.ImageSide)
    -> [PromptTokenSides]
  {
    guard let first = sparse.first else { return [] }
    precondition(sparse.allSatisfy { $0.shape == first.shape }, "promptTokenSides: token counts differ")
    let tokens = sparse.map(self.tokens)
    let all = Tensor(shape: [sparse.count] + tokens[0].shape, data: tokens.flatMap(\.data))
    let layers = transformer.layers
    let queries = layers[0].tokenSide(prompts: all, image: firstLayer, queryPE: all)
    let selfAttended = layers[1].attendToTokens(queries, queryPE: all)
    let plane = tokens[0].count
    func rows(_ x: Tensor, _ prompt: Int) -> Tensor {
      Tensor(shape: tokens[0].shape, data: Array(x.data[(prompt * plane)..<((prompt + 1) * plane)]))
    }
    return (0..<sparse.count).map {
      PromptTokenSides(firstLayer: rows(queries, $0), secondLayerSelfAttention: rows(selfAttended, $0))
    }
  }

  /// The first layer's image side for keys = image embedding + the no-mask embedding, kept per image
  /// (`ImageEmbedding`), with the upscaling's per-image product.
  func promptFreeImageSide(keys: Tensor, imagePE: Tensor) -> TwoWayAttentionBlock.ImageSide {
    TwoWayAttentionBlock.ImageSide(
      transformer.layers[0], keys: keys, keyPE: imagePE, upscalingSide: lowRankUpscaling.imageSide(keys),
      secondLayerSide: lowRankSecondLayer.imageSide(keys))
  }

  /// One prompt's transformer outputs: the IoU token and the chosen mask tokens after the final
  /// attention and its norm, and the image side for the upscaling.
  struct TransformerOutputs {
    let iouToken: Tensor  // [1, 256]
    let maskTokens: Tensor  // [masks, 256]: mask tokens 1 + maskIndices
    let maskIndices: [Int]
    let keys: Tensor  // [4096, 256]
    /// `LowRankUpscalingInput.imageSide` of the first layer's keys, when kept for the image.
    let upscalingSide: Tensor?
    let updates: [ImageToTokenUpdate]  // each layer's image-side update
  }

  /// The IoU head's scores for the chosen masks.
  func scores(_ outputs: TransformerOutputs) -> [Float] {
    let scores = iouPredictionHead(outputs.iouToken)
    return outputs.maskIndices.map { scores.data[$0] }
  }

  /// The low-res logits for the chosen masks, [masks * 256 * 256]: the image side upscaled 4x,
  /// times each mask token's hypernetwork output (`UpscalingProducts`, row by row of the grid),
  /// for the grid pixels of `region` (nil: all; the others NaN).
  func masks(_ outputs: TransformerOutputs, region: GridRegion? = nil) -> [Float] {
    let dim = MaskDecoder.transformerDim
    let side = TinyViTConfig.gridSize
    // hyper_in: one 32-vector per selected mask token; masks = hyper_in @ upscaled.
    let maskTokens = outputs.maskTokens
    let hyper = outputs.maskIndices.enumerated().flatMap { row, index in
      hypernetworkMLPs[index](
        Tensor(shape: [1, dim], data: Array(maskTokens.data[(row * dim)..<((row + 1) * dim)]))
      ).data
    }  // (masks, 32)
    let vectors = Tensor(shape: [outputs.maskIndices.count, dim / 8], data: hyper)
    // (masks, 256, 256)
    if let imageSide = outputs.upscalingSide {
      let firstStage = lowRankUpscaling(
        imageSide: imageSide, first: outputs.updates[0], second: outputs.updates[1])
      return outputUpscaling(lowRank: firstStage, height: side, width: side, vectors: vectors, region: region)
        .data
    }
    return outputUpscaling(outputs.keys.reshaped([side, side, dim]), vectors: vectors, region: region).data
  }
}
