// Port of mobile_sam/modeling/tiny_vit_sam.py (TinyViT-5M image encoder, as `build_sam_vit_t` configures it).
import SAMTensor
import TorchCheckpoint

/// The `vit_t` configuration (build_sam.py `build_sam_vit_t`).
enum TinyViTConfig {
  static let embedDims = [64, 128, 160, 320]
  static let depths = [2, 2, 6, 2]
  static let numHeads = [2, 4, 5, 10]
  static let windowSizes = [7, 7, 14, 7]
  static let mlpRatio = 4
  static let mbconvExpandRatio = 4
  static let imageSize = 1024
  /// The neck's output: 256 channels on a 64x64 grid.
  static let neckChannels = 256
  static let gridSize = 64
}

/// `Conv2d_BN`: a bias-free convolution followed by BatchNorm, folded into one convolution with bias
/// at load time, as `Conv2d_BN.fuse` does (tiny_vit_sam.py).
struct Conv2dBN {
  let weight: Tensor  // [out, in / groups, k, k]
  let bias: Tensor  // [out]
  let stride: Int
  let padding: Int
  let depthwise: Bool
  /// The weight packed for our own GEMM (SAMTensor's PackedGEMM.swift), unless depthwise.
  let packed: PackedWeight?

  init(
    _ weights: CheckpointWeights, _ prefix: String, inChannels: Int, outChannels: Int,
    kernel: Int = 1, stride: Int = 1, padding: Int = 0, depthwise: Bool = false
  ) throws {
    let convWeight = try weights.take(
      "\(prefix).c.weight", shape: [outChannels, depthwise ? 1 : inChannels, kernel, kernel])
    let gamma = try weights.take("\(prefix).bn.weight", shape: [outChannels])
    let beta = try weights.take("\(prefix).bn.bias", shape: [outChannels])
    let mean = try weights.take("\(prefix).bn.running_mean", shape: [outChannels])
    let variance = try weights.take("\(prefix).bn.running_var", shape: [outChannels])
    let folded = foldBatchNorm(
      convWeight: convWeight, gamma: gamma, beta: beta, mean: mean, variance: variance, eps: 1e-5)
    self.weight = folded.weight
    self.bias = folded.bias
    self.stride = stride
    self.padding = padding
    self.depthwise = depthwise
    let pointwise = kernel == 1 && stride == 1 && padding == 0
    packed =
      depthwise ? nil : pointwise ? PackedWeight(folded.weight) : PackedWeight(convolution: folded.weight)
  }

  /// x [H, W, in] -> [Ho, Wo, out], then `activation` (fused into the convolution's output pass).
  /// With a `residual` [Ho, Wo, out] (1x1 convolutions only), activation(conv(x) + residual).
  func callAsFunction(_ x: Tensor, adding residual: Tensor? = nil, then activation: Activation = .identity)
    -> Tensor
  {
    guard let packed else {
      precondition(residual == nil, "Conv2dBN: a residual needs a 1x1 convolution, not a depthwise one")
      return depthwiseConv2d(
        x, weight: weight, bias: bias, stride: stride, padding: padding, activation: activation)
    }
    if packed.kernelH == 1 && packed.kernelW == 1 && stride == 1 && padding == 0 {
      return linear(x, packed: packed, bias: bias, activation: activation, residual: residual)
    }
    precondition(
      residual == nil,
      "Conv2dBN: a residual needs a 1x1 convolution, got weight \(weight.shape), stride \(stride)")
    return conv2d(x, packed: packed, bias: bias, stride: stride, padding: padding, activation: activation)
  }
}

/// `PatchEmbed`: two stride-2 3x3 convolutions, 1024 -> 256 per side.
struct PatchEmbed {
  let conv1: Conv2dBN  // seq.0
  let conv2: Conv2dBN  // seq.2

  init(_ weights: CheckpointWeights, _ prefix: String, inChannels: Int, embedDim: Int) throws {
    conv1 = try Conv2dBN(
      weights, "\(prefix).seq.0", inChannels: inChannels, outChannels: embedDim / 2, kernel: 3, stride: 2,
      padding: 1)
    conv2 = try Conv2dBN(
      weights, "\(prefix).seq.2", inChannels: embedDim / 2, outChannels: embedDim, kernel: 3, stride: 2,
      padding: 1)
  }

  /// x [1024, 1024, 3] -> [256, 256, embedDim]
  func callAsFunction(_ x: Tensor) -> Tensor {
    conv2(conv1(x, then: .gelu))
  }
}

/// `MBConv`: inverted residual block (1x1 expand, 3x3 depthwise, 1x1 project) of the first stage.
struct MBConv {
  let conv1: Conv2dBN
  let conv2: Conv2dBN
  let conv3: Conv2dBN

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, expandRatio: Int) throws {
    let hidden = dim * expandRatio
    conv1 = try Conv2dBN(weights, "\(prefix).conv1", inChannels: dim, outChannels: hidden)
    conv2 = try Conv2dBN(
      weights, "\(prefix).conv2", inChannels: hidden, outChannels: hidden, kernel: 3, padding: 1,
      depthwise: true)
    conv3 = try Conv2dBN(weights, "\(prefix).conv3", inChannels: hidden, outChannels: dim)
    fused = InvertedResidualWeights(
      expand: conv1.packed ?? PackedWeight(conv1.weight), expandBias: conv1.bias, depthwise: conv2.weight,
      depthwiseBias: conv2.bias, project: conv3.packed ?? PackedWeight(conv3.weight), projectBias: conv3.bias)
  }

  /// The three convolutions for `invertedResidual`, which runs them a row at a time.
  let fused: InvertedResidualWeights

  /// x [H, W, dim] -> [H, W, dim]: gelu(conv3(gelu(conv2(gelu(conv1(x))))) + x), the same values
  /// as the three layers one after the other, without the two 4x wider intermediate tensors.
  func callAsFunction(_ x: Tensor) -> Tensor {
    invertedResidual(x, weights: fused)
  }
}

/// `PatchMerging`: 1x1, depthwise 3x3 (stride 2), 1x1.
/// Quirk of the reference: the stride is 1 when the output width is 320 (or 448/576), so the last
/// stage stays at 64x64: 256 -> 128 -> 64 -> 64.
struct PatchMerging {
  let conv1: Conv2dBN
  let conv2: Conv2dBN
  let conv3: Conv2dBN

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, outDim: Int) throws {
    let stride = [320, 448, 576].contains(outDim) ? 1 : 2
    conv1 = try Conv2dBN(weights, "\(prefix).conv1", inChannels: dim, outChannels: outDim)
    conv2 = try Conv2dBN(
      weights, "\(prefix).conv2", inChannels: outDim, outChannels: outDim, kernel: 3, stride: stride,
      padding: 1,
      depthwise: true)
    conv3 = try Conv2dBN(weights, "\(prefix).conv3", inChannels: outDim, outChannels: outDim)
  }

  /// x [H, W, dim] -> [H / stride, W / stride, outDim]
  func callAsFunction(_ x: Tensor) -> Tensor {
    conv3(conv2(conv1(x, then: .gelu), then: .gelu))
  }
}

/// `Mlp`: LayerNorm, fc1, GELU, fc2.
struct TinyViTMlp {
  let norm: LayerNorm
  let fc1: Linear
  let fc2: Linear

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, hidden: Int) throws {
    norm = try LayerNorm(weights, "\(prefix).norm", dim: dim, eps: 1e-5)
    fc1 = try Linear(weights, "\(prefix).fc1", inFeatures: dim, outFeatures: hidden, pack: true)
    fc2 = try Linear(weights, "\(prefix).fc2", inFeatures: hidden, outFeatures: dim, pack: true)
  }

  /// x + mlp(x) when `residual` is x (the block's residual, added in fc2's output pass).
  func callAsFunction(_ x: Tensor, adding residual: Tensor? = nil) -> Tensor {
    fc2(fc1(norm(x), then: .gelu), adding: residual)
  }
}

/// `Attention` of TinyViT: LayerNorm, fused qkv, multi-head attention with a learned bias per
/// relative offset within the window, output projection. Applied here to the whole grid with its
/// windows, as `TinyViTBlock.forward` applies it to the padded, partitioned grid.
struct TinyViTAttention {
  let norm: LayerNorm
  let qkv: Linear
  let proj: Linear
  let numHeads: Int
  let keyDim: Int
  let windowSize: Int
  /// `attention_biases[:, attention_bias_idxs]`, gathered once at load: [heads, N, N], N = window^2.
  /// (The reference caches the same tensor as `ab` when `.eval()` is called.)
  let bias: Tensor
  /// qkv(norm(0)): the qkv row of a zero-padded token, the same for every padded token. [3 * dim]
  let paddingQKV: Tensor

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, numHeads: Int, windowSize: Int) throws {
    self.numHeads = numHeads
    self.windowSize = windowSize
    keyDim = dim / numHeads  // attn_ratio = 1, so d = key_dim
    norm = try LayerNorm(weights, "\(prefix).norm", dim: dim, eps: 1e-5)
    qkv = try Linear(weights, "\(prefix).qkv", inFeatures: dim, outFeatures: 3 * dim, pack: true)
    proj = try Linear(weights, "\(prefix).proj", inFeatures: dim, outFeatures: dim, pack: true)
    let offsets = relativeOffsetIndices(windowSize: windowSize)
    let biases = try weights.take("\(prefix).attention_biases", shape: [numHeads, offsets.count])
    bias = gatherAttentionBiases(biases, indices: offsets.indices)
    var padding = qkv(norm(Tensor(zeros: [1, dim])))
    padding.shape = [3 * dim]
    paddingQKV = padding
  }

  /// x [H, W, dim] -> [H, W, dim]: attention within windowSize x windowSize windows.
  /// Quirks of the reference: the grid is zero-padded at the bottom and right to a multiple of the
  /// window (128 -> 133, 64 -> 70) BEFORE this LayerNorm, and the padded tokens are not masked: they
  /// take part in every window's softmax as keys. LayerNorm and qkv act on each token alone, so they
  /// run on the real tokens only and every padded token gets `paddingQKV`. And qkv is interleaved
  /// per head, `view(B, N, heads, -1).split([kd, kd, d], dim=3)`: `windowedAttention` reads it so.
  /// With `residual` (the block's input), residual + attention(x), added in proj's output pass.
  func callAsFunction(_ x: Tensor, adding residual: Tensor? = nil) -> Tensor {
    let qkvOut = qkv(norm(x))  // (H, W, heads * [q, k, v] * kd)
    let attended = windowedAttention(
      qkv: qkvOut, paddingRow: paddingQKV, windowSize: windowSize, heads: numHeads, keyDim: keyDim,
      bias: bias, scale: 1 / Float(keyDim).squareRoot())  // (H, W, heads * kd)
    return proj(attended, adding: residual)
  }
}

/// `TinyViTBlock`: windowed attention, a depthwise "local" convolution, and an MLP, with residuals.
struct TinyViTBlock {
  let attn: TinyViTAttention
  let localConv: Conv2dBN
  let mlp: TinyViTMlp

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, numHeads: Int, windowSize: Int) throws {
    attn = try TinyViTAttention(
      weights, "\(prefix).attn", dim: dim, numHeads: numHeads, windowSize: windowSize)
    localConv = try Conv2dBN(
      weights, "\(prefix).local_conv", inChannels: dim, outChannels: dim, kernel: 3, padding: 1,
      depthwise: true)
    mlp = try TinyViTMlp(weights, "\(prefix).mlp", dim: dim, hidden: dim * TinyViTConfig.mlpRatio)
  }

  /// x [H, W, dim] -> [H, W, dim]
  func callAsFunction(_ x: Tensor) -> Tensor {
    let y = localConv(attn(x, adding: x))  // x + attn(x), then the local convolution
    return mlp(y, adding: y)  // y + mlp(y)
  }
}

/// TinyViT with SAM's neck: [1024, 1024, 3] normalized image -> [64, 64, 256] embedding.
struct TinyViT {
  let patchEmbed: PatchEmbed
  let convBlocks: [MBConv]  // layers.0.blocks
  let convDownsample: PatchMerging  // layers.0.downsample
  /// layers.1 ... layers.3: blocks and, except for the last, a downsample.
  let stages: [(blocks: [TinyViTBlock], downsample: PatchMerging?)]
  let neckConv1: PackedWeight  // neck.0, 1x1 320 -> 256, no bias
  let neckNorm1: LayerNorm  // neck.1, LayerNorm2d
  let neckConv2: PackedWeight  // neck.2, 3x3 256 -> 256, no bias
  let neckNorm2: LayerNorm  // neck.3, LayerNorm2d

  init(_ weights: CheckpointWeights, _ prefix: String) throws {
    let dims = TinyViTConfig.embedDims
    patchEmbed = try PatchEmbed(weights, "\(prefix).patch_embed", inChannels: 3, embedDim: dims[0])
    convBlocks = try (0..<TinyViTConfig.depths[0]).map {
      try MBConv(
        weights, "\(prefix).layers.0.blocks.\($0)", dim: dims[0], expandRatio: TinyViTConfig.mbconvExpandRatio
      )
    }
    convDownsample = try PatchMerging(weights, "\(prefix).layers.0.downsample", dim: dims[0], outDim: dims[1])
    var stages: [(blocks: [TinyViTBlock], downsample: PatchMerging?)] = []
    for layer in 1..<dims.count {
      let blocks = try (0..<TinyViTConfig.depths[layer]).map {
        try TinyViTBlock(
          weights, "\(prefix).layers.\(layer).blocks.\($0)", dim: dims[layer],
          numHeads: TinyViTConfig.numHeads[layer],
          windowSize: TinyViTConfig.windowSizes[layer])
      }
      let downsample =
        layer < dims.count - 1
        ? try PatchMerging(
          weights, "\(prefix).layers.\(layer).downsample", dim: dims[layer], outDim: dims[layer + 1])
        : nil
      stages.append((blocks, downsample))
    }
    self.stages = stages
    let neck = TinyViTConfig.neckChannels
    neckConv1 = PackedWeight(try weights.take("\(prefix).neck.0.weight", shape: [neck, dims[3], 1, 1]))
    neckNorm1 = try LayerNorm(weights, "\(prefix).neck.1", dim: neck, eps: 1e-6)
    neckConv2 = PackedWeight(
      convolution: try weights.take("\(prefix).neck.2.weight", shape: [neck, neck, 3, 3]))
    neckNorm2 = try LayerNorm(weights, "\(prefix).neck.3", dim: neck, eps: 1e-6)
  }

  /// x [1024, 1024, 3] -> [64, 64, 256]
  func callAsFunction(_ x: Tensor) -> Tensor {
    var h = patchEmbed(x)  // (256, 256, 64)
    for block in convBlocks { h = block(h) }
    h = convDownsample(h)  // (128, 128, 128)
    for stage in stages {
      for block in stage.blocks { h = block(h) }
      if let downsample = stage.downsample { h = downsample(h) }  // (64, 64, 160), then (64, 64, 320)
    }
    // The reference views the tokens as a 64x64 grid here (`x.view(B, 64, 64, C)`).
    h = linear(h, packed: neckConv1, bias: nil)  // the 1x1 convolution
    h = neckNorm1(h)
    h = conv2d(h, packed: neckConv2, bias: nil, stride: 1, padding: 1)
    return neckNorm2(h)  // (64, 64, 256)
  }
}

/// Folds BatchNorm (eval mode) into the preceding bias-free convolution, as `Conv2d_BN.fuse`:
/// w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps).
func foldBatchNorm(
  convWeight: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, eps: Float
) -> (weight: Tensor, bias: Tensor) {
  let outChannels = convWeight.shape[0]
  let perChannel = convWeight.count / outChannels
  let (gamma, beta, mean, variance) = (gamma.data, beta.data, mean.data, variance.data)
  var weight = convWeight.data  // a copy of our own when the checkpoint's tensor is borrowed
  var bias = [Float](repeating: 0, count: outChannels)
  for o in 0..<outChannels {
    let factor = gamma[o] / (variance[o] + eps).squareRoot()
    for i in 0..<perChannel { weight[o * perChannel + i] *= factor }
    bias[o] = beta[o] - mean[o] * factor
  }
  return (Tensor(shape: convWeight.shape, data: weight), Tensor(shape: [outChannels], data: bias))
}

/// The reference's `attention_bias_idxs`: for every pair of positions in a window, the index of
/// their offset (|dy|, |dx|), numbered in order of first appearance.
func relativeOffsetIndices(windowSize: Int) -> (indices: [Int], count: Int) {
  var offsetIndex: [Int: Int] = [:]
  var indices: [Int] = []
  let points = (0..<windowSize).flatMap { y in (0..<windowSize).map { x in (y, x) } }
  indices.reserveCapacity(points.count * points.count)
  for p1 in points {
    for p2 in points {
      let key = abs(p1.0 - p2.0) * windowSize + abs(p1.1 - p2.1)
      if let index = offsetIndex[key] {
        indices.append(index)
      } else {
        offsetIndex[key] = offsetIndex.count
        indices.append(offsetIndex.count - 1)
      }
    }
  }
  return (indices, offsetIndex.count)
}

/// biases [heads, offsets] -> [heads, N, N] with N * N = indices.count.
func gatherAttentionBiases(_ biases: Tensor, indices: [Int]) -> Tensor {
  let heads = biases.shape[0]
  let offsets = biases.shape[1]
  let n = Int(Double(indices.count).squareRoot())
  let values = biases.data
  var out = [Float](repeating: 0, count: heads * n * n)
  for h in 0..<heads {
    for (i, index) in indices.enumerated() {
      out[h * indices.count + i] = values[h * offsets + index]
    }
  }
  return Tensor(shape: [heads, n, n], data: out)
}
