// Two 2x2 stride-2 transposed convolutions (LayerNorm2d and GELU between them, GELU after), then
// per output pixel the dot products with a few vectors: the mask decoder's output upscaling and
// hypernetwork products, computed one row of the input grid at a time. A row's intermediates
// (64 + 64 + 128 KB for a 64-pixel row of 256 channels) stay in cache, where the same steps run
// one after the other on whole images pass 4 MB and 8 MB planes through memory about ten times.
import CSAMKernels

/// The weights of the two upscaling stages, laid out for the fused kernel once (at load time).
/// Shapes only: x [H, W, Cin] -> convT1 -> [2H, 2W, C1] -> LayerNorm over C1 -> GELU
/// -> convT2 -> [4H, 4W, C2] -> GELU, each output pixel then dotted with M vectors of C2.
public struct UpscalingProducts: Sendable {
  /// [Cin, 2 * 2 * C1]: a GEMM row (one input pixel) gives its 2x2 block as (dy, dx, c).
  let conv1: Tensor
  let conv1Bias: Tensor  // [C1]
  let normWeight: Tensor  // [C1]
  let normBias: Tensor  // [C1]
  let eps: Float
  /// [C1, 2 * 2 * C2], as conv1.
  let conv2: Tensor
  let conv2Bias: Tensor  // [C2]

  /// conv1Weight [Cin, C1, 2, 2] and conv2Weight [C1, C2, 2, 2] as nn.ConvTranspose2d stores them.
  public init(
    conv1Weight: Tensor, conv1Bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
    conv2Weight: Tensor, conv2Bias: Tensor
  ) {
    precondition(
      conv1Weight.shape.count == 4 && conv1Weight.shape[2] == 2 && conv1Weight.shape[3] == 2,
      "UpscalingProducts: conv1 weight must be [Cin, C1, 2, 2], got \(conv1Weight.shape)")
    let (inChannels, c1) = (conv1Weight.shape[0], conv1Weight.shape[1])
    precondition(
      conv2Weight.shape.count == 4 && conv2Weight.shape[0] == c1 && conv2Weight.shape[2] == 2
        && conv2Weight.shape[3] == 2,
      "UpscalingProducts: conv2 weight must be [\(c1), C2, 2, 2], got \(conv2Weight.shape)")
    let c2 = conv2Weight.shape[1]
    precondition(
      conv1Bias.count == c1 && normWeight.count == c1 && normBias.count == c1 && conv2Bias.count == c2,
      "UpscalingProducts: biases and norm for \(c1) and \(c2) channels")
    conv1 = permute(conv1Weight, [0, 2, 3, 1]).reshaped([inChannels, 4 * c1])
    conv2 = permute(conv2Weight, [0, 2, 3, 1]).reshaped([c1, 4 * c2])
    self.conv1Bias = conv1Bias
    self.normWeight = normWeight
    self.normBias = normBias
    self.eps = eps
    self.conv2Bias = conv2Bias
  }

  /// x [H, W, Cin], vectors [M, C2] -> [M, 4H, 4W]: out[m, y, x] = vectors[m] . upscaled[y, x].
  public func callAsFunction(_ x: Tensor, vectors: Tensor) -> Tensor {
    let (inChannels, c1, c2) = (conv1.shape[0], conv1Bias.count, conv2Bias.count)
    precondition(x.shape.count == 3 && x.shape[2] == inChannels, "UpscalingProducts: input \(x.shape)")
    precondition(
      vectors.shape.count == 2 && vectors.shape[1] == c2, "UpscalingProducts: vectors \(vectors.shape)")
    let (height, width, masks) = (x.shape[0], x.shape[1], vectors.shape[0])
    let plane = 16 * height * width
    return Tensor(shape: [masks, 4 * height, 4 * width]) { out in
      guard plane > 0 else { return }
      x.withUnsafeBufferPointer { xp in
        conv1.withUnsafeBufferPointer { w1 in
          conv2.withUnsafeBufferPointer { w2 in
            conv1Bias.withUnsafeBufferPointer { b1 in
              conv2Bias.withUnsafeBufferPointer { b2 in
                normWeight.withUnsafeBufferPointer { nw in
                  normBias.withUnsafeBufferPointer { nb in
                    vectors.withUnsafeBufferPointer { vp in
                      let row = UpscalingRow(
                        width: width, inChannels: inChannels, c1: c1, c2: c2, masks: masks, plane: plane,
                        conv1: w1.baseAddress!, conv1Bias: b1.baseAddress!, normWeight: nw.baseAddress!,
                        normBias: nb.baseAddress!, eps: eps, conv2: w2.baseAddress!,
                        conv2Bias: b2.baseAddress!, vectors: vp.baseAddress!)
                      parallelForChunks(height) { range in
                        var scratch = [Float](repeating: 0, count: row.scratchCount)
                        scratch.withUnsafeMutableBufferPointer { sp in
                          for y in range {
                            row.run(y, input: xp.baseAddress!, scratch: sp.baseAddress!, out: out)
                          }
                        }
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

/// One input row's work, on pointers.
private struct UpscalingRow {
  var width: Int
  var inChannels: Int
  var c1: Int
  var c2: Int
  var masks: Int
  var plane: Int  // values per output plane: 4H * 4W
  var conv1: UnsafePointer<Float>
  var conv1Bias: UnsafePointer<Float>
  var normWeight: UnsafePointer<Float>
  var normBias: UnsafePointer<Float>
  var eps: Float
  var conv2: UnsafePointer<Float>
  var conv2Bias: UnsafePointer<Float>
  var vectors: UnsafePointer<Float>

  /// first GEMM's blocks [W, 4 C1], the first stage's two output rows [2, 2W, C1], the second
  /// GEMM's blocks [4W, 4 C2]
  var scratchCount: Int { width * 4 * c1 + 4 * width * c1 + 4 * width * 4 * c2 }

  func run(
    _ y: Int, input: UnsafePointer<Float>, scratch: UnsafeMutablePointer<Float>,
    out: UnsafeMutablePointer<Float>
  ) {
    let blocks1 = scratch
    let stage1 = blocks1 + width * 4 * c1
    let blocks2 = stage1 + 4 * width * c1
    // (W, 4 C1): pixel x's 2x2 output block, (dy, dx, c)
    GEMMCall(
      m: width, n: 4 * c1, k: inChannels, a: input + y * width * inChannels, lda: inChannels,
      transposeA: false, b: conv1, ldb: 4 * c1, transposeB: false, c: blocks1, ldc: 4 * c1, alpha: 1,
      beta: 0
    ).rows(0..<width)
    // (2, 2W, C1): bias, LayerNorm2d, GELU
    for x in 0..<width {
      for dy in 0..<2 {
        for dx in 0..<2 {
          let block = blocks1 + x * 4 * c1 + (dy * 2 + dx) * c1
          addVectors(block, block, conv1Bias, count: c1)
          layerNormRow(
            stage1 + (dy * 2 * width + 2 * x + dx) * c1, block, weight: normWeight, bias: normBias, count: c1,
            eps: eps)
        }
      }
    }
    sam_gelu(stage1, stage1, 4 * width * c1)
    // (4W, 4 C2): each first-stage pixel's 2x2 output block, (dy, dx, c)
    GEMMCall(
      m: 4 * width, n: 4 * c2, k: c1, a: stage1, lda: c1, transposeA: false, b: conv2, ldb: 4 * c2,
      transposeB: false, c: blocks2, ldc: 4 * c2, alpha: 1, beta: 0
    ).rows(0..<(4 * width))
    for segment in 0..<(16 * width) {
      let p = blocks2 + segment * c2
      addVectors(p, p, conv2Bias, count: c2)
    }
    sam_gelu(blocks2, blocks2, 16 * width * c2)
    // Output rows 4y ..< 4y + 4, each 4W wide.
    let outWidth = 4 * width
    for pixel in 0..<(4 * width) {
      let (r, column) = pixel.quotientAndRemainder(dividingBy: 2 * width)
      for dy in 0..<2 {
        for dx in 0..<2 {
          let v = blocks2 + pixel * 4 * c2 + (dy * 2 + dx) * c2
          let offset = (4 * y + 2 * r + dy) * outWidth + 2 * column + dx
          for m in 0..<masks {
            out[m * plane + offset] = dotProduct(v, vectors + m * c2, count: c2)
          }
        }
      }
    }
  }
}

/// sum(a[i] * b[i]), 8 lanes at a time.
private func dotProduct(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
  var sums = SIMD8<Float>.zero
  var i = 0
  while i + 8 <= count {
    sums.addProduct(
      UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self),
      UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self))
    i += 8
  }
  var total = sums.sum()
  while i < count {
    total += a[i] * b[i]
    i += 1
  }
  return total
}
