// The mask decoder's first upscaling convolution (output_upscaling.0 of mask_decoder.py, a 2x2
// stride-2 ConvTranspose2d: one [C, 4 C1] product per grid cell) applied to the transformer's
// final image side, for a prompt without a mask input, in about half the multiply-adds.
//
// The image side a prompt leaves the transformer with is
//   x1 = E + c1 + A1 P1,   k1 = LN1(x1),   x2 = k1 + c2 + A2 P2,   k2 = LN2(x2)
// where E [4096, C] is the image embedding plus the no-mask embedding (the same for every such
// prompt), c1, c2 the out_proj biases of the two image-to-token attentions, A1, A2 [4096, r] their
// attention weights (r = heads x tokens) and P1, P2 [r, C] the values already through out_proj
// (CrossAttention.swift), LN1, LN2 the blocks' norm4. Writing LN(x) = g * (x - mean) * inv + b
// per row, with g, b the norm's weight and bias, mean and inv the row's statistics:
//   k2 W = inv2 * (inv1 * (E Wgg + A1 (P1 Wgg) + c1 Wgg - mean1 (1 Wgg))
//                  + A2 (P2 Wg) + (b1 + c2) Wg - mean2 (1 Wg)) + b2 W
// with Wg = diag(g2) W and Wgg = diag(g1 g2) W. E Wgg is computed once per image (`imageSide`);
// per prompt it is scaled per row and the rest is one product [4096, 2r + 4] x [2r + 4, 4 C1].
import SAMTensor

/// The per-model parts of the rewrite above (weights and constant rows), and the per-image and
/// per-prompt steps.
struct LowRankUpscalingInput: Sendable {
  /// Wgg = diag(g1 g2) W and Wg = diag(g2) W, W the convolution as a [C, 4 C1] GEMM.
  let weightGG: Tensor
  let weightG: Tensor
  /// [4, 4 C1]: c1 Wgg, 1 Wgg, (b1 + c2) Wg, 1 Wg (the constant terms' rows).
  let constantRows: Tensor
  /// [4 C1]: b2 W + the convolution's bias.
  let offset: Tensor

  /// conv1 [C, 4 C1] with its bias [4 C1] (each 2x2 output block's bias repeated), the two
  /// norm4 layers and the two out_proj biases.
  init(
    conv1: Tensor, conv1Bias: Tensor, norm1: LayerNorm, norm2: LayerNorm, outBias1: Tensor, outBias2: Tensor
  ) {
    let (channels, outputs) = (conv1.shape[0], conv1.shape[1])
    precondition(
      conv1Bias.count == outputs && norm1.weight.count == channels && norm2.weight.count == channels
        && outBias1.count == channels && outBias2.count == channels,
      "LowRankUpscalingInput: shapes of conv1 \(conv1.shape) and the norms or biases differ")
    let (g1, b1, g2, b2) = (norm1.weight.data, norm1.bias.data, norm2.weight.data, norm2.bias.data)
    let w = conv1.data
    var gg = [Float](repeating: 0, count: channels * outputs)
    var g = [Float](repeating: 0, count: channels * outputs)
    for c in 0..<channels {
      for o in 0..<outputs {
        g[c * outputs + o] = g2[c] * w[c * outputs + o]
        gg[c * outputs + o] = g1[c] * g2[c] * w[c * outputs + o]
      }
    }
    weightGG = Tensor(shape: [channels, outputs], data: gg)
    weightG = Tensor(shape: [channels, outputs], data: g)
    let ones = [Float](repeating: 1, count: channels)
    let c2 = outBias2.data
    let first = matmul(Tensor(shape: [2, channels], data: outBias1.data + ones), weightGG)
    let second = matmul(Tensor(shape: [2, channels], data: zip(b1, c2).map { $0 + $1 } + ones), weightG)
    constantRows = Tensor(shape: [4, outputs], data: first.data + second.data)
    offset = add(matmul(Tensor(shape: [1, channels], data: b2), conv1).reshaped([outputs]), conv1Bias)
  }

  /// E Wgg for the keys E [4096, C] the transformer starts from: computed once per image.
  func imageSide(_ keys: Tensor) -> Tensor { matmul(keys, weightGG) }

  /// The convolution's output [N, 4 C1] (bias included) of the final keys, from the image side
  /// (`imageSide`) and the two layers' updates.
  func callAsFunction(imageSide: Tensor, first: ImageToTokenUpdate, second: ImageToTokenUpdate) -> Tensor {
    let (tokens, outputs) = (imageSide.shape[0], imageSide.shape[1])
    let (r1, r2) = (first.weights.shape[1], second.weights.shape[1])
    precondition(
      first.weights.shape[0] == tokens && second.weights.shape[0] == tokens && first.mean.count == tokens
        && second.mean.count == tokens,
      "LowRankUpscalingInput: updates for \(first.weights.shape) and \(second.weights.shape), image \(tokens)"
    )
    let basis = Tensor(
      shape: [r1 + r2 + 4, outputs],
      data: matmul(first.values, weightGG).data + matmul(second.values, weightG).data + constantRows.data)
    let width = r1 + r2 + 4
    var coefficients = [Float](repeating: 0, count: tokens * width)
    var start = [Float](repeating: 0, count: tokens * outputs)
    let (a1, a2, side, bias) = (first.weights.data, second.weights.data, imageSide.data, offset.data)
    for i in 0..<tokens {
      let beta = second.inverse[i]
      let alpha = first.inverse[i] * beta
      let row = i * width
      for j in 0..<r1 { coefficients[row + j] = alpha * a1[i * r1 + j] }
      for j in 0..<r2 { coefficients[row + r1 + j] = beta * a2[i * r2 + j] }
      coefficients[row + r1 + r2] = alpha
      coefficients[row + r1 + r2 + 1] = -alpha * first.mean[i]
      coefficients[row + r1 + r2 + 2] = beta
      coefficients[row + r1 + r2 + 3] = -beta * second.mean[i]
      for o in 0..<outputs { start[i * outputs + o] = alpha * side[i * outputs + o] + bias[o] }
    }
    return matmul(
      Tensor(shape: [tokens, width], data: coefficients), basis,
      adding: Tensor(shape: [tokens, outputs], data: start))
  }
}

/// What one image-to-token attention added to the image side before its norm:
/// x = residual + bias + weights values, with weights [4096, r] (the attention weights, a token's
/// heads adjacent) and values [r, C] (the token values through out_proj); mean and inverse are
/// the norm's row statistics of x.
struct ImageToTokenUpdate: Sendable {
  let weights: Tensor
  let values: Tensor
  let mean: [Float]
  let inverse: [Float]
}
