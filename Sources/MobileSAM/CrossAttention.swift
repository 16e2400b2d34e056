// The two-way transformer's cross-attentions (mobile_sam/modeling/transformer.py, `Attention`
// between the prompt tokens and the 4096 image tokens) computed without projecting the image side.
// The projections are linear, so by associativity a head's scores and values can be formed on the
// few tokens' side instead: about a third of the multiply-adds per prompt, and the same function
// as `DecoderAttention.callAsFunction` up to float rounding (CrossAttentionTests checks it).
import SAMTensor

extension DecoderAttention {
  /// Tokens attending to the image, for one prompt: queries [Nt, C] (tokens + PE),
  /// imageKeys [4096, C] (image + PE), imageValues [4096, C] -> [Nt, C], out_proj included.
  ///
  /// Head h's scores are q_h (x Wk_h^T + bk_h)^T = (q_h Wk_h) x^T + q_h bk_h: the last term is the
  /// same for every image token of a query row, and softmax ignores a row's constant, so it is
  /// dropped. Its output is A_h (x Wv_h^T + bv_h) = (A_h x) Wv_h^T + bv_h, A_h's rows summing to 1.
  /// GEMMs of [4096, 256] x [256, 8 Nt] and [8 Nt, 4096] x [4096, 256] replace k_proj and v_proj
  /// of 4096 tokens ([4096, 256] x [256, 128] each).
  func attendTokensToImage(queries: Tensor, imageKeys: Tensor, imageValues: Tensor) -> Tensor {
    // (4096, heads * Nt): the scores as the image rows see them, on the packed GEMM, which reads
    // the rows in place, and so does the product with the values (OpenBLAS copied all 4096 rows
    // for both products, on every call).
    var scores = linear(imageKeys, packed: tokenQueryHeads(queries), bias: nil)
    return attendTokensToImage(scores: &scores, imageValues: imageValues)
  }

  /// The queries' side of the scores: queries [Nt, C] -> (heads * Nt, C) packed, row (h, t) =
  /// q_h[t] Wk_h / sqrt(d), so that image keys [4096, C] through it give the scores [4096, heads * Nt].
  func tokenQueryHeads(_ queries: Tensor) -> PackedWeight {
    let headDim = internalDim / numHeads
    let q = qProj(queries)  // (Nt, 128)
    return PackedWeight(
      matmul(headBlockDiagonal(q, heads: numHeads), kProj.weight, alpha: 1 / Float(headDim).squareRoot()))
  }

  /// The rest from the scores [4096, heads * Nt] (image keys through `tokenQueryHeads`, overwritten)
  /// and imageValues [4096, C] -> [Nt, C], out_proj included.
  func attendTokensToImage(scores: inout Tensor, imageValues: Tensor) -> Tensor {
    let mixed = attendColumns(&scores, values: imageValues)  // (heads * Nt, 256): A_h x
    let valueHeads = headDiagonalBlocks(vProj(mixed), heads: numHeads)  // (Nt, 128)
    return outProj(valueHeads)
  }

  /// The image attending to the tokens, for one prompt, added to `residual` [4096, C] and
  /// normalized by `norm`: image [4096, C] (image + PE), keys [Nt, C] (tokens + PE), values
  /// [Nt, C], positional [4096, C] -> (normalized, normalized + positional, the update), the next
  /// layer's keys and keys + PE and what this attention added to the image side.
  ///
  /// Head h's scores are (x Wq_h^T + bq_h) k_h^T = x (Wq_h^T k_h^T) + bq_h k_h^T; the second term
  /// differs between tokens, so it stays (a bias per score column). The output projection of the
  /// heads' outputs A_h v_h is sum_h A_h (v_h Wout_h^T): [4096, Nt * 8] x [Nt * 8, 256], one NN GEMM
  /// accumulated onto residual + bias (no transposed operand, no copy of the residual).
  func attendImageToTokens(
    image: Tensor, keys: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm, positional: Tensor
  ) -> (Tensor, Tensor, ImageToTokenUpdate) {
    imageAttendsToTokens(
      scores: imageToTokenScores(image: image, keys: keys), values: values, residual: residual, norm: norm,
      positional: positional, probe: nil)
  }

  /// The same when the next attention is the only reader of normalized + positional: its query
  /// heads `next` (`tokenQueryHeads` of its queries) score those rows inside the norm's kernel,
  /// while they are in cache, and they are not kept -> (normalized, the next attention's scores
  /// [4096, next.outFeatures], the update). The same bits as scoring the returned rows afterwards.
  func attendImageToTokens(
    image: Tensor, keys: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm, positional: Tensor,
    scoringNext next: PackedWeight
  ) -> (Tensor, Tensor, ImageToTokenUpdate) {
    imageAttendsToTokens(
      scores: imageToTokenScores(image: image, keys: keys), values: values, residual: residual, norm: norm,
      positional: positional, probe: next)
  }

  /// The same from scores computed beforehand ([4096, Nt * heads], column t * heads + h: the
  /// image's queries against the tokens' keys, `LowRankSecondLayer.imageToTokenScores`).
  func attendImageToTokens(
    scores: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm, positional: Tensor,
    scoringNext next: PackedWeight
  ) -> (Tensor, Tensor, ImageToTokenUpdate) {
    imageAttendsToTokens(
      scores: scores, values: values, residual: residual, norm: norm, positional: positional, probe: next)
  }

  /// (4096, Nt * heads): column (t, h) = the image q-projected, head h, against k_h[t] / sqrt(d).
  /// On our packed GEMM, which reads the image's rows in place (OpenBLAS copied all 4096 of them).
  private func imageToTokenScores(image: Tensor, keys: Tensor) -> Tensor {
    let keyBlocks = tokenMajorHeadBlocks(kProj(keys), heads: numHeads)  // (Nt * heads, 128)
    let scale = 1 / Float(internalDim / numHeads).squareRoot()
    let queryWeights = matmul(keyBlocks, qProj.weight, alpha: scale)  // (Nt * heads, 256)
    let scoreBias = matmul(keyBlocks, qProj.bias.reshaped([internalDim, 1]), alpha: scale)  // (Nt * heads, 1)
    return linear(image, packed: PackedWeight(queryWeights), bias: scoreBias.reshaped([keyBlocks.shape[0]]))
  }

  /// The same with the image side's queries already projected: projectedImage [4096, 128] =
  /// q_proj(image + PE), transposed (`TwoWayAttentionBlock.ImageSide`, computed once per image).
  /// Each head's scores come from its own 16 projected values (`headScores`): an eighth of the
  /// multiply-adds of the product with the keys' head blocks, the same scores.
  func attendImageToTokens(
    projectedImage: TransposedRows, keys: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm,
    positional: Tensor
  ) -> (Tensor, Tensor, ImageToTokenUpdate) {
    let scale = 1 / Float(internalDim / numHeads).squareRoot()
    // (4096, Nt * heads)
    let scores = headScores(projectedImage, keys: SAMTensor.scale(kProj(keys), by: scale), heads: numHeads)
    return imageAttendsToTokens(
      scores: scores, values: values, residual: residual, norm: norm, positional: positional, probe: nil)
  }

  /// The same without the normalized + positional rows (the next layer does not read them):
  /// -> (normalized, the update).
  func attendImageToTokens(
    projectedImage: TransposedRows, keys: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm
  ) -> (Tensor, ImageToTokenUpdate) {
    let scale = 1 / Float(internalDim / numHeads).squareRoot()
    var weights = headScores(projectedImage, keys: SAMTensor.scale(kProj(keys), by: scale), heads: numHeads)
    softmaxOverStridedGroups(&weights, lanes: numHeads)
    let projectedValues = self.projectedValues(values)
    let (normalized, mean, inverse) = layerNormOfProductAndResidual(
      weights, projectedValues, residual: residual, bias: outProj.bias, normWeight: norm.weight,
      normBias: norm.bias, eps: norm.eps)
    return (
      normalized, ImageToTokenUpdate(weights: weights, values: projectedValues, mean: mean, inverse: inverse)
    )
  }

  /// (Nt * heads, 256): row (t, h) = v_h[t] Wout_h^T
  private func projectedValues(_ values: Tensor) -> Tensor {
    linear(tokenMajorHeadBlocks(vProj(values), heads: numHeads), weight: outProj.weight, bias: nil)
  }

  /// scores [4096, Nt * heads] (a row holds one image token's scores, the heads of a token
  /// adjacent) -> norm(residual + out_proj(attention output)) and that + positional, [4096, C] each
  /// (without a probe; with one, that + positional through it instead), and what was added before
  /// the norm (`ImageToTokenUpdate`, for `LowRankUpscalingInput`).
  private func imageAttendsToTokens(
    scores: Tensor, values: Tensor, residual: Tensor, norm: LayerNorm, positional: Tensor,
    probe: PackedWeight?
  ) -> (Tensor, Tensor, ImageToTokenUpdate) {
    var weights = scores
    softmaxOverStridedGroups(&weights, lanes: numHeads)
    let projectedValues = self.projectedValues(values)
    if let probe {
      let (normalized, probed, mean, inverse) = layerNormOfProductAndResidual(
        weights, projectedValues, residual: residual, bias: outProj.bias, normWeight: norm.weight,
        normBias: norm.bias, eps: norm.eps, offset: positional, probe: probe)
      return (
        normalized, probed,
        ImageToTokenUpdate(weights: weights, values: projectedValues, mean: mean, inverse: inverse)
      )
    }
    let (normalized, withPositional, mean, inverse) = layerNormOfProductAndResidual(
      weights, projectedValues, residual: residual, bias: outProj.bias, normWeight: norm.weight,
      normBias: norm.bias, eps: norm.eps, offset: positional)
    return (
      normalized, withPositional,
      ImageToTokenUpdate(weights: weights, values: projectedValues, mean: mean, inverse: inverse)
    )
  }
}
