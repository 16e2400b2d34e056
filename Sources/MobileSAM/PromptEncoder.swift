// Port of mobile_sam/modeling/prompt_encoder.py (PromptEncoder, PositionEmbeddingRandom).
import Foundation
import SAMTensor
import TorchCheckpoint

/// `PositionEmbeddingRandom`: random Fourier features of normalized coordinates.
struct PositionEmbeddingRandom {
  /// positional_encoding_gaussian_matrix [2, numPosFeats], read from the checkpoint.
  let gaussianMatrix: Tensor

  init(_ weights: CheckpointWeights, _ prefix: String, numPosFeats: Int) throws {
    gaussianMatrix = try weights.take(
      "\(prefix).positional_encoding_gaussian_matrix", shape: [2, numPosFeats])
  }

  var numPosFeats: Int { gaussianMatrix.shape[1] }

  /// `_pe_encoding` of one point with coordinates normalized to [0, 1]; writes 2 * numPosFeats
  /// values (sines, then cosines) into `out`. Float32 throughout, as the reference computes it.
  func encode(x: Float, y: Float, into out: inout [Float], at offset: Int) {
    let n = numPosFeats
    let cx = 2 * x - 1
    let cy = 2 * y - 1
    let twoPi = Float(2 * Double.pi)
    for j in 0..<n {
      let projected = twoPi * (cx * gaussianMatrix.data[j] + cy * gaussianMatrix.data[n + j])
      out[offset + j] = sin(projected)
      out[offset + n + j] = cos(projected)
    }
  }

  /// `forward(size)`: the encoding of every cell centre of an h x w grid -> [h, w, 2 * numPosFeats].
  func dense(height: Int, width: Int) -> Tensor {
    let channels = 2 * numPosFeats
    var out = [Float](repeating: 0, count: height * width * channels)
    for i in 0..<height {
      for j in 0..<width {
        // `grid.cumsum(dim) - 0.5` then `/ size`, in float32.
        let y = (Float(i + 1) - 0.5) / Float(height)
        let x = (Float(j + 1) - 0.5) / Float(width)
        encode(x: x, y: y, into: &out, at: (i * width + j) * channels)
      }
    }
    return Tensor(shape: [height, width, channels], data: out)
  }
}

/// `PromptEncoder`: sparse embeddings for points and box corners, dense embeddings for mask input.
struct PromptEncoder {
  static let embedDim = 256
  static let inputImageSize = 1024
  static let maskInputSize = 256

  let peLayer: PositionEmbeddingRandom
  /// point_embeddings.0 (negative), .1 (positive), .2 (box top-left), .3 (box bottom-right): [1, 256] each.
  let pointEmbeddings: [Tensor]
  let notAPointEmbed: Tensor  // [1, 256]
  let noMaskEmbed: Tensor  // [1, 256]
  let maskConv1: Conv2d  // mask_downscaling.0, 1 -> 4, 2x2 stride 2
  let maskNorm1: LayerNorm  // mask_downscaling.1, LayerNorm2d
  let maskConv2: Conv2d  // mask_downscaling.3, 4 -> 16, 2x2 stride 2
  let maskNorm2: LayerNorm  // mask_downscaling.4, LayerNorm2d
  let maskConv3: Conv2d  // mask_downscaling.6, 16 -> 256, 1x1
  /// `get_dense_pe()`: [64, 64, 256], computed once.
  let densePositionalEncoding: Tensor

  init(_ weights: CheckpointWeights, _ prefix: String) throws {
    let dim = PromptEncoder.embedDim
    peLayer = try PositionEmbeddingRandom(weights, "\(prefix).pe_layer", numPosFeats: dim / 2)
    pointEmbeddings = try (0..<4).map {
      try weights.take("\(prefix).point_embeddings.\($0).weight", shape: [1, dim])
    }
    notAPointEmbed = try weights.take("\(prefix).not_a_point_embed.weight", shape: [1, dim])
    noMaskEmbed = try weights.take("\(prefix).no_mask_embed.weight", shape: [1, dim])
    let maskInChans = 16
    maskConv1 = try Conv2d(
      weights, "\(prefix).mask_downscaling.0", inChannels: 1, outChannels: maskInChans / 4, kernel: 2,
      stride: 2)
    maskNorm1 = try LayerNorm(weights, "\(prefix).mask_downscaling.1", dim: maskInChans / 4, eps: 1e-6)
    maskConv2 = try Conv2d(
      weights, "\(prefix).mask_downscaling.3", inChannels: maskInChans / 4, outChannels: maskInChans,
      kernel: 2,
      stride: 2)
    maskNorm2 = try LayerNorm(weights, "\(prefix).mask_downscaling.4", dim: maskInChans, eps: 1e-6)
    maskConv3 = try Conv2d(
      weights, "\(prefix).mask_downscaling.6", inChannels: maskInChans, outChannels: dim, kernel: 1, stride: 1
    )
    densePositionalEncoding = peLayer.dense(height: TinyViTConfig.gridSize, width: TinyViTConfig.gridSize)
  }

  /// Sparse embeddings of one prompt whose coordinates are already in the 1024-side input frame:
  /// [tokens, 256], points first, then the two box corners. The not-a-point token is appended only
  /// when there is no box (`pad=(boxes is None)`).
  func sparseEmbeddings(points: [PromptPoint], box: PromptBox?) -> Tensor {
    let dim = PromptEncoder.embedDim
    let size = Float(PromptEncoder.inputImageSize)
    let padded = !points.isEmpty && box == nil
    let tokens = points.count + (padded ? 1 : 0) + (box == nil ? 0 : 2)
    var out = [Float](repeating: 0, count: tokens * dim)
    var row = 0
    func addEmbedding(_ embedding: Tensor, row: Int) {
      for c in 0..<dim { out[row * dim + c] += embedding.data[c] }
    }
    for point in points {
      // +0.5: shift to the centre of the pixel.
      peLayer.encode(x: (point.x + 0.5) / size, y: (point.y + 0.5) / size, into: &out, at: row * dim)
      addEmbedding(pointEmbeddings[point.label == 1 ? 1 : 0], row: row)
      row += 1
    }
    if padded {
      // The padding point's encoding is zeroed, then not_a_point_embed is added.
      addEmbedding(notAPointEmbed, row: row)
      row += 1
    }
    if let box {
      peLayer.encode(x: (box.x0 + 0.5) / size, y: (box.y0 + 0.5) / size, into: &out, at: row * dim)
      addEmbedding(pointEmbeddings[2], row: row)
      row += 1
      peLayer.encode(x: (box.x1 + 0.5) / size, y: (box.y1 + 0.5) / size, into: &out, at: row * dim)
      addEmbedding(pointEmbeddings[3], row: row)
      row += 1
    }
    return Tensor(shape: [tokens, dim], data: out)
  }

  /// Dense embedding: the downscaled mask input [256 * 256] -> [64, 64, 256], or `no_mask_embed`
  /// broadcast over the grid when there is none.
  func denseEmbedding(maskInput: [Float]?) -> Tensor {
    let grid = TinyViTConfig.gridSize
    let dim = PromptEncoder.embedDim
    guard let maskInput else {
      var out = Tensor(zeros: [grid, grid, dim])
      addRowVector(&out, Tensor(shape: [dim], data: noMaskEmbed.data))
      return out
    }
    let side = PromptEncoder.maskInputSize
    var h = maskConv1(Tensor(shape: [side, side, 1], data: maskInput))  // (128, 128, 4)
    h = gelu(maskNorm1(h))
    h = maskConv2(h)  // (64, 64, 16)
    h = gelu(maskNorm2(h))
    return maskConv3(h)  // (64, 64, 256)
  }
}
