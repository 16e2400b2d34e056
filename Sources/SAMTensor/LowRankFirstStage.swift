// The first stage of `UpscalingProducts` (a linear map of each grid pixel) given in low-rank form,
// so that the upscaling's row step forms it from a kept per-pixel row and one GEMM with a short
// inner dimension, instead of multiplying each pixel's full input through the convolution.
// MobileSAM's LowRankUpscalingInput derives this form for the mask decoder's final keys (two
// LayerNorm'd rank updates of the image side); here only the shapes are known.
import CSAMKernels

/// A first stage [N, F] (N grid pixels row by row, F = 2 x 2 x C1) given per pixel i as
///   stage[i] = s_i side[i] + c_i basis + bias,   t_i = inverse2[i],  s_i = inverse1[i] t_i,
///   c_i = [s_i a1[i], t_i a2[i], s_i, -s_i mean1[i], t_i, -t_i mean2[i]]
/// with side [N, F], a1 [N, r1], a2 [N, r2], mean1, inverse1, mean2, inverse2 [N],
/// basis [r1 + r2 + 4, F] (packed once per value), bias [F].
public struct LowRankFirstStage: Sendable {
  let side: Tensor
  let basis: PackedWeight  // [F, r1 + r2 + 4] as a linear layer
  let bias: [Float]
  let weights1: Tensor
  let weights2: Tensor
  let mean1: [Float]
  let inverse1: [Float]
  let mean2: [Float]
  let inverse2: [Float]

  public init(
    side: Tensor, basis: Tensor, bias: [Float], weights1: Tensor, mean1: [Float], inverse1: [Float],
    weights2: Tensor, mean2: [Float], inverse2: [Float]
  ) {
    let (pixels, features) = (side.shape.first ?? 0, side.shape.last ?? 0)
    precondition(
      side.shape.count == 2 && weights1.shape.count == 2 && weights2.shape.count == 2
        && weights1.shape[0] == pixels && weights2.shape[0] == pixels,
      "LowRankFirstStage: side \(side.shape), weights \(weights1.shape) and \(weights2.shape)")
    precondition(
      [mean1.count, inverse1.count, mean2.count, inverse2.count].allSatisfy { $0 == pixels },
      "LowRankFirstStage: statistics for \(mean1.count) pixels, side \(pixels)")
    precondition(
      basis.shape == [weights1.shape[1] + weights2.shape[1] + 4, features] && bias.count == features,
      "LowRankFirstStage: basis \(basis.shape), bias \(bias.count) for \(weights1.shape[1]) + "
        + "\(weights2.shape[1]) + 4 rows of \(features)")
    self.side = side
    self.basis = PackedWeight(transposed: basis)
    self.bias = bias
    self.weights1 = weights1
    self.weights2 = weights2
    self.mean1 = mean1
    self.inverse1 = inverse1
    self.mean2 = mean2
    self.inverse2 = inverse2
  }

  public var pixels: Int { side.shape[0] }
  public var features: Int { side.shape[1] }
  var rank1: Int { weights1.shape[1] }
  var rank2: Int { weights2.shape[1] }
  /// The coefficient rows' width: r1 + r2 + 4.
  var width: Int { rank1 + rank2 + 4 }

  /// The stage itself [N, F], with the arithmetic of the upscaling's row step.
  func evaluated() -> Tensor {
    Tensor(shape: [pixels, features]) { out in
      withPointers { p in
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(1, pixels * (width + 1)))
        defer { scratch.deallocate() }
        p.stage(pixels: 0..<pixels, into: out, scratch: scratch)
      }
    }
  }

  /// The stage's arrays as pointers, for the duration of `body`.
  func withPointers<Result>(_ body: (LowRankPointers) -> Result) -> Result {
    side.withUnsafeBufferPointer { side in
      basis.panels.withUnsafeBufferPointer { basis in
        bias.withUnsafeBufferPointer { bias in
          weights1.withUnsafeBufferPointer { a1 in
            weights2.withUnsafeBufferPointer { a2 in
              mean1.withUnsafeBufferPointer { m1 in
                inverse1.withUnsafeBufferPointer { i1 in
                  mean2.withUnsafeBufferPointer { m2 in
                    inverse2.withUnsafeBufferPointer { i2 in
                      body(
                        LowRankPointers(
                          features: features, rank1: rank1, rank2: rank2, side: side.baseAddress!,
                          basis: basis.baseAddress!, bias: bias.baseAddress!, weights1: a1.baseAddress!,
                          weights2: a2.baseAddress!, mean1: m1.baseAddress!, inverse1: i1.baseAddress!,
                          mean2: m2.baseAddress!, inverse2: i2.baseAddress!))
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

/// `LowRankFirstStage` on pointers, for the threads of a row step.
struct LowRankPointers: @unchecked Sendable {
  var features: Int
  var rank1: Int
  var rank2: Int
  var side: UnsafePointer<Float>
  var basis: UnsafePointer<Float>
  var bias: UnsafePointer<Float>
  var weights1: UnsafePointer<Float>
  var weights2: UnsafePointer<Float>
  var mean1: UnsafePointer<Float>
  var inverse1: UnsafePointer<Float>
  var mean2: UnsafePointer<Float>
  var inverse2: UnsafePointer<Float>

  var width: Int { rank1 + rank2 + 4 }

  /// Floats of scratch `stage` needs for `pixels` pixels: the coefficient rows and the scales.
  func scratchCount(pixels: Int) -> Int { pixels * (width + 1) }

  /// Rows `pixels` of the stage into out [pixels.count, F]: the coefficient rows (a C kernel), then
  /// one GEMM with the scaled side rows and the bias added to each tile in registers.
  func stage(pixels: Range<Int>, into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>)
  {
    let (first, count) = (pixels.lowerBound, pixels.count)
    guard count > 0 else { return }
    let coefficients = scratch
    let scales = scratch + count * width
    sam_low_rank_coefficients(
      coefficients, scales, weights1 + first * rank1, rank1, weights2 + first * rank2, rank2, mean1 + first,
      inverse1 + first, mean2 + first, inverse2 + first, count)
    var args = sam_gemm_args()
    args.out = out
    args.ldo = features
    args.x = UnsafePointer(coefficients)
    args.ldx = width
    args.packed = basis
    args.bias = bias
    args.residual = side + first * features
    args.ldr = features
    args.row_scale = UnsafePointer(scales)
    args.n = features
    args.k = width
    withUnsafePointer(to: args) { sam_gemm_packed_rows($0, 0, count) }
  }
}
