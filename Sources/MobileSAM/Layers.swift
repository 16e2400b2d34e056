// Small layers shared by the encoder and the decoder: nn.Linear, nn.LayerNorm / LayerNorm2d
// (mobile_sam/modeling/common.py), nn.Conv2d with bias, and the decoder's MLP (mask_decoder.py).
import SAMTensor
import TorchCheckpoint

/// `nn.Linear`: weight [out, in], bias [out].
struct Linear {
  let weight: Tensor
  let bias: Tensor
  /// The weight packed for our own GEMM (SAMTensor's PackedGEMM.swift), when asked for at load;
  /// otherwise the products run through OpenBLAS.
  let packed: PackedWeight?

  /// `pack`: TinyViT's layers (small weights, many rows) run faster with the packed GEMM.
  init(_ weights: CheckpointWeights, _ prefix: String, inFeatures: Int, outFeatures: Int, pack: Bool = false)
    throws
  {
    weight = try weights.take("\(prefix).weight", shape: [outFeatures, inFeatures])
    bias = try weights.take("\(prefix).bias", shape: [outFeatures])
    packed = pack ? PackedWeight(weight) : nil
  }

  /// x [..., in] -> [..., out], plus `residual` [..., out] when given, then `activation` (both
  /// fused into the GEMM's output pass).
  func callAsFunction(_ x: Tensor, adding residual: Tensor? = nil, then activation: Activation = .identity)
    -> Tensor
  {
    if let packed {
      return linear(x, packed: packed, bias: bias, activation: activation, residual: residual)
    }
    return linear(x, weight: weight, bias: bias, activation: activation, residual: residual)
  }
}

/// `nn.LayerNorm` over the last dimension; in channels-last layout it is also `LayerNorm2d`.
struct LayerNorm {
  let weight: Tensor
  let bias: Tensor
  let eps: Float

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, eps: Float) throws {
    weight = try weights.take("\(prefix).weight", shape: [dim])
    bias = try weights.take("\(prefix).bias", shape: [dim])
    self.eps = eps
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    layerNorm(x, weight: weight, bias: bias, eps: eps)
  }
}

/// `nn.Conv2d` with bias, groups = 1.
struct Conv2d {
  let weight: Tensor  // [out, in, k, k]
  let bias: Tensor  // [out]
  let stride: Int

  init(
    _ weights: CheckpointWeights, _ prefix: String, inChannels: Int, outChannels: Int, kernel: Int,
    stride: Int
  )
    throws
  {
    weight = try weights.take("\(prefix).weight", shape: [outChannels, inChannels, kernel, kernel])
    bias = try weights.take("\(prefix).bias", shape: [outChannels])
    self.stride = stride
  }

  /// x [H, W, in] -> [H / stride, W / stride, out]
  func callAsFunction(_ x: Tensor) -> Tensor {
    conv2d(x, weight: weight, bias: bias, stride: stride, padding: 0)
  }
}

/// `MLP` of mask_decoder.py: Linear layers with ReLU between them (no sigmoid in SAM's use).
struct DecoderMLP {
  let layers: [Linear]

  init(
    _ weights: CheckpointWeights, _ prefix: String, inputDim: Int, hiddenDim: Int, outputDim: Int,
    numLayers: Int
  )
    throws
  {
    let inputs = [inputDim] + Array(repeating: hiddenDim, count: numLayers - 1)
    let outputs = Array(repeating: hiddenDim, count: numLayers - 1) + [outputDim]
    layers = try (0..<numLayers).map {
      try Linear(weights, "\(prefix).layers.\($0)", inFeatures: inputs[$0], outFeatures: outputs[$0])
    }
  }

  func callAsFunction(_ x: Tensor) -> Tensor {
    var h = x
    for (i, layer) in layers.enumerated() {
      h = layer(h)
      if i < layers.count - 1 { h = relu(h) }
    }
    return h
  }
}
