// nn.Linear with a weight packed once, at load time, for our own GEMM kernel (CSAMKernels/gemm.c):
// no repacking of the weight on every call (OpenBLAS's `sgemm_oncopy`, 8% of a TinyViT encode),
// and the bias, a residual and GELU applied to each output tile while it is in registers, so the
// output is written to memory once.
import CSAMKernels

/// A linear layer's weight [outFeatures, inFeatures], in the panel layout of the packed GEMM.
public struct PackedWeight: Sendable {
  public let outFeatures: Int
  /// inChannels * kernelH * kernelW.
  public let inFeatures: Int
  /// For a convolution's weight: its kernel, whose input features are ordered (ky, kx, channel).
  public let kernelH: Int
  public let kernelW: Int
  /// Panels of 32 output columns, each inFeatures rows of 32 values (zero past outFeatures).
  let panels: [Float]

  /// Packs `weight` [outFeatures, inFeatures] (a 1x1 convolution's [out, in, 1, 1] too).
  public init(_ weight: Tensor) {
    precondition(
      weight.shape.count >= 2 && weight.shape.dropFirst(2).allSatisfy { $0 == 1 },
      "PackedWeight: weight must be [out, in] or [out, in, 1, 1], got \(weight.shape)")
    self.init(panelsOf: weight.reshaped([weight.shape[0], weight.shape[1]]), kernelH: 1, kernelW: 1)
  }

  /// Packs a convolution's weight [out, in, kh, kw] for `conv2d(_:packed:...)`, as [out, (kh, kw, in)].
  public init(convolution weight: Tensor) {
    precondition(
      weight.shape.count == 4, "PackedWeight: weight must be [out, in, kh, kw], got \(weight.shape)")
    let (outChannels, kernelH, kernelW) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let reordered = permute(weight, [0, 2, 3, 1])  // [out, kh, kw, in]
    self.init(
      panelsOf: reordered.reshaped([outChannels, reordered.count / max(1, outChannels)]), kernelH: kernelH,
      kernelW: kernelW)
  }

  /// Packs a weight given transposed, `transposed` [inFeatures, outFeatures] (the right-hand
  /// factor of x W, as a [K, N] matrix), without forming [outFeatures, inFeatures].
  public init(transposed weight: Tensor) {
    precondition(
      weight.shape.count == 2, "PackedWeight: transposed weight must be [in, out], got \(weight.shape)")
    self.init(
      weight, outFeatures: weight.shape[1], inFeatures: weight.shape[0], kernelH: 1, kernelW: 1,
      pack: sam_gemm_pack_weight_transposed)
  }

  /// weight [outFeatures, inFeatures]
  private init(panelsOf weight: Tensor, kernelH: Int, kernelW: Int) {
    self.init(
      weight, outFeatures: weight.shape[0], inFeatures: weight.shape[1], kernelH: kernelH, kernelW: kernelW,
      pack: sam_gemm_pack_weight)
  }

  /// `weight`'s values packed into panels by `pack` (out, weight, outFeatures, inFeatures).
  private init(
    _ weight: Tensor, outFeatures: Int, inFeatures: Int, kernelH: Int, kernelW: Int,
    pack: (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int, Int) -> Void
  ) {
    self.outFeatures = outFeatures
    self.inFeatures = inFeatures
    self.kernelH = kernelH
    self.kernelW = kernelW
    let count = sam_gemm_packed_count(outFeatures, inFeatures)
    panels = weight.withUnsafeBufferPointer { wp in
      [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { pack(buffer.baseAddress!, wp.baseAddress!, outFeatures, inFeatures) }
        initialized = count
      }
    }
  }
}

/// nn.Linear with a packed weight: x [..., inF] -> [..., outF],
/// out = activation(x weight^T + bias + residual), bias and residual [..., outF] optional.
/// Parallel over blocks of rows; each output value is one multiply-add chain over the input
/// features in order, then the bias, the residual and the activation (as `linear` adds them).
public func linear(
  _ x: Tensor, packed weight: PackedWeight, bias: Tensor?, activation: Activation = .identity,
  residual: Tensor? = nil
) -> Tensor {
  let (outFeatures, inFeatures) = (weight.outFeatures, weight.inFeatures)
  precondition(
    weight.kernelH == 1 && weight.kernelW == 1,
    "linear: a packed \(weight.kernelH)x\(weight.kernelW) convolution weight")
  precondition(
    x.shape.last == inFeatures, "linear: input \(x.shape) does not end in \(inFeatures) features")
  if let bias { precondition(bias.count == outFeatures, "linear: bias \(bias.shape) for \(outFeatures)") }
  let rows = x.shape.dropLast().reduce(1, *)
  let outShape = Array(x.shape.dropLast()) + [outFeatures]
  if let residual {
    precondition(residual.shape == outShape, "linear: residual \(residual.shape) for output \(outShape)")
  }
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      weight.panels.withUnsafeBufferPointer { wp in
        (bias?.data ?? []).withUnsafeBufferPointer { bp in
          (residual?.data ?? []).withUnsafeBufferPointer { rp in
            var args = sam_gemm_args()
            args.out = out
            args.ldo = outFeatures
            args.x = xp.baseAddress
            args.ldx = inFeatures
            args.packed = wp.baseAddress
            args.bias = bias == nil ? nil : bp.baseAddress
            args.residual = residual == nil ? nil : rp.baseAddress
            args.ldr = outFeatures
            args.gelu = activation == .gelu ? 1 : 0
            args.n = outFeatures
            args.k = inFeatures
            let call = PackedGEMMCall(args: args)
            // Thread shares in whole register tiles, and none for small products.
            let tileRows = sam_gemm_tile_rows()
            let tiles = (rows + tileRows - 1) / tileRows
            // A few rows (a prompt's tokens) through a large weight: reading the weight is the
            // work, so the threads share its panels instead (each reads its own).
            let panels = (outFeatures + panelColumns - 1) / panelColumns
            if tiles == 1 && panels > 1 && outFeatures * inFeatures >= weightSplitThreshold {
              parallelForChunks(panels) { range in call.columns(panels: range, rows: rows) }
              return
            }
            guard rows * outFeatures * inFeatures >= parallelGEMMThreshold else {
              call.rows(0..<rows)
              return
            }
            parallelForChunks(tiles) { range in
              call.rows(min(rows, range.lowerBound * tileRows)..<min(rows, range.upperBound * tileRows))
            }
          }
        }
      }
    }
  }
}

/// Output columns per panel of a packed weight (PANEL in gemm.c).
let panelColumns = 32

/// Weights of at least this many values (256 KB) are split by panels between the threads when the
/// input is one register tile of rows.
let weightSplitThreshold = 1 << 16

/// The arguments of one packed GEMM, shared by the threads that compute its row blocks.
struct PackedGEMMCall: @unchecked Sendable {
  var args: sam_gemm_args

  func rows(_ range: Range<Int>) {
    withUnsafePointer(to: args) { sam_gemm_packed_rows($0, range.lowerBound, range.upperBound) }
  }

  /// The output columns of the weight's panels `panels` (of `panelColumns` columns each), for rows
  /// 0..<rows: the same operations for each value as `rows`.
  func columns(panels: Range<Int>, rows: Int) {
    let first = panels.lowerBound * panelColumns
    var part = args
    part.n = min(args.n, panels.upperBound * panelColumns) - first
    part.packed = args.packed + first * args.k
    part.out = args.out + first
    if let bias = args.bias { part.bias = bias + first }
    if let residual = args.residual { part.residual = residual + first }
    withUnsafePointer(to: part) { sam_gemm_packed_rows($0, 0, rows) }
  }
}
