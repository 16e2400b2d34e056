// The second layer of the mask decoder's two-way transformer against the image side, for a prompt
// without a mask input, without projecting that prompt's 4096 image rows.
//
// The image side the second layer receives is
//   x1 = E + c1 + A1 P1,   k1 = LN1(x1) = inv * (g1 (x1 - mean)) + b1   (per row)
// (notation of LowRankUpscalingInput.swift: E the image embedding plus the no-mask embedding, the
// same for every such prompt; A1 [4096, r] the first image-to-token attention's weights, P1 [r, C]
// its values through out_proj, c1 that projection's bias, g1 and b1 the first layer's norm4).
// Every projection W (with bias bw) of the second layer's attentions is linear, so
//   (k1 + PE) W^T + bw = inv * (E Wg^T + Z B Wg^T) + ((b1 + PE) W^T + bw)
// with Wg = W diag(g1), Z = [A1, 1, -mean] per row and B = [P1; c1; 1] (r + 2 rows). E Wg^T is
// computed once per image (`imageSide`), (b1 + PE) W^T + bw once per model; per prompt there
// remain Z [4096, r + 2] times the few rows of B's projections against the tokens.
//
// Tokens -> image (the second layer's `cross_attn_token_to_image`): head h's scores against
// query q are inv * (E Wg_h^T q + Z (B Wg_h^T q)) + ((b1 + PE) W_h^T + bw_h) q, and its output
// sum_p a_p (k1_p Wv_h^T + bv_h) = sum_p a_p inv_p (E Wgv_h^T)_p + (sum_p a_p inv_p Z_p) B Wgv_h^T
// + b1 Wv_h^T + bv_h, the weights a summing to 1. Image -> tokens: its queries, scored against the
// tokens' keys the same way. About a third of the multiply-adds of the products with the image
// rows, the same function up to float rounding (LowRankSecondLayerTests).
import SAMTensor

/// The per-model parts of the rewrite above and the per-image and per-prompt steps.
struct LowRankSecondLayer: Sendable {
  /// [Wk; Wv; Wq] diag(g1), packed: the tokens-to-image keys and values and the image-to-token
  /// queries, [3 x 128, C].
  let weights: PackedWeight
  /// (b1 + PE) W^T + bw for the tokens-to-image keys and the image-to-token queries, [4096, 128]
  /// each, transposed for `headScores`.
  let positionalKeys: TransposedRows
  let positionalQueries: TransposedRows
  /// b1 Wv^T + bv [128]: the values' part that is the same for every image row.
  let valueOffset: [Float]
  /// c1 [C], the first image-to-token attention's out_proj bias.
  let firstOutBias: [Float]
  let heads: Int
  let internalDim: Int

  /// The second layer (`block`) of a transformer whose first layer normalizes its keys with
  /// `firstNorm` (norm4) after out_proj bias `firstOutBias`; imagePE [4096, C].
  init(_ block: TwoWayAttentionBlock, firstNorm: LayerNorm, firstOutBias: Tensor, imagePE: Tensor) {
    let (tokenToImage, imageToToken) = (block.crossAttnTokenToImage, block.crossAttnImageToToken)
    precondition(
      tokenToImage.internalDim == imageToToken.internalDim && tokenToImage.numHeads == imageToToken.numHeads,
      "LowRankSecondLayer: the two cross-attentions differ in width or heads")
    let channels = firstNorm.weight.count
    let projections = [tokenToImage.kProj, tokenToImage.vProj, imageToToken.qProj]
    let gain = firstNorm.weight.data
    var stacked = [Float]()
    for projection in projections {
      for (i, value) in projection.weight.data.enumerated() { stacked.append(value * gain[i % channels]) }
    }
    weights = PackedWeight(Tensor(shape: [stacked.count / channels, channels], data: stacked))
    var offsetRows = imagePE
    addRowVector(&offsetRows, firstNorm.bias)
    positionalKeys = TransposedRows(tokenToImage.kProj(offsetRows))
    positionalQueries = TransposedRows(imageToToken.qProj(offsetRows))
    valueOffset = tokenToImage.vProj(firstNorm.bias.reshaped([1, channels])).data
    self.firstOutBias = firstOutBias.data
    heads = tokenToImage.numHeads
    internalDim = tokenToImage.internalDim
  }

  /// E Wg^T for the keys E [4096, C] the first layer starts from: once per image.
  struct ImageSide: Sendable {
    let keys: TransposedRows  // [4096, 128]
    let values: Tensor  // [4096, 128]
    let queries: TransposedRows  // [4096, 128]
  }

  func imageSide(_ keys: Tensor) -> ImageSide {
    let all = linear(keys, packed: weights, bias: nil)  // [4096, 3 x 128]
    let width = internalDim
    return ImageSide(
      keys: TransposedRows(columns(all, 0..<width)), values: columns(all, width..<(2 * width)),
      queries: TransposedRows(columns(all, (2 * width)..<(3 * width))))
  }

  /// What a prompt's steps share: Z [4096, r + 2, zero-padded to a multiple of 16] and the basis
  /// B projected, [rows of Z's width, 128] for each of the keys, values and queries.
  struct Prompt {
    let coefficients: Tensor
    let inverse: [Float]
    let keys: Tensor
    let values: Tensor
    let queries: Tensor
  }

  /// The prompt's part from the first layer's update of the image side.
  func prompt(_ update: ImageToTokenUpdate) -> Prompt {
    let (rows, rank) = (update.weights.shape[0], update.weights.shape[1])
    let channels = update.values.shape[1]
    let width = (rank + 2 + 15) / 16 * 16
    let z = joinColumns(
      [
        update.weights, Tensor(shape: [rows, 1], data: [Float](repeating: 1, count: rows)),
        Tensor(shape: [rows, 1], data: update.mean.map { -$0 }),
      ], width: width)
    var basis = update.values.data + firstOutBias + [Float](repeating: 1, count: channels)
    basis += [Float](repeating: 0, count: (width - rank - 2) * channels)
    let projected = linear(Tensor(shape: [width, channels], data: basis), packed: weights, bias: nil)
    return Prompt(
      coefficients: z, inverse: update.inverse,
      keys: columns(projected, 0..<internalDim), values: columns(projected, internalDim..<(2 * internalDim)),
      queries: columns(projected, (2 * internalDim)..<(3 * internalDim)))
  }

  /// The second layer's tokens-to-image attention (`attention`) of one prompt: queries [Nt, C]
  /// (tokens + PE) -> [Nt, C], out_proj included; what `DecoderAttention.attendTokensToImage`
  /// gives with the first layer's keys + PE and keys.
  func tokensToImage(
    queries: Tensor, attention: DecoderAttention, image: ImageSide, prompt: Prompt
  ) -> Tensor {
    let tokens = queries.shape[0]
    let depth = internalDim / heads
    let q = scale(attention.qProj(queries), by: 1 / Float(depth).squareRoot())  // [Nt, 128]
    var scores = lowRankScores(
      image: image.keys, positional: positionalKeys, basis: prompt.keys, tokens: q, prompt: prompt)
    let sums = exponentiateColumns(&scores)  // [4096, Nt x heads], token-major
    let weights = headMajorColumns(scores, heads: heads, rowScales: prompt.inverse)
    let imagePart = transposedHeadProducts(weights, values: image.values, heads: heads)  // [Nt, 128]
    let mixed = transposedProduct(weights, prompt.coefficients)  // [heads x Nt, width of Z]
    let basisPart = headDiagonalBlocks(matmul(mixed, prompt.values), heads: heads)  // [Nt, 128]
    var values = [Float](repeating: 0, count: tokens * internalDim)
    for t in 0..<tokens {
      for c in 0..<internalDim {
        let i = t * internalDim + c
        values[i] = (imagePart.data[i] + basisPart.data[i]) / sums[t * heads + c / depth] + valueOffset[c]
      }
    }
    return attention.outProj(Tensor(shape: [tokens, internalDim], data: values))
  }

  /// The second layer's image-to-token scores (`attention`) of one prompt: keys [Nt, C] (tokens +
  /// PE) -> [4096, Nt x heads], column t x heads + h, what `DecoderAttention`'s image-to-token
  /// attention scores with the first layer's keys + PE as its image.
  func imageToTokenScores(keys: Tensor, attention: DecoderAttention, image: ImageSide, prompt: Prompt)
    -> Tensor
  {
    let depth = internalDim / heads
    let k = scale(attention.kProj(keys), by: 1 / Float(depth).squareRoot())  // [Nt, 128]
    return lowRankScores(
      image: image.queries, positional: positionalQueries, basis: prompt.queries, tokens: k, prompt: prompt)
  }

  /// inv * (image_h t_h + Z (basis_h t_h)) + positional_h t_h for each token t and head h:
  /// -> [4096, Nt x heads], column t x heads + h.
  private func lowRankScores(
    image: TransposedRows, positional: TransposedRows, basis: Tensor, tokens: Tensor, prompt: Prompt
  ) -> Tensor {
    let blocks = tokenMajorHeadBlocks(tokens, heads: heads)  // [Nt x heads, 128]
    let throughBasis = linear(
      prompt.coefficients, packed: PackedWeight(matmul(blocks, basis, transposeB: true)), bias: nil)
    return rowScaledSum(
      headScores(image, keys: tokens, heads: heads), throughBasis, rowScales: prompt.inverse,
      plus: headScores(positional, keys: tokens, heads: heads))
  }
}
