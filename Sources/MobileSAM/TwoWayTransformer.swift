// Port of mobile_sam/modeling/transformer.py (TwoWayTransformer, TwoWayAttentionBlock, Attention)
// and the MLPBlock of mobile_sam/modeling/common.py. `DecoderAttention` takes a batch of prompts
// first; the blocks and the transformer decode one prompt at a time.
import SAMTensor
import TorchCheckpoint

/// `Attention` of the two-way transformer: projections to an internal width
/// (embedding / downsample rate), multi-head attention, output projection.
struct DecoderAttention {
  let qProj: Linear
  let kProj: Linear
  let vProj: Linear
  let outProj: Linear
  let numHeads: Int
  let internalDim: Int

  init(
    _ weights: CheckpointWeights, _ prefix: String, embeddingDim: Int, numHeads: Int, downsampleRate: Int = 1
  )
    throws
  {
    self.numHeads = numHeads
    internalDim = embeddingDim / downsampleRate
    // Packed (our GEMM): each output row is the same bits however many rows a call has, so a
    // prompt's tokens give the same values alone or with other prompts' (`tokenSide(prompts:)`).
    qProj = try Linear(
      weights, "\(prefix).q_proj", inFeatures: embeddingDim, outFeatures: internalDim, pack: true)
    kProj = try Linear(
      weights, "\(prefix).k_proj", inFeatures: embeddingDim, outFeatures: internalDim, pack: true)
    vProj = try Linear(
      weights, "\(prefix).v_proj", inFeatures: embeddingDim, outFeatures: internalDim, pack: true)
    outProj = try Linear(
      weights, "\(prefix).out_proj", inFeatures: internalDim, outFeatures: embeddingDim, pack: true)
  }

  /// q [B, Nq, C], k [B, Nk, C], v [B, Nk, C] -> [B, Nq, C]
  func callAsFunction(q: Tensor, k: Tensor, v: Tensor) -> Tensor {
    attend(queries: projectQueries(q), keys: projectKeys(k), values: projectValues(v), batch: q.shape[0])
  }

  /// The projections, heads separated: [B, N, C] -> [B * heads, N, d].
  func projectQueries(_ q: Tensor) -> Tensor { separateHeads(qProj(q)) }
  func projectKeys(_ k: Tensor) -> Tensor { separateHeads(kProj(k)) }
  func projectValues(_ v: Tensor) -> Tensor { separateHeads(vProj(v)) }

  /// Attention over projected, head-separated inputs [B * heads, N, d], then the output projection:
  /// -> [B, Nq, C].
  func attend(queries qh: Tensor, keys kh: Tensor, values vh: Tensor, batch: Int) -> Tensor {
    mergeHeads(attention(q: qh, k: kh, v: vh, bias: nil, scale: scale), batch: batch)
  }

  /// The same for one prompt, with keys transposed beforehand (the first layer's per-image keys):
  /// queries [heads, Nq, d], values [heads, Nk, d] -> [1, Nq, C].
  func attend(queries qh: Tensor, keys: TransposedKeys, values vh: Tensor) -> Tensor {
    mergeHeads(attention(q: qh, keys: keys, v: vh, scale: scale), batch: 1)
  }

  private var scale: Float { 1 / Float(internalDim / numHeads).squareRoot() }

  /// The heads' outputs [B * heads, Nq, d] side by side, then out_proj: -> [B, Nq, C].
  private func mergeHeads(_ heads: Tensor, batch: Int) -> Tensor {
    let (queries, headDim) = (heads.shape[1], heads.shape[2])
    var out = heads
    out.shape = [batch, numHeads, queries, headDim]
    var merged = permute(out, [0, 2, 1, 3])  // (B, Nq, heads, headDim)
    merged.shape = [batch, queries, internalDim]
    return outProj(merged)
  }

  /// [B, N, heads * d] -> [B * heads, N, d]
  private func separateHeads(_ x: Tensor) -> Tensor {
    let (batch, tokens) = (x.shape[0], x.shape[1])
    var h = x
    h.shape = [batch, tokens, numHeads, internalDim / numHeads]
    var out = permute(h, [0, 2, 1, 3])  // (B, heads, N, d)
    out.shape = [batch * numHeads, tokens, internalDim / numHeads]
    return out
  }
}

/// `MLPBlock` with ReLU, as the transformer is built (`activation=nn.ReLU`).
/// Its weights are packed at load: for a prompt's few token rows, OpenBLAS repacked the
/// 256 x 2048 weights on every call, most of the MLP's time.
struct MLPBlock {
  let lin1: Linear
  let lin2: Linear

  init(_ weights: CheckpointWeights, _ prefix: String, embeddingDim: Int, mlpDim: Int) throws {
    lin1 = try Linear(weights, "\(prefix).lin1", inFeatures: embeddingDim, outFeatures: mlpDim, pack: true)
    lin2 = try Linear(weights, "\(prefix).lin2", inFeatures: mlpDim, outFeatures: embeddingDim, pack: true)
  }

  func callAsFunction(_ x: Tensor) -> Tensor { lin2(relu(lin1(x))) }
}

/// `TwoWayAttentionBlock`: token self-attention, tokens -> image, MLP, image -> tokens.
struct TwoWayAttentionBlock {
  let selfAttn: DecoderAttention
  let norm1: LayerNorm
  let crossAttnTokenToImage: DecoderAttention
  let norm2: LayerNorm
  let mlp: MLPBlock
  let norm3: LayerNorm
  let norm4: LayerNorm
  let crossAttnImageToToken: DecoderAttention
  let skipFirstLayerPE: Bool

  init(
    _ weights: CheckpointWeights, _ prefix: String, embeddingDim: Int, numHeads: Int, mlpDim: Int,
    skipFirstLayerPE: Bool
  )
    throws
  {
    selfAttn = try DecoderAttention(
      weights, "\(prefix).self_attn", embeddingDim: embeddingDim, numHeads: numHeads)
    norm1 = try LayerNorm(weights, "\(prefix).norm1", dim: embeddingDim, eps: 1e-5)
    crossAttnTokenToImage = try DecoderAttention(
      weights, "\(prefix).cross_attn_token_to_image", embeddingDim: embeddingDim, numHeads: numHeads,
      downsampleRate: 2)
    norm2 = try LayerNorm(weights, "\(prefix).norm2", dim: embeddingDim, eps: 1e-5)
    mlp = try MLPBlock(weights, "\(prefix).mlp", embeddingDim: embeddingDim, mlpDim: mlpDim)
    norm3 = try LayerNorm(weights, "\(prefix).norm3", dim: embeddingDim, eps: 1e-5)
    norm4 = try LayerNorm(weights, "\(prefix).norm4", dim: embeddingDim, eps: 1e-5)
    crossAttnImageToToken = try DecoderAttention(
      weights, "\(prefix).cross_attn_image_to_token", embeddingDim: embeddingDim, numHeads: numHeads,
      downsampleRate: 2)
    self.skipFirstLayerPE = skipFirstLayerPE
  }

  /// One prompt: queries [Nt, C], keys [4096, C] and keysWithPE (keys + keyPE), queryPE like
  /// queries, keyPE like keys -> (queries, keys, keys + keyPE, what the image side received).
  /// The cross-attentions never project the image side (CrossAttention.swift).
  func callAsFunction(queries: Tensor, keys: Tensor, keysWithPE: Tensor, queryPE: Tensor, keyPE: Tensor)
    -> (Tensor, Tensor, Tensor, ImageToTokenUpdate)
  {
    let queries = tokenSide(
      attendToTokens(queries, queryPE: queryPE), keys: keys, keysWithPE: keysWithPE, queryPE: queryPE)
    let (newKeys, newKeysWithPE, update) = crossAttnImageToToken.attendImageToTokens(
      image: keysWithPE, keys: add(queries, queryPE), values: queries, residual: keys, norm: norm4,
      positional: keyPE)
    return (queries, newKeys, newKeysWithPE, update)
  }

  /// The same for the last layer, whose keys + PE only the final attention reads: `next` gives
  /// that attention's query heads from this layer's queries (`DecoderAttention.tokenQueryHeads`),
  /// and they score the new keys + PE inside the norm's kernel, which never stores those rows ->
  /// (queries, keys, the final attention's scores [4096, heads * rows], the update).
  /// `selfAttended`: this layer's self-attention of `queries` (`attendToTokens`), when computed
  /// beforehand with other prompts'.
  func callAsFunction(
    queries: Tensor, keys: Tensor, keysWithPE: Tensor, queryPE: Tensor, keyPE: Tensor,
    scoringNext next: (Tensor) -> PackedWeight, selfAttended: Tensor? = nil
  ) -> (Tensor, Tensor, Tensor, ImageToTokenUpdate) {
    let queries = tokenSide(
      selfAttended ?? attendToTokens(queries, queryPE: queryPE), keys: keys, keysWithPE: keysWithPE,
      queryPE: queryPE)
    let (newKeys, scores, update) = crossAttnImageToToken.attendImageToTokens(
      image: keysWithPE, keys: add(queries, queryPE), values: queries, residual: keys, norm: norm4,
      positional: keyPE, scoringNext: next(queries))
    return (queries, newKeys, scores, update)
  }

  /// The same for a second layer after a first whose image side it takes in low-rank form
  /// (LowRankSecondLayer.swift: its tokens-to-image attention and its image-to-token scores without
  /// the first layer's keys + PE, which it does not read): keys [4096, C] are the first layer's
  /// normalized keys.
  func callAsFunction(
    queries: Tensor, keys: Tensor, lowRank: LowRankSecondLayer, image: LowRankSecondLayer.ImageSide,
    prompt: LowRankSecondLayer.Prompt, queryPE: Tensor, keyPE: Tensor,
    scoringNext next: (Tensor) -> PackedWeight, selfAttended: Tensor? = nil
  ) -> (Tensor, Tensor, Tensor, ImageToTokenUpdate) {
    var queries = selfAttended ?? attendToTokens(queries, queryPE: queryPE)
    addInPlace(
      &queries,
      lowRank.tokensToImage(
        queries: add(queries, queryPE), attention: crossAttnTokenToImage, image: image, prompt: prompt))
    queries = feedForward(queries)
    let scores = lowRank.imageToTokenScores(
      keys: add(queries, queryPE), attention: crossAttnImageToToken, image: image, prompt: prompt)
    let (newKeys, finalScores, update) = crossAttnImageToToken.attendImageToTokens(
      scores: scores, values: queries, residual: keys, norm: norm4, positional: keyPE,
      scoringNext: next(queries))
    return (queries, newKeys, finalScores, update)
  }

  /// Tokens -> image and MLP after the self-attention (`attendToTokens`): the layer's new queries
  /// [Nt, C].
  private func tokenSide(_ selfAttended: Tensor, keys: Tensor, keysWithPE: Tensor, queryPE: Tensor)
    -> Tensor
  {
    var queries = selfAttended
    addInPlace(
      &queries,
      crossAttnTokenToImage.attendTokensToImage(
        queries: add(queries, queryPE), imageKeys: keysWithPE, imageValues: keys))
    return feedForward(queries)
  }

  /// The same with the image side's prompt-independent work already done (`ImageSide`).
  func callAsFunction(queries: Tensor, image: ImageSide, queryPE: Tensor, keyPE: Tensor) -> (
    Tensor, Tensor, Tensor, ImageToTokenUpdate
  ) {
    let one = [1] + queries.shape
    let queries = tokenSide(prompts: queries.reshaped(one), image: image, queryPE: queryPE.reshaped(one))
    return imageSide(queries: queries.reshaped(queryPE.shape), image: image, queryPE: queryPE, keyPE: keyPE)
  }

  /// Self-attention, tokens -> image and MLP of many prompts against one `ImageSide`, all their
  /// token rows in each product: queries and queryPE [P, Nt, C] -> [P, Nt, C]. Every step works
  /// row by row or prompt by prompt (the packed GEMMs, the attention's query rows, the norms), so
  /// each prompt's rows are the same bits as alone, and the weights and the image side's keys and
  /// values are read once for all of them instead of once per prompt.
  func tokenSide(prompts queries: Tensor, image: ImageSide, queryPE: Tensor) -> Tensor {
    var queries = attendToTokens(queries, queryPE: queryPE)
    let rows = [1, queries.shape[0] * queries.shape[1], queries.shape[2]]
    addInPlace(
      &queries,
      crossAttnTokenToImage.attend(
        queries: crossAttnTokenToImage.projectQueries(add(queries, queryPE).reshaped(rows)),
        keys: image.tokenToImageKeys, values: image.tokenToImageValues
      ).reshaped(queries.shape))
    return feedForward(queries)
  }

  /// The rest of the layer after `tokenSide(prompts:)`, for one prompt: queries [Nt, C] -> as
  /// `callAsFunction(queries:image:queryPE:keyPE:)`.
  func imageSide(queries: Tensor, image: ImageSide, queryPE: Tensor, keyPE: Tensor) -> (
    Tensor, Tensor, Tensor, ImageToTokenUpdate
  ) {
    let (newKeys, newKeysWithPE, update) = crossAttnImageToToken.attendImageToTokens(
      projectedImage: image.imageToTokenQueries, keys: add(queries, queryPE), values: queries,
      residual: image.keys, norm: norm4, positional: keyPE)
    return (queries, newKeys, newKeysWithPE, update)
  }

  /// The same when the next layer takes the image side in low-rank form (LowRankSecondLayer.swift)
  /// and does not read keys + PE: -> (keys, the update).
  func imageSideKeys(queries: Tensor, image: ImageSide, queryPE: Tensor) -> (Tensor, ImageToTokenUpdate) {
    crossAttnImageToToken.attendImageToTokens(
      projectedImage: image.imageToTokenQueries, keys: add(queries, queryPE), values: queries,
      residual: image.keys, norm: norm4)
  }

  /// Self-attention of the tokens [Nt, C] or of each prompt's [P, Nt, C] (without PE in the first
  /// layer), then norm1. Prompt by prompt and row by row: each prompt's the same bits as alone.
  func attendToTokens(_ queries: Tensor, queryPE: Tensor) -> Tensor {
    let batched = queries.shape.count == 3 ? queries : queries.reshaped([1] + queries.shape)
    if skipFirstLayerPE { return norm1(selfAttn(q: batched, k: batched, v: batched).reshaped(queries.shape)) }
    let q = add(batched, queryPE.reshaped(batched.shape))
    return norm1(add(queries, selfAttn(q: q, k: q, v: batched).reshaped(queries.shape)))
  }

  /// norm2, the MLP with its residual, norm3.
  func feedForward(_ queries: Tensor) -> Tensor {
    var queries = norm2(queries)
    addInPlace(&queries, mlp(queries))
    return norm3(queries)
  }

  /// What a layer computes from the image side alone (keys and keys + PE): the same for every
  /// prompt whose keys are the same, so for the first layer it is computed once per image.
  struct ImageSide: Sendable {
    let keys: Tensor  // [4096, C]
    /// [heads, 4096, d]: k_proj(keys + PE), heads separated, transposed once for every prompt
    let tokenToImageKeys: TransposedKeys
    let tokenToImageValues: Tensor  // [heads, 4096, d]: v_proj(keys)
    let imageToTokenQueries: TransposedRows  // [4096, 128]: q_proj(keys + PE), stored transposed
    /// The upscaling's per-image product of these keys (`LowRankUpscalingInput.imageSide`), when
    /// the side is kept for many prompts.
    let upscalingSide: Tensor?
    /// The second layer's per-image products of these keys (`LowRankSecondLayer.imageSide`), idem.
    let secondLayerSide: LowRankSecondLayer.ImageSide?

    /// keys, keyPE [4096, C]
    init(
      _ block: TwoWayAttentionBlock, keys: Tensor, keyPE: Tensor, upscalingSide: Tensor? = nil,
      secondLayerSide: LowRankSecondLayer.ImageSide? = nil
    ) {
      let k = add(keys, keyPE).reshaped([1] + keys.shape)
      self.keys = keys
      self.upscalingSide = upscalingSide
      self.secondLayerSide = secondLayerSide
      tokenToImageKeys = TransposedKeys(block.crossAttnTokenToImage.projectKeys(k))
      tokenToImageValues = block.crossAttnTokenToImage.projectValues(keys.reshaped([1] + keys.shape))
      imageToTokenQueries = TransposedRows(
        block.crossAttnImageToToken.qProj(k).reshaped([
          keys.shape[0], block.crossAttnImageToToken.internalDim,
        ]))
    }
  }
}

/// What a prompt's decode can take computed beforehand, with other prompts' (each row the same
/// bits as alone): the first layer's token side and the second layer's self-attention of it,
/// [Nt, C] each.
struct PromptTokenSides {
  let firstLayer: Tensor
  let secondLayerSelfAttention: Tensor
}

/// `TwoWayTransformer` (depth 2, 8 heads, MLP 2048, as `build_sam_vit_t` builds it).
struct TwoWayTransformer {
  let layers: [TwoWayAttentionBlock]
  let finalAttnTokenToImage: DecoderAttention
  let normFinalAttn: LayerNorm

  init(
    _ weights: CheckpointWeights, _ prefix: String, depth: Int, embeddingDim: Int, numHeads: Int, mlpDim: Int
  )
    throws
  {
    precondition(depth >= 2, "TwoWayTransformer: depth \(depth); the decoder is built with 2 layers")
    layers = try (0..<depth).map {
      try TwoWayAttentionBlock(
        weights, "\(prefix).layers.\($0)", embeddingDim: embeddingDim, numHeads: numHeads, mlpDim: mlpDim,
        skipFirstLayerPE: $0 == 0)
    }
    finalAttnTokenToImage = try DecoderAttention(
      weights, "\(prefix).final_attn_token_to_image", embeddingDim: embeddingDim, numHeads: numHeads,
      downsampleRate: 2)
    normFinalAttn = try LayerNorm(weights, "\(prefix).norm_final_attn", dim: embeddingDim, eps: 1e-5)
  }

  /// The first layer's image-side work for keys `image` [4096, C] (`MobileSAMModel` keeps it per
  /// image for prompts without a mask input).
  func firstLayerImageSide(image: Tensor, imagePE: Tensor) -> TwoWayAttentionBlock.ImageSide {
    TwoWayAttentionBlock.ImageSide(layers[0], keys: image, keyPE: imagePE)
  }

  /// One prompt through the layers: imagePE [4096, C], points [Nt, C] -> (queries [Nt, C],
  /// keys [4096, C], the final attention's scores for the query rows `finalRows`, each layer's
  /// image-side update), before the rest of the final attention (`finalAttention`). The last
  /// layer's keys + PE are scored inside its norm's kernel and never stored.
  /// - tokenSides: the first layer's token side and the second layer's self-attention, when
  ///   computed beforehand with other prompts' (`MaskDecoder.promptTokenSides`).
  func callAsFunction(
    firstLayerImage: TwoWayAttentionBlock.ImageSide, imagePE: Tensor, points: Tensor, finalRows: [Int],
    tokenSides: PromptTokenSides? = nil, lowRank: LowRankSecondLayer? = nil
  ) -> (queries: Tensor, keys: Tensor, finalScores: Tensor, updates: [ImageToTokenUpdate]) {
    precondition(tokenSides == nil || layers.count == 2, "TwoWayTransformer: token sides for 2 layers")
    let scoringNext = { (queries: Tensor) in
      finalAttnTokenToImage.tokenQueryHeads(
        add(gather(finalRows, of: queries), gather(finalRows, of: points)))
    }
    if let lowRank, let image = firstLayerImage.secondLayerSide, layers.count == 2 {
      // The first layer's keys + PE are not formed: the second layer does not read them.
      let first =
        tokenSides?.firstLayer
        ?? layers[0].tokenSide(
          prompts: points.reshaped([1] + points.shape), image: firstLayerImage,
          queryPE: points.reshaped([1] + points.shape)
        ).reshaped(points.shape)
      let (firstKeys, firstUpdate) = layers[0].imageSideKeys(
        queries: first, image: firstLayerImage, queryPE: points)
      let (queries, keys, finalScores, update) = layers[1](
        queries: first, keys: firstKeys, lowRank: lowRank, image: image, prompt: lowRank.prompt(firstUpdate),
        queryPE: points, keyPE: imagePE, scoringNext: scoringNext,
        selfAttended: tokenSides?.secondLayerSelfAttention)
      return (queries, keys, finalScores, [firstUpdate, update])
    }
    var (queries, keys, keysWithPE, update) =
      if let tokenSides {
        layers[0].imageSide(
          queries: tokenSides.firstLayer, image: firstLayerImage, queryPE: points, keyPE: imagePE)
      } else {
        layers[0](queries: points, image: firstLayerImage, queryPE: points, keyPE: imagePE)
      }
    var updates = [update]
    for layer in layers.dropFirst().dropLast() {
      (queries, keys, keysWithPE, update) = layer(
        queries: queries, keys: keys, keysWithPE: keysWithPE, queryPE: points, keyPE: imagePE)
      updates.append(update)
    }
    let finalScores: Tensor
    (queries, keys, finalScores, update) = layers[layers.count - 1](
      queries: queries, keys: keys, keysWithPE: keysWithPE, queryPE: points, keyPE: imagePE,
      scoringNext: scoringNext, selfAttended: tokenSides?.secondLayerSelfAttention)
    return (queries, keys, finalScores, updates + [update])
  }

  /// The final token-to-image attention and its norm for the query rows `rows` alone: each query
  /// attends on its own, and only the IoU and mask tokens are used downstream, so the decoder asks
  /// for the rows it uses, all in one pass over the image side. queries [Nt, C]; keys [4096, C];
  /// scores [4096, heads * rows.count], the last layer's keys + PE through those rows' query heads
  /// (`callAsFunction`) -> [rows.count, C].
  func finalAttention(rows: [Int], queries: Tensor, keys: Tensor, scores: Tensor) -> Tensor {
    let selected = gather(rows, of: queries)
    var scores = scores
    let attended = finalAttnTokenToImage.attendTokensToImage(scores: &scores, imageValues: keys)
    return normFinalAttn(add(selected, attended))
  }

  /// Rows `rows` of x [N, C] -> [rows.count, C].
  private func gather(_ rows: [Int], of x: Tensor) -> Tensor {
    let dim = x.shape[1]
    return Tensor(shape: [rows.count, dim], data: rows.flatMap { x.data[($0 * dim)..<(($0 + 1) * dim)] })
  }
}
