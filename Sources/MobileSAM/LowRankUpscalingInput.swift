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
// per prompt the rest is the basis [P1 Wgg; P2 Wg; constant rows] of 2r + 4 rows, and the
// upscaling's row step forms its pixels' rows as one product [pixels, 2r + 4] x [2r + 4, 4 C1]
// plus the scaled E Wgg rows (`LowRankFirstStage`, UpscalingProducts.swift).
import SAMTensor

/// The per-model parts of the rewrite above (weights and constant rows), and the per-image and
/// per-prompt steps.
struct LowRankUpscalingInput: Sendable {
  /// Wgg = diag(g1 g2) W and Wg = diag(g2) W, W the convolution as a [C, 4 C1] GEMM, packed as
  /// linear layers [4 C1, C].
  let weightGG: PackedWeight
  let weightG: PackedWeight
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
    let (gTensor, ggTensor) = (
      Tensor(shape: [channels, outputs], data: g), Tensor(shape: [channels, outputs], data: gg)
    )
    weightGG = PackedWeight(transposed: ggTensor)
    weightG = PackedWeight(transposed: gTensor)
    let ones = [Float](repeating: 1, count: channels)
    let c2 = outBias2.data
    let first = matmul(Tensor(shape: [2, channels], data: outBias1.data + ones), ggTensor)
    let second = matmul(Tensor(shape: [2, channels], data: zip(b1, c2).map { $0 + $1 } + ones), gTensor)
    constantRows = Tensor(shape: [4, outputs], data: first.data + second.data)
    offset = add(matmul(Tensor(shape: [1, channels], data: b2), conv1).reshaped([outputs]), conv1Bias)
  }

  /// E Wgg for the keys E [4096, C] the transformer starts from: computed once per image.
  func imageSide(_ keys: Tensor) -> Tensor { linear(keys, packed: weightGG, bias: nil) }

  /// The convolution's output [N, 4 C1] (bias included) of the final keys, in the low-rank form
  /// the upscaling's row step evaluates, from the image side (`imageSide`) and the two layers'
  /// updates.
  func callAsFunction(imageSide: Tensor, first: ImageToTokenUpdate, second: ImageToTokenUpdate)
    -> LowRankFirstStage
  {
    let outputs = imageSide.shape[1]
    let (r1, r2) = (first.weights.shape[1], second.weights.shape[1])
    let basis = Tensor(
      shape: [r1 + r2 + 4, outputs],
      data: linear(first.values, packed: weightGG, bias: nil).data
        + linear(second.values, packed: weightG, bias: nil).data + constantRows.data)
    return LowRankFirstStage(
      side: imageSide, basis: basis, bias: offset.data, weights1: first.weights, mean1: first.mean,
      inverse1: first.inverse, weights2: second.weights, mean2: second.mean, inverse2: second.inverse)
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
