// Port of mobile_sam/modeling/transformer.py (TwoWayTransformer, TwoWayAttentionBlock, Attention)
// and the MLPBlock of mobile_sam/modeling/common.py. Every tensor carries a batch of prompts first.
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
    qProj = try Linear(weights, "\(prefix).q_proj", inFeatures: embeddingDim, outFeatures: internalDim)
    kProj = try Linear(weights, "\(prefix).k_proj", inFeatures: embeddingDim, outFeatures: internalDim)
    vProj = try Linear(weights, "\(prefix).v_proj", inFeatures: embeddingDim, outFeatures: internalDim)
    outProj = try Linear(weights, "\(prefix).out_proj", inFeatures: internalDim, outFeatures: embeddingDim)
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
    let queries = qh.shape[1]
    let headDim = internalDim / numHeads
    var out = attention(q: qh, k: kh, v: vh, bias: nil, scale: 1 / Float(headDim).squareRoot())
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
struct MLPBlock {
  let lin1: Linear
  let lin2: Linear

  init(_ weights: CheckpointWeights, _ prefix: String, embeddingDim: Int, mlpDim: Int) throws {
    lin1 = try Linear(weights, "\(prefix).lin1", inFeatures: embeddingDim, outFeatures: mlpDim)
    lin2 = try Linear(weights, "\(prefix).lin2", inFeatures: mlpDim, outFeatures: embeddingDim)
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

  /// queries [B, Nt, C], keys [B, 4096, C], queryPE like queries, keyPE like keys.
  func callAsFunction(queries: Tensor, keys: Tensor, queryPE: Tensor, keyPE: Tensor) -> (Tensor, Tensor) {
    let image = ImageSide(self, keys: keys, keyPE: keyPE)
    return callAsFunction(queries: queries, image: image, queryPE: queryPE)
  }

  /// The same with the image side's prompt-independent work already done (`ImageSide`), for a batch
  /// of B prompts: queries [B, Nt, C].
  func callAsFunction(queries: Tensor, image: ImageSide, queryPE: Tensor) -> (Tensor, Tensor) {
    let batch = queries.shape[0]
    var queries = queries
    if skipFirstLayerPE {
      queries = selfAttn(q: queries, k: queries, v: queries)
    } else {
      let q = add(queries, queryPE)
      addInPlace(&queries, selfAttn(q: q, k: q, v: queries))
    }
    queries = norm1(queries)

    var q = add(queries, queryPE)
    addInPlace(
      &queries,
      crossAttnTokenToImage.attend(
        queries: crossAttnTokenToImage.projectQueries(q), keys: image.tokenToImageKeys(batch),
        values: image.tokenToImageValues(batch), batch: batch))
    queries = norm2(queries)

    addInPlace(&queries, mlp(queries))
    queries = norm3(queries)

    q = add(queries, queryPE)
    var keys = image.keys(batch)
    addInPlace(
      &keys,
      crossAttnImageToToken.attend(
        queries: image.imageToTokenQueries(batch), keys: crossAttnImageToToken.projectKeys(q),
        values: crossAttnImageToToken.projectValues(queries), batch: batch))
    keys = norm4(keys)
    return (queries, keys)
  }

  /// What a layer computes from the image side alone (keys and keys + PE): the same for every
  /// prompt whose keys are the same, so for the first layer it can be computed once per image.
  /// Each tensor is for one prompt, or already for the batch, and is repeated to the batch on use.
  struct ImageSide: Sendable {
    let keys: Tensor  // [B or 1, 4096, C]
    let tokenToImageKeys: Tensor  // [(B or 1) * heads, 4096, d]
    let tokenToImageValues: Tensor
    let imageToTokenQueries: Tensor

    init(_ block: TwoWayAttentionBlock, keys: Tensor, keyPE: Tensor) {
      let k = add(keys, keyPE)
      self.keys = keys
      tokenToImageKeys = block.crossAttnTokenToImage.projectKeys(k)
      tokenToImageValues = block.crossAttnTokenToImage.projectValues(keys)
      imageToTokenQueries = block.crossAttnImageToToken.projectQueries(k)
    }

    func keys(_ batch: Int) -> Tensor { repeatedToBatch(keys, batch) }
    func tokenToImageKeys(_ batch: Int) -> Tensor { repeatedToBatch(tokenToImageKeys, batch) }
    func tokenToImageValues(_ batch: Int) -> Tensor { repeatedToBatch(tokenToImageValues, batch) }
    func imageToTokenQueries(_ batch: Int) -> Tensor { repeatedToBatch(imageToTokenQueries, batch) }

    /// x for a whole batch already, or x [n, ...] for one prompt repeated to [batch * n, ...].
    private func repeatedToBatch(_ x: Tensor, _ batch: Int) -> Tensor {
      let perPrompt = keys.shape[0] == 1
      guard perPrompt && batch > 1 else { return x }
      var shape = x.shape
      shape[0] *= batch
      var data = [Float]()
      data.reserveCapacity(x.count * batch)
      for _ in 0..<batch { data += x.data }
      return Tensor(shape: shape, data: data)
    }
  }
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

  /// image [B, 4096, C], imagePE [B, 4096, C], points [B, Nt, C] -> (queries [B, Nt, C], keys [B, 4096, C])
  func callAsFunction(image: Tensor, imagePE: Tensor, points: Tensor) -> (Tensor, Tensor) {
    callAsFunction(
      firstLayerImage: firstLayerImageSide(image: image, imagePE: imagePE), imagePE: imagePE, points: points)
  }

  /// The first layer's image-side work for keys `image` [B or 1, 4096, C]: with one prompt's keys,
  /// it serves any batch of prompts with those keys (`MobileSAMModel` keeps it per image for prompts
  /// without a mask input).
  func firstLayerImageSide(image: Tensor, imagePE: Tensor) -> TwoWayAttentionBlock.ImageSide {
    TwoWayAttentionBlock.ImageSide(layers[0], keys: image, keyPE: imagePE)
  }

  /// As above, with the first layer's image side given; imagePE [B, 4096, C].
  func callAsFunction(
    firstLayerImage: TwoWayAttentionBlock.ImageSide, imagePE: Tensor, points: Tensor
  ) -> (Tensor, Tensor) {
    var (queries, keys) = layers[0](queries: points, image: firstLayerImage, queryPE: points)
    for layer in layers.dropFirst() {
      (queries, keys) = layer(queries: queries, keys: keys, queryPE: points, keyPE: imagePE)
    }
    let q = add(queries, points)
    let k = add(keys, imagePE)
    addInPlace(&queries, finalAttnTokenToImage(q: q, k: k, v: keys))
    return (normFinalAttn(queries), keys)
  }
}
