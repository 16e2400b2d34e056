// Port of segment_anything/modeling/image_encoder.py (the ViT image encoder of SAM vit_b/l/h, as
// build_sam.py `_build_sam` configures it).
import SAMTensor
import TorchCheckpoint

/// The architecture of a ViT encoder, read from a checkpoint's shapes (never from its name).
struct ViTConfig: Equatable {
  /// Fixed by `_build_sam`: what the rest of the engine (1024 input, 64x64 embedding) assumes.
  static let imageSize = 1024
  static let patchSize = 16
  static let windowSize = 14
  static let gridSize = imageSize / patchSize

  var embedDim: Int
  var depth: Int
  var numHeads: Int
  var mlpDim: Int
  var globalAttnIndexes: [Int]

  var headDim: Int { embedDim / numHeads }

  /// The official configurations of build_sam.py.
  static let vitB = ViTConfig(
    embedDim: 768, depth: 12, numHeads: 12, mlpDim: 3072, globalAttnIndexes: [2, 5, 8, 11])
  static let vitL = ViTConfig(
    embedDim: 1024, depth: 24, numHeads: 16, mlpDim: 4096, globalAttnIndexes: [5, 11, 17, 23])
  static let vitH = ViTConfig(
    embedDim: 1280, depth: 32, numHeads: 16, mlpDim: 5120, globalAttnIndexes: [7, 15, 23, 31])

  /// Reads the configuration from the keys and shapes under `prefix` (`image_encoder`). Errors say
  /// what was expected and what was found; nothing is allocated here.
  init(_ weights: CheckpointWeights, _ prefix: String) throws {
    func fail(_ reason: String) -> MobileSAMError {
      .checkpoint(file: weights.source, reason: "unsupported ViT encoder: \(reason)")
    }
    let patchKey = "\(prefix).patch_embed.proj.weight"
    guard let patch = weights.shape(of: patchKey) else {
      throw TorchCheckpointError.missingKey(file: weights.source, key: patchKey)
    }
    guard patch.count == 4, patch[1] == 3, patch[2] == patch[3], patch[0] > 0 else {
      throw fail("\(patchKey) has shape \(patch), expected [width, 3, 16, 16]")
    }
    guard patch[2] == Self.patchSize else {
      throw fail(
        "the patch size is \(patch[2]) (\(patchKey) has shape \(patch)); only 16x16 patches are supported")
    }
    embedDim = patch[0]
    let posKey = "\(prefix).pos_embed"
    guard let position = weights.shape(of: posKey) else {
      throw fail("\(posKey) is missing: encoders without absolute position embedding are not supported")
    }
    let grid = Self.gridSize
    guard position.count == 4, position[0] == 1, position[1] == position[2], position[3] == embedDim else {
      throw fail("\(posKey) has shape \(position), expected [1, \(grid), \(grid), \(embedDim)]")
    }
    guard position[1] == grid else {
      throw fail(
        "\(posKey) has shape \(position): a \(position[1])x\(position[1]) patch grid, an image size of"
          + " \(position[1] * Self.patchSize); only \(Self.imageSize)x\(Self.imageSize) images (a \(grid)x\(grid) grid)"
          + " are supported")
    }
    depth = 0
    while weights.contains("\(prefix).blocks.\(depth).norm1.weight") { depth += 1 }
    guard depth > 0 else { throw fail("no \(prefix).blocks.0.norm1.weight: no transformer blocks") }
    let relKey = "\(prefix).blocks.0.attn.rel_pos_h"
    guard let relative = weights.shape(of: relKey), relative.count == 2, relative[1] > 0 else {
      throw fail("\(relKey) is missing or not 2-D: encoders without relative positions are not supported")
    }
    guard embedDim % relative[1] == 0 else {
      throw fail(
        "\(relKey) has \(relative[1]) channels per head, which does not divide the width \(embedDim)")
    }
    numHeads = embedDim / relative[1]
    let mlpKey = "\(prefix).blocks.0.mlp.lin1.weight"
    guard let mlp = weights.shape(of: mlpKey), mlp.count == 2, mlp[0] > 0 else {
      throw fail("\(mlpKey) is missing or not 2-D")
    }
    mlpDim = mlp[0]
    // A global block's tables span the whole grid (2 * 64 - 1 offsets), a windowed block's one
    // 14x14 window (2 * 14 - 1).
    var global: [Int] = []
    for index in 0..<depth {
      let key = "\(prefix).blocks.\(index).attn.rel_pos_h"
      let rows = weights.shape(of: key)?.first ?? 0
      switch rows {
      case 2 * grid - 1: global.append(index)
      case 2 * Self.windowSize - 1: break
      default:
        throw fail(
          "\(key) has \(rows) rows; expected \(2 * grid - 1) (global attention) or"
            + " \(2 * Self.windowSize - 1) (14x14 windows)")
      }
    }
    globalAttnIndexes = global
  }

  init(embedDim: Int, depth: Int, numHeads: Int, mlpDim: Int, globalAttnIndexes: [Int]) {
    self.embedDim = embedDim
    self.depth = depth
    self.numHeads = numHeads
    self.mlpDim = mlpDim
    self.globalAttnIndexes = globalAttnIndexes
  }
}

/// `PatchEmbed`: a 16x16 stride-16 convolution, [1024, 1024, 3] -> [64, 64, dim].
struct ViTPatchEmbed {
  let proj: Conv2d

  init(_ weights: CheckpointWeights, _ prefix: String, embedDim: Int) throws {
    proj = try Conv2d(
      weights, "\(prefix).proj", inChannels: 3, outChannels: embedDim, kernel: ViTConfig.patchSize,
      stride: ViTConfig.patchSize)
  }

  /// x [1024, 1024, 3] -> [64, 64, dim] (the reference's conv output permuted to B H W C).
  func callAsFunction(_ x: Tensor) -> Tensor { proj(x) }
}

/// `MLPBlock` (segment_anything/modeling/common.py) with GELU, as the encoder builds it (the
/// decoder's `MLPBlock` uses ReLU): lin1, GELU, lin2.
struct ViTMLPBlock {
  let lin1: Linear
  let lin2: Linear

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, mlpDim: Int) throws {
    lin1 = try Linear(weights, "\(prefix).lin1", inFeatures: dim, outFeatures: mlpDim)
    lin2 = try Linear(weights, "\(prefix).lin2", inFeatures: mlpDim, outFeatures: dim)
  }

  /// residual + mlp(x) when given (added in lin2's output pass).
  func callAsFunction(_ x: Tensor, adding residual: Tensor? = nil) -> Tensor {
    lin2(lin1(x, then: .gelu), adding: residual)
  }
}

/// `Attention` with `use_rel_pos`: fused qkv, multi-head attention with the decomposed
/// relative-position bias, output projection. `inputSize` is the side of the grid it attends
/// over: 14 for a windowed block, 64 for a global one.
struct ViTAttention {
  let qkv: Linear
  let proj: Linear
  let numHeads: Int
  let inputSize: Int
  /// `get_rel_pos(inputSize, inputSize, rel_pos_h / rel_pos_w)`, gathered once at load:
  /// [inputSize, inputSize, headDim] each.
  let tableH: Tensor
  let tableW: Tensor

  init(_ weights: CheckpointWeights, _ prefix: String, dim: Int, numHeads: Int, inputSize: Int) throws {
    self.numHeads = numHeads
    self.inputSize = inputSize
    let headDim = dim / numHeads
    qkv = try Linear(weights, "\(prefix).qkv", inFeatures: dim, outFeatures: 3 * dim)
    proj = try Linear(weights, "\(prefix).proj", inFeatures: dim, outFeatures: dim)
    let rows = 2 * inputSize - 1
    tableH = relativePositionTable(
      try weights.take("\(prefix).rel_pos_h", shape: [rows, headDim]), size: inputSize)
    tableW = relativePositionTable(
      try weights.take("\(prefix).rel_pos_w", shape: [rows, headDim]), size: inputSize)
  }

  var scale: Float { 1 / Float(qkv.weight.shape[1] / numHeads).squareRoot() }

  /// Attention over `groups` grids of inputSize x inputSize tokens given their qkv rows:
  /// qkvRows [groups, N, 3 * dim] -> [groups, N, dim], before `proj`.
  func attend(_ qkvRows: Tensor) -> Tensor {
    let (groups, tokens) = (qkvRows.shape[0], qkvRows.shape[1])
    let headDim = qkvRows.shape[2] / (3 * numHeads)
    let split = qkvRows.reshaped([groups, tokens, 3, numHeads, headDim])
    // `qkv.reshape(B, N, 3, heads, -1).permute(2, 0, 3, 1, 4).reshape(3, B * heads, N, -1)`
    let stacked = permute(split, [2, 0, 3, 1, 4]).reshaped([3, groups * numHeads, tokens, headDim])
    let attended = relativePositionAttention(
      qkv: stacked, tableH: tableH, tableW: tableW, height: inputSize, width: inputSize, scale: scale)
    // (groups * heads, N, hd) -> (groups, N, heads * hd): `view(B, heads, H, W, -1).permute(0, 2, 3, 1, 4)`
    return permute(attended.reshaped([groups, numHeads, tokens, headDim]), [0, 2, 1, 3])
      .reshaped([groups, tokens, numHeads * headDim])
  }
}

/// `Block`: pre-norm attention (windowed or global) and MLP, each with a residual.
struct ViTBlock {
  let norm1: LayerNorm
  let attn: ViTAttention
  let norm2: LayerNorm
  let mlp: ViTMLPBlock
  /// 14, or 0 for a global-attention block.
  let windowSize: Int

  init(_ weights: CheckpointWeights, _ prefix: String, config: ViTConfig, global: Bool) throws {
    let dim = config.embedDim
    windowSize = global ? 0 : ViTConfig.windowSize
    norm1 = try LayerNorm(weights, "\(prefix).norm1", dim: dim, eps: 1e-6)
    attn = try ViTAttention(
      weights, "\(prefix).attn", dim: dim, numHeads: config.numHeads,
      inputSize: global ? ViTConfig.gridSize : ViTConfig.windowSize)
    norm2 = try LayerNorm(weights, "\(prefix).norm2", dim: dim, eps: 1e-6)
    mlp = try ViTMLPBlock(weights, "\(prefix).mlp", dim: dim, mlpDim: config.mlpDim)
  }

  /// x [H, W, dim] -> [H, W, dim]
  func callAsFunction(_ x: Tensor) -> Tensor {
    let (height, width, dim) = (x.shape[0], x.shape[1], x.shape[2])
    // qkv acts on each token alone, so it runs on the real tokens before the windows are cut.
    let qkvOut = attn.qkv(norm1(x))  // (H, W, 3 * dim)
    var attended: Tensor
    if windowSize > 0 {
      // The reference pads the normed grid with zeros (64 -> 70) in `window_partition`: a padded
      // token's qkv is qkv(0) = the qkv bias. Padded tokens are keys of their windows (unmasked).
      let windows = windowPartition(qkvOut, windowSize: windowSize, paddingRow: attn.qkv.bias)
      // (25 windows, 196, 3 * dim)
      let perWindow = attn.attend(windows)  // (25, 196, dim)
      attended = windowUnpartition(perWindow, windowSize: windowSize, height: height, width: width)
    } else {
      attended = attn.attend(qkvOut.reshaped([1, height * width, 3 * dim]))  // (1, 4096, dim)
      attended.shape = [height, width, dim]
    }
    let y = attn.proj(attended, adding: x)  // x + attention
    return mlp(norm2(y), adding: y)  // y + mlp(norm2(y))
  }
}

/// `ImageEncoderViT`: [1024, 1024, 3] normalized image -> [64, 64, 256] embedding.
struct ImageEncoderViT {
  let config: ViTConfig
  let patchEmbed: ViTPatchEmbed
  let posEmbed: Tensor  // [1, 64, 64, dim]
  let blocks: [ViTBlock]
  let neckConv1: Tensor  // neck.0, 1x1 dim -> 256, no bias
  let neckNorm1: LayerNorm  // neck.1, LayerNorm2d
  let neckConv2: Tensor  // neck.2, 3x3 256 -> 256, no bias
  let neckNorm2: LayerNorm  // neck.3, LayerNorm2d

  init(_ weights: CheckpointWeights, _ prefix: String, config: ViTConfig) throws {
    self.config = config
    let dim = config.embedDim
    let grid = ViTConfig.gridSize
    patchEmbed = try ViTPatchEmbed(weights, "\(prefix).patch_embed", embedDim: dim)
    posEmbed = try weights.take("\(prefix).pos_embed", shape: [1, grid, grid, dim])
    blocks = try (0..<config.depth).map {
      try ViTBlock(
        weights, "\(prefix).blocks.\($0)", config: config, global: config.globalAttnIndexes.contains($0))
    }
    let neck = 256
    neckConv1 = try weights.take("\(prefix).neck.0.weight", shape: [neck, dim, 1, 1])
    neckNorm1 = try LayerNorm(weights, "\(prefix).neck.1", dim: neck, eps: 1e-6)
    neckConv2 = try weights.take("\(prefix).neck.2.weight", shape: [neck, neck, 3, 3])
    neckNorm2 = try LayerNorm(weights, "\(prefix).neck.3", dim: neck, eps: 1e-6)
  }

  /// x [1024, 1024, 3] -> [64, 64, 256]
  func callAsFunction(_ x: Tensor) -> Tensor {
    var h = patchEmbed(x)  // (64, 64, dim)
    addInPlace(&h, posEmbed.reshaped(h.shape))
    for block in blocks { h = block(h) }
    h = conv2d(h, weight: neckConv1, bias: nil, stride: 1, padding: 0)
    h = neckNorm1(h)
    h = conv2d(h, weight: neckConv2, bias: nil, stride: 1, padding: 1)
    return neckNorm2(h)  // (64, 64, 256)
  }
}
