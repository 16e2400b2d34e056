// Two 2x2 stride-2 transposed convolutions (LayerNorm2d and GELU between them, GELU after), then
// per output pixel the dot products with a few vectors: the mask decoder's output upscaling and
// hypernetwork products, computed two rows of the input grid at a time. A step's intermediates
// (128 + 256 KB for two 64-pixel rows) stay in cache, where the same steps run one after the other
// on whole images pass 4 MB and 8 MB planes through memory about ten times.
//
// A 2x2 stride-2 transposed convolution is a linear layer from each input pixel to its 2x2 output
// block, so both run on the packed GEMM (weights packed once, at load time; the biases and the
// second GELU applied to each output tile in registers), with LayerNorm + GELU and the products
// in C kernels of their own (CSAMKernels/upscaling.c).
import CSAMKernels

/// The weights of the two upscaling stages, laid out for the fused kernel once (at load time).
/// Shapes only: x [H, W, Cin] -> convT1 -> [2H, 2W, C1] -> LayerNorm over C1 -> GELU
/// -> convT2 -> [4H, 4W, C2] -> GELU, each output pixel then dotted with M vectors of C2.
public struct UpscalingProducts: Sendable {
  /// convT1 as a linear layer [(dy, dx, C1), Cin]: one input pixel gives its 2x2 block.
  let conv1: PackedWeight
  let conv1Bias: [Float]  // [2, 2, C1]: the bias of each pixel of a block
  let normWeight: [Float]  // [C1]
  let normBias: [Float]  // [C1]
  let eps: Float
  /// convT2 as a linear layer [(dy, dx, C2), C1], as conv1.
  let conv2: PackedWeight
  let conv2Bias: [Float]  // [2, 2, C2]

  /// Input grid rows per step: the GEMMs run on 128 and 512 rows, and 64 rows split evenly over
  /// two threads (measured: 2 or 3 rows per step ~5% less CPU time than 1).
  static let rowsPerStep = 2

  /// conv1Weight [Cin, C1, 2, 2] and conv2Weight [C1, C2, 2, 2] as nn.ConvTranspose2d stores them.
  public init(
    conv1Weight: Tensor, conv1Bias: Tensor, normWeight: Tensor, normBias: Tensor, eps: Float,
    conv2Weight: Tensor, conv2Bias: Tensor
  ) {
    precondition(
      conv1Weight.shape.count == 4 && conv1Weight.shape[2] == 2 && conv1Weight.shape[3] == 2,
      "UpscalingProducts: conv1 weight must be [Cin, C1, 2, 2], got \(conv1Weight.shape)")
    let c1 = conv1Weight.shape[1]
    precondition(
      conv2Weight.shape.count == 4 && conv2Weight.shape[0] == c1 && conv2Weight.shape[2] == 2
        && conv2Weight.shape[3] == 2,
      "UpscalingProducts: conv2 weight must be [\(c1), C2, 2, 2], got \(conv2Weight.shape)")
    let c2 = conv2Weight.shape[1]
    precondition(
      conv1Bias.count == c1 && normWeight.count == c1 && normBias.count == c1 && conv2Bias.count == c2,
      "UpscalingProducts: biases and norm for \(c1) and \(c2) channels")
    conv1 = PackedWeight(transposed: Self.blockMatrix(conv1Weight))
    conv2 = PackedWeight(transposed: Self.blockMatrix(conv2Weight))
    self.conv1Bias = Self.blockBias(conv1Bias)
    self.conv2Bias = Self.blockBias(conv2Bias)
    self.normWeight = normWeight.data
    self.normBias = normBias.data
    self.eps = eps
  }

  /// A 2x2 stride-2 transposed convolution's weight [Cin, Cout, 2, 2] (as nn.ConvTranspose2d
  /// stores it) as the matrix [Cin, (dy, dx, Cout)] from an input pixel to its output block.
  public static func blockMatrix(_ weight: Tensor) -> Tensor {
    permute(weight, [0, 2, 3, 1]).reshaped([weight.shape[0], 4 * weight.shape[1]])
  }

  /// A convolution's bias [Cout] for each pixel of an output block: [(dy, dx, Cout)].
  public static func blockBias(_ bias: Tensor) -> [Float] {
    Array(repeating: bias.data, count: 4).flatMap { $0 }
  }

  /// x [H, W, Cin], vectors [M, C2] -> [M, 4H, 4W]: out[m, y, x] = vectors[m] . upscaled[y, x].
  /// With `region`, only the outputs of its grid pixels (the top-left rows x columns corner of the
  /// grid, each pixel's 4 x 4 outputs) are computed, the same values, and every other output is NaN.
  public func callAsFunction(_ x: Tensor, vectors: Tensor, region: GridRegion? = nil) -> Tensor {
    precondition(x.shape.count == 3 && x.shape[2] == conv1.inFeatures, "UpscalingProducts: input \(x.shape)")
    return x.withUnsafeBufferPointer { xp in
      products(
        from: xp.baseAddress.map { .input($0) }, height: x.shape[0], width: x.shape[1], vectors: vectors,
        region: region)
    }
  }

  /// The same with convT1's output (bias included) given in low-rank form, one row per input pixel
  /// [H * W, 2 * 2 * C1] (each pixel's 2x2 output block as (dy, dx, c)): each row step forms its
  /// pixels' rows with one short GEMM (`LowRankFirstStage`) while they are in cache.
  public func callAsFunction(
    lowRank: LowRankFirstStage, height: Int, width: Int, vectors: Tensor, region: GridRegion? = nil
  ) -> Tensor {
    precondition(
      lowRank.pixels == height * width && lowRank.features == 4 * normWeight.count,
      "UpscalingProducts: low-rank first stage [\(lowRank.pixels), \(lowRank.features)] for a "
        + "\(height)x\(width) grid of \(normWeight.count) channels")
    return lowRank.withPointers { pointers in
      products(from: .lowRank(pointers), height: height, width: width, vectors: vectors, region: region)
    }
  }

  /// The products for a height x width grid whose first stage comes from `first` (nil: an empty grid),
  /// for the grid pixels of `region` (nil: all).
  private func products(
    from first: FirstStage?, height: Int, width: Int, vectors: Tensor, region: GridRegion?
  ) -> Tensor {
    let (c1, c2) = (normWeight.count, conv2.outFeatures / 4)
    precondition(
      vectors.shape.count == 2 && vectors.shape[1] == c2, "UpscalingProducts: vectors \(vectors.shape)")
    let region = region ?? GridRegion(rows: height, columns: width)
    precondition(
      region.rows >= 0 && region.rows <= height && region.columns >= 0 && region.columns <= width,
      "UpscalingProducts: region \(region.rows)x\(region.columns) outside the \(height)x\(width) grid")
    let masks = vectors.shape[0]
    let plane = 16 * height * width
    return Tensor(shape: [masks, 4 * height, 4 * width]) { out in
      if region.rows < height || region.columns < width {
        // The outputs not computed: NaN, so that any use of them shows.
        for m in 0..<masks {
          for y in 0..<(4 * height) {
            let row = out + m * plane + y * 4 * width
            let computed = y < 4 * region.rows ? 4 * region.columns : 0
            (row + computed).initialize(repeating: .nan, count: 4 * width - computed)
          }
        }
      }
      guard plane > 0, region.rows > 0, region.columns > 0, let first else { return }
      vectors.withUnsafeBufferPointer { vp in
        conv1.panels.withUnsafeBufferPointer { w1 in
          conv2.panels.withUnsafeBufferPointer { w2 in
            conv1Bias.withUnsafeBufferPointer { b1 in
              conv2Bias.withUnsafeBufferPointer { b2 in
                normWeight.withUnsafeBufferPointer { nw in
                  normBias.withUnsafeBufferPointer { nb in
                    let steps = UpscalingSteps(
                      width: width, columns: region.columns, inChannels: conv1.inFeatures, c1: c1, c2: c2,
                      masks: masks, plane: plane,
                      first: first, conv1: w1.baseAddress!, conv1Bias: b1.baseAddress!,
                      normWeight: nw.baseAddress!,
                      normBias: nb.baseAddress!, eps: eps, conv2: w2.baseAddress!,
                      conv2Bias: b2.baseAddress!, vectors: vp.baseAddress!)
                    let stepCount = (region.rows + Self.rowsPerStep - 1) / Self.rowsPerStep
                    parallelForChunks(stepCount) { range in
                      withUnsafeTemporaryAllocation(
                        of: Float.self, capacity: steps.scratchCount(rows: Self.rowsPerStep)
                      ) { sp in
                        for step in range {
                          let firstRow = step * Self.rowsPerStep
                          steps.run(
                            rows: firstRow..<min(region.rows, firstRow + Self.rowsPerStep),
                            scratch: sp.baseAddress!,
                            out: out)
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

/// The top-left corner of an upscaling's input grid whose outputs are computed: `rows` x `columns`
/// grid pixels (each gives 4 x 4 outputs).
public struct GridRegion: Sendable, Equatable {
  public var rows: Int
  public var columns: Int

  public init(rows: Int, columns: Int) {
    self.rows = rows
    self.columns = columns
  }
}

/// Where the upscaling's first stage comes from.
private enum FirstStage {
  /// The input grid x [H, W, Cin], through convT1.
  case input(UnsafePointer<Float>)
  /// convT1's output given in low-rank form (`LowRankFirstStage`).
  case lowRank(LowRankPointers)
}

/// The work of a few input rows, on pointers.
private struct UpscalingSteps {
  var width: Int
  /// Grid pixels computed in each row: 0 ..< columns (columns <= width).
  var columns: Int
  var inChannels: Int
  var c1: Int
  var c2: Int
  var masks: Int
  var plane: Int  // values per output plane: 4H * 4W
  var first: FirstStage
  var conv1: UnsafePointer<Float>
  var conv1Bias: UnsafePointer<Float>
  var normWeight: UnsafePointer<Float>
  var normBias: UnsafePointer<Float>
  var eps: Float
  var conv2: UnsafePointer<Float>
  var conv2Bias: UnsafePointer<Float>
  var vectors: UnsafePointer<Float>

  /// The first stage [rows, W, 2, 2, C1], the second [rows, W, 2, 2, 2, 2, C2] and the low-rank
  /// form's coefficients.
  func scratchCount(rows: Int) -> Int {
    let lowRankScratch: Int
    if case .lowRank(let lowRank) = first {
      lowRankScratch = lowRank.scratchCount(pixels: rows * width)
    } else {
      lowRankScratch = 0
    }
    return rows * columns * 4 * (c1 + 4 * c2) + lowRankScratch
  }

  func run(rows: Range<Int>, scratch: UnsafeMutablePointer<Float>, out: UnsafeMutablePointer<Float>) {
    let pixels = rows.count * columns
    let stage1 = scratch  // (pixels, dy, dx, C1)
    let stage2 = stage1 + pixels * 4 * c1  // (pixels, dy, dx, dy2, dx2, C2)
    // The first stage of the grid pixels: all the rows at once when they are whole, else row by row.
    let lowRankScratch = stage2 + pixels * 16 * c2
    func firstStage(_ run: Range<Int>, into target: UnsafeMutablePointer<Float>) {
      switch first {
      case .lowRank(let lowRank):
        lowRank.stage(pixels: run, into: target, scratch: lowRankScratch)
      case .input(let input):
        var convT1 = sam_gemm_args()
        convT1.out = target
        convT1.ldo = 4 * c1
        convT1.x = input + run.lowerBound * inChannels
        convT1.ldx = inChannels
        convT1.packed = conv1
        convT1.bias = conv1Bias
        convT1.n = 4 * c1
        convT1.k = inChannels
        withUnsafePointer(to: convT1) { sam_gemm_packed_rows($0, 0, run.count) }
      }
    }
    if columns == width {
      firstStage(rows.lowerBound * width..<(rows.upperBound * width), into: stage1)
    } else {
      for (i, y) in rows.enumerated() {
        firstStage(y * width..<(y * width + columns), into: stage1 + i * columns * 4 * c1)
      }
    }
    sam_layer_norm_gelu(stage1, stage1, normWeight, normBias, 4 * pixels, c1, eps)
    var second = sam_gemm_args()
    second.out = stage2
    second.ldo = 4 * c2
    second.x = UnsafePointer(stage1)
    second.ldx = c1
    second.packed = conv2
    second.bias = conv2Bias
    second.gelu = 1
    second.n = 4 * c2
    second.k = c1
    withUnsafePointer(to: second) { sam_gemm_packed_rows($0, 0, 4 * pixels) }
    // Output rows 4y ..< 4y + 4, each 4W wide.
    for y in rows {
      sam_upscaling_products(
        out + 4 * y * 4 * width, 4 * width, plane, stage2 + (y - rows.lowerBound) * columns * 16 * c2,
        vectors,
        columns, c2, masks)
    }
  }
}
