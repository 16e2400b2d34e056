// An inverted residual block (1x1 expand, 3x3 depthwise, 1x1 project, each followed by GELU, the
// input added before the last GELU) computed one image row at a time, so that its 4x wider
// intermediate activations never leave the cache. Unfused, TinyViT's first stage writes and reads
// two [256, 256, 256] tensors (67 MB each) per block.
import CSAMKernels

/// The weights of `invertedResidual`, packed for the GEMM kernel (PackedGEMM.swift).
public struct InvertedResidualWeights: Sendable {
  /// expand [hidden, C] and its bias [hidden].
  public var expand: PackedWeight
  public var expandBias: Tensor
  /// depthwise 3x3 taps [hidden, 1, 3, 3] and bias [hidden].
  public var depthwise: Tensor
  public var depthwiseBias: Tensor
  /// project [C, hidden] and its bias [C].
  public var project: PackedWeight
  public var projectBias: Tensor

  public init(
    expand: PackedWeight, expandBias: Tensor, depthwise: Tensor, depthwiseBias: Tensor, project: PackedWeight,
    projectBias: Tensor
  ) {
    self.expand = expand
    self.expandBias = expandBias
    self.depthwise = depthwise
    self.depthwiseBias = depthwiseBias
    self.project = project
    self.projectBias = projectBias
  }
}

/// x [H, W, C] -> gelu(project(gelu(depthwise3x3(gelu(expand(x))))) + x), [H, W, C]; the depthwise
/// convolution has stride 1 and zero padding 1, hidden % 8 == 0. The same values, to the bit, as
/// the three layers run one after the other with `linear(_:packed:...)` and `depthwiseConv2d`.
/// Each thread takes a band of rows and keeps the expanded rows y - 1, y, y + 1 in a ring of three.
public func invertedResidual(_ x: Tensor, weights w: InvertedResidualWeights) -> Tensor {
  precondition(x.shape.count == 3, "invertedResidual: input must be [H, W, C], got \(x.shape)")
  let (height, width, channels) = (x.shape[0], x.shape[1], x.shape[2])
  let hidden = w.expand.outFeatures
  precondition(
    w.expand.inFeatures == channels && w.expand.kernelH == 1 && w.expandBias.count == hidden
      && w.depthwise.shape == [hidden, 1, 3, 3] && w.depthwiseBias.count == hidden
      && w.project.inFeatures == hidden && w.project.outFeatures == channels && w.project.kernelH == 1
      && w.projectBias.count == channels && hidden % 8 == 0,
    "invertedResidual: weights do not fit input \(x.shape) (hidden \(hidden) must be a multiple of 8)")
  let taps = permute(w.depthwise.reshaped([hidden, 9]), [1, 0])  // [9, hidden]
  let rowValues = width * hidden
  let zeroRow = [Float](repeating: 0, count: rowValues)
  return Tensor(shape: [height, width, channels]) { out in
    x.withUnsafeBufferPointer { xp in
      w.expand.panels.withUnsafeBufferPointer { ep in
        w.expandBias.withUnsafeBufferPointer { ebp in
          w.project.panels.withUnsafeBufferPointer { pp in
            w.projectBias.withUnsafeBufferPointer { pbp in
              taps.withUnsafeBufferPointer { tp in
                w.depthwiseBias.withUnsafeBufferPointer { dbp in
                  zeroRow.withUnsafeBufferPointer { zp in
                    var expand = sam_gemm_args()
                    expand.ldo = hidden
                    expand.ldx = channels
                    expand.packed = ep.baseAddress
                    expand.bias = ebp.baseAddress
                    expand.gelu = 1
                    expand.n = hidden
                    expand.k = channels
                    var project = sam_gemm_args()
                    project.ldo = channels
                    project.ldx = hidden
                    project.packed = pp.baseAddress
                    project.bias = pbp.baseAddress
                    project.ldr = channels
                    project.gelu = 1
                    project.n = channels
                    project.k = hidden
                    let rowsOf = InvertedResidualRows(
                      input: xp.baseAddress!, out: out, expand: PackedGEMMCall(args: expand),
                      project: PackedGEMMCall(args: project),
                      depthwise: DepthwiseRow(
                        taps: tp.baseAddress!, bias: dbp.baseAddress!, zeroRow: zp.baseAddress!, width: width,
                        channels: hidden),
                      height: height, width: width, channels: channels, hidden: hidden)
                    parallelForChunks(height) { rows in rowsOf.compute(rows) }
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

/// One thread's band of rows of `invertedResidual`.
private struct InvertedResidualRows: @unchecked Sendable {
  var input: UnsafePointer<Float>
  var out: UnsafeMutablePointer<Float>
  var expand: PackedGEMMCall
  var project: PackedGEMMCall
  var depthwise: DepthwiseRow
  var height: Int
  var width: Int
  var channels: Int
  var hidden: Int

  func compute(_ rows: Range<Int>) {
    let rowValues = width * hidden
    let ring = UnsafeMutablePointer<Float>.allocate(capacity: 3 * rowValues)
    let middle = UnsafeMutablePointer<Float>.allocate(capacity: rowValues)
    defer {
      ring.deallocate()
      middle.deallocate()
    }
    // Expanded row y lives in ring slot y % 3; rows before `next` are computed.
    var next = max(0, rows.lowerBound - 1)
    var expand = self.expand
    func expandedRow(_ y: Int) -> UnsafePointer<Float>? {
      guard y >= 0 && y < height else { return nil }
      while next <= y {
        expand.args.x = input + next * width * channels
        expand.args.out = ring + (next % 3) * rowValues
        expand.rows(0..<width)  // (W, hidden) = gelu(x_row expand^T + bias)
        next += 1
      }
      return UnsafePointer(ring + (y % 3) * rowValues)
    }
    var project = self.project
    for y in rows {
      let top = expandedRow(y - 1)
      let center = expandedRow(y)!
      let bottom = expandedRow(y + 1)
      depthwise.row(middle, top: top, center: center, bottom: bottom)
      applyEpilogue(middle, rows: 1, columns: rowValues, stride: 0, bias: nil, activation: .gelu)
      project.args.x = UnsafePointer(middle)
      project.args.residual = input + y * width * channels
      project.args.out = out + y * width * channels
      project.rows(0..<width)  // (W, C) = gelu(middle project^T + bias + x_row)
    }
  }
}

/// A 3x3 depthwise convolution, stride 1, zero padding 1, one output row from its three input
/// rows (nil above or below the image), with the operations of `depthwiseConv2d`'s 3x3 path:
/// the C kernel over the inner columns (reading a zero row for a missing one), the valid taps
/// only at the two edge columns.
private struct DepthwiseRow {
  var taps: UnsafePointer<Float>  // [9, channels]
  var bias: UnsafePointer<Float>
  var zeroRow: UnsafePointer<Float>
  var width: Int
  var channels: Int

  func row(
    _ out: UnsafeMutablePointer<Float>, top: UnsafePointer<Float>?, center: UnsafePointer<Float>,
    bottom: UnsafePointer<Float>?
  ) {
    let c = channels
    let inputRows = [top, center, bottom]
    for ox in (width == 1 ? [0] : [0, width - 1]) {
      let x0 = ox - 1
      let kxRange = max(0, -x0)..<min(3, width - x0)
      var ch = 0
      while ch + 8 <= c {
        var acc = loadVector(bias + ch)
        for ky in 0..<3 {
          guard let inputRow = inputRows[ky] else { continue }
          for kx in kxRange {
            acc.addProduct(
              loadVector(taps + (ky * 3 + kx) * c + ch), loadVector(inputRow + (x0 + kx) * c + ch))
          }
        }
        storeVector(acc, out + ox * c + ch)
        ch += 8
      }
    }
    guard width > 2 else { return }
    // In C (CSAMKernels/depthwise.c), 16 channels at a time where the CPU has AVX-512.
    sam_depthwise3x3_inner(out, top ?? zeroRow, center, bottom ?? zeroRow, taps, bias, c, 1, width - 1, 1, 1)
  }
}

// Per-file copies (see Vector.swift).
@inline(__always)
private func loadVector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func storeVector(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
