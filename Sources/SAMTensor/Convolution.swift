// Convolutions on channels-last images: x [H, W, C], weights in PyTorch layouts.
import CSAMKernels

/// Output size of a convolution along one axis: (input + 2 * padding - kernel) / stride + 1.
@inline(__always)
func convolutionOutputSize(_ input: Int, kernel: Int, stride: Int, padding: Int) -> Int {
  (input + 2 * padding - kernel) / stride + 1
}

/// nn.Conv2d with groups = 1 and zero padding: x [H, W, Cin], weight [Cout, Cin, kh, kw],
/// bias [Cout] -> [Ho, Wo, Cout], followed by `activation`. A 1x1 stride-1 unpadded convolution is
/// one `linear`; any other is im2col over blocks of output rows (bounded scratch) followed by one
/// GEMM per block.
public func conv2d(
  _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, activation: Activation = .identity
) -> Tensor {
  precondition(x.shape.count == 3, "conv2d: input must be [H, W, Cin], got \(x.shape)")
  precondition(weight.shape.count == 4, "conv2d: weight must be [Cout, Cin, kh, kw], got \(weight.shape)")
  precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride), padding \(padding)")
  let (height, width, inChannels) = (x.shape[0], x.shape[1], x.shape[2])
  let (outChannels, kernelH, kernelW) = (weight.shape[0], weight.shape[2], weight.shape[3])
  precondition(
    weight.shape[1] == inChannels, "conv2d: weight \(weight.shape) for input channels \(inChannels)")
  if let bias { precondition(bias.count == outChannels, "conv2d: bias \(bias.shape) for \(outChannels)") }
  let outH = convolutionOutputSize(height, kernel: kernelH, stride: stride, padding: padding)
  let outW = convolutionOutputSize(width, kernel: kernelW, stride: stride, padding: padding)
  precondition(outH > 0 && outW > 0, "conv2d: kernel \(weight.shape) larger than padded input \(x.shape)")

  if kernelH == 1 && kernelW == 1 && stride == 1 && padding == 0 {
    return linear(x, weight: weight.reshaped([outChannels, inChannels]), bias: bias, activation: activation)
  }
  // Columns of the im2col matrix are ordered (ky, kx, ci) so that each (output pixel, ky) copies
  // one contiguous run of kw * Cin input values; the weight is reordered to match.
  let patch = kernelH * kernelW * inChannels
  let reordered = permute(weight, [0, 2, 3, 1])  // [Cout, kh, kw, Cin]
  let rowsPerBlock = max(1, min(outH, im2colBudget / max(1, outW * patch)))
  var columns = [Float](repeating: 0, count: rowsPerBlock * outW * patch)
  let geometry = ConvolutionGeometry(
    height: height, width: width, channels: inChannels, kernelH: kernelH, kernelW: kernelW,
    stride: stride, padding: padding, outW: outW)
  // With an activation, its pass adds the bias too (as in `linear`).
  let epilogueBias = activation != .identity ? (bias?.data ?? []) : []
  return Tensor(shape: [outH, outW, outChannels]) { out in
    let beta = fillRows(
      out, rows: outH * outW, columns: outChannels, with: activation != .identity ? nil : bias)
    x.withUnsafeBufferPointer { xp in
      reordered.withUnsafeBufferPointer { wp in
        columns.withUnsafeMutableBufferPointer { cp in
          let input = xp.baseAddress!
          let col = cp.baseAddress!
          var firstRow = 0
          while firstRow < outH {
            let rows = min(rowsPerBlock, outH - firstRow)
            parallelFor(rows) { r in
              im2colRow(
                col + r * outW * patch, input: input, outputRow: firstRow + r, geometry: geometry)
            }
            sgemm(
              m: rows * outW, n: outChannels, k: patch, a: col, lda: patch, transposeA: false,
              b: wp.baseAddress!, ldb: patch, transposeB: true,
              c: out + firstRow * outW * outChannels, ldc: outChannels, beta: beta)
            if activation != .identity {
              let block = out + firstRow * outW * outChannels
              epilogueBias.withUnsafeBufferPointer { bp in
                let biasPointer = epilogueBias.isEmpty ? nil : bp.baseAddress
                parallelForChunks(rows) { range in
                  applyEpilogue(
                    block + range.lowerBound * outW * outChannels, rows: range.count * outW,
                    columns: outChannels, stride: outChannels, bias: biasPointer, activation: activation)
                }
              }
            }
            firstRow += rows
          }
        }
      }
    }
  }
}

/// nn.Conv2d (groups = 1, zero padding) with a weight packed by `PackedWeight(convolution:)`:
/// x [H, W, Cin] -> [Ho, Wo, Cout], then the bias and `activation` applied in the GEMM's register
/// tiles. Each thread takes a share of the output rows and, a few rows at a time, builds their
/// im2col rows in a buffer of its own (which stays in L2) and multiplies them at once.
public func conv2d(
  _ x: Tensor, packed weight: PackedWeight, bias: Tensor?, stride: Int, padding: Int,
  activation: Activation = .identity
) -> Tensor {
  precondition(x.shape.count == 3, "conv2d: input must be [H, W, Cin], got \(x.shape)")
  precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride), padding \(padding)")
  let (height, width, inChannels) = (x.shape[0], x.shape[1], x.shape[2])
  let (outChannels, kernelH, kernelW) = (weight.outFeatures, weight.kernelH, weight.kernelW)
  let patch = kernelH * kernelW * inChannels
  precondition(
    weight.inFeatures == patch, "conv2d: packed weight of \(weight.inFeatures) features for input \(x.shape)")
  if let bias { precondition(bias.count == outChannels, "conv2d: bias \(bias.shape) for \(outChannels)") }
  let outH = convolutionOutputSize(height, kernel: kernelH, stride: stride, padding: padding)
  let outW = convolutionOutputSize(width, kernel: kernelW, stride: stride, padding: padding)
  precondition(
    outH > 0 && outW > 0, "conv2d: kernel \(kernelH)x\(kernelW) larger than padded input \(x.shape)")
  let geometry = ConvolutionGeometry(
    height: height, width: width, channels: inChannels, kernelH: kernelH, kernelW: kernelW,
    stride: stride, padding: padding, outW: outW)
  // Output rows per im2col block: about 256 KB of im2col values, at least one row.
  let rowsPerBlock = max(1, (1 << 16) / max(1, outW * patch))
  return Tensor(shape: [outH, outW, outChannels]) { out in
    x.withUnsafeBufferPointer { xp in
      weight.panels.withUnsafeBufferPointer { wp in
        (bias?.data ?? []).withUnsafeBufferPointer { bp in
          var args = sam_gemm_args()
          args.ldo = outChannels
          args.ldx = patch
          args.packed = wp.baseAddress
          args.bias = bias == nil ? nil : bp.baseAddress
          args.gelu = activation == .gelu ? 1 : 0
          args.n = outChannels
          args.k = patch
          let call = PackedGEMMCall(args: args)
          let input = xp.baseAddress!
          parallelForChunksIfLarge(outH, work: outH * outW * patch) { range in
            let columns = UnsafeMutablePointer<Float>.allocate(capacity: rowsPerBlock * outW * patch)
            defer { columns.deallocate() }
            var block = call
            var firstRow = range.lowerBound
            while firstRow < range.upperBound {
              let rows = min(rowsPerBlock, range.upperBound - firstRow)
              for r in 0..<rows {
                im2colRow(
                  columns + r * outW * patch, input: input, outputRow: firstRow + r, geometry: geometry)
              }
              block.args.x = UnsafePointer(columns)
              block.args.out = out + firstRow * outW * outChannels
              block.rows(0..<(rows * outW))
              firstRow += rows
            }
          }
        }
      }
    }
  }
}

/// Floats of im2col scratch per block (16 MB): big enough for efficient GEMMs, small enough to
/// stay well below the size of the activations.
private let im2colBudget = 1 << 22

struct ConvolutionGeometry {
  var height: Int
  var width: Int
  var channels: Int
  var kernelH: Int
  var kernelW: Int
  var stride: Int
  var padding: Int
  var outW: Int
}

/// Writes the im2col rows of one output row: for each output pixel, kh * kw * C values ordered
/// (ky, kx, c), zeros where the window leaves the image.
private func im2colRow(
  _ col: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, outputRow oy: Int,
  geometry g: ConvolutionGeometry
) {
  let run = g.kernelW * g.channels
  let patch = g.kernelH * run
  for ox in 0..<g.outW {
    let dst = col + ox * patch
    let x0 = ox * g.stride - g.padding
    for ky in 0..<g.kernelH {
      let iy = oy * g.stride - g.padding + ky
      let d = dst + ky * run
      if iy < 0 || iy >= g.height {
        d.update(repeating: 0, count: run)
        continue
      }
      let rowStart = input + iy * g.width * g.channels
      if x0 >= 0 && x0 + g.kernelW <= g.width {
        d.update(from: rowStart + x0 * g.channels, count: run)
        continue
      }
      for kx in 0..<g.kernelW {
        let ix = x0 + kx
        if ix < 0 || ix >= g.width {
          (d + kx * g.channels).update(repeating: 0, count: g.channels)
        } else {
          (d + kx * g.channels).update(from: rowStart + ix * g.channels, count: g.channels)
        }
      }
    }
  }
}

/// Depthwise nn.Conv2d (groups = C) with zero padding: x [H, W, C], weight [C, 1, kh, kw],
/// bias [C] -> [Ho, Wo, C], followed by `activation` (applied to each output row while it is in
/// cache). Parallel over output rows; each output pixel accumulates its taps in SIMD registers over
/// the channels.
public func depthwiseConv2d(
  _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, activation: Activation = .identity
) -> Tensor {
  precondition(x.shape.count == 3, "depthwiseConv2d: input must be [H, W, C], got \(x.shape)")
  let (height, width, channels) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(
    weight.shape.count == 4 && weight.shape[0] == channels && weight.shape[1] == 1,
    "depthwiseConv2d: weight must be [\(channels), 1, kh, kw], got \(weight.shape)")
  precondition(stride >= 1 && padding >= 0, "depthwiseConv2d: stride \(stride), padding \(padding)")
  if let bias { precondition(bias.count == channels, "depthwiseConv2d: bias \(bias.shape) for \(channels)") }
  let (kernelH, kernelW) = (weight.shape[2], weight.shape[3])
  let outH = convolutionOutputSize(height, kernel: kernelH, stride: stride, padding: padding)
  let outW = convolutionOutputSize(width, kernel: kernelW, stride: stride, padding: padding)
  precondition(outH > 0 && outW > 0, "depthwiseConv2d: kernel larger than padded input \(x.shape)")
  // Taps-major weights [kh * kw, C], so each tap's weights over channels are contiguous.
  let taps = permute(weight.reshaped([channels, kernelH * kernelW]), [1, 0])
  let biasValues = bias?.data ?? [Float](repeating: 0, count: channels)
  let geometry = ConvolutionGeometry(
    height: height, width: width, channels: channels, kernelH: kernelH, kernelW: kernelW,
    stride: stride, padding: padding, outW: outW)
  // 3x3 kernels over whole 8-channel vectors take the register-blocked path for the pixels whose
  // window lies inside the image horizontally; rows above or below the image read a zero row.
  let blocked = kernelH == 3 && kernelW == 3 && channels % 8 == 0
  let zeroRow = [Float](repeating: 0, count: blocked ? width * channels : 0)
  return Tensor(shape: [outH, outW, channels]) { out in
    x.withUnsafeBufferPointer { xp in
      taps.withUnsafeBufferPointer { tp in
        biasValues.withUnsafeBufferPointer { bp in
          zeroRow.withUnsafeBufferPointer { zp in
            parallelFor(outH) { oy in
              if blocked {
                depthwise3x3Row(
                  out + oy * outW * channels, input: xp.baseAddress!, zeroRow: zp.baseAddress!,
                  taps: tp.baseAddress!, bias: bp.baseAddress!, outputRow: oy, geometry: geometry)
              } else {
                depthwiseRow(
                  out + oy * outW * channels, input: xp.baseAddress!, taps: tp.baseAddress!,
                  bias: bp.baseAddress!, outputRow: oy, geometry: geometry)
              }
              applyEpilogue(
                out + oy * outW * channels, rows: 1, columns: outW * channels, stride: 0, bias: nil,
                activation: activation)
            }
          }
        }
      }
    }
  }
}

/// One output row of a 3x3 depthwise convolution with C % 8 == 0: edge pixels as
/// `depthwiseRow`, the others by `sam_depthwise3x3_inner`, 8 or 16 channels at a time with the 9
/// tap vectors held in registers.
private func depthwise3x3Row(
  _ out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, zeroRow: UnsafePointer<Float>,
  taps: UnsafePointer<Float>, bias: UnsafePointer<Float>, outputRow oy: Int,
  geometry g: ConvolutionGeometry
) {
  let c = g.channels
  // Output columns whose three input columns are all inside the image.
  let first = min(g.outW, (g.padding + g.stride - 1) / g.stride)
  let lastInside = g.width - 3 + g.padding  // the largest ox * stride whose window fits
  let last = max(first, min(g.outW, lastInside >= 0 ? lastInside / g.stride + 1 : 0))
  let y0 = oy * g.stride - g.padding
  let kyStart = max(0, -y0)
  let kyEnd = max(kyStart, min(3, g.height - y0))
  for ox in 0..<g.outW where ox < first || ox >= last {
    let x0 = ox * g.stride - g.padding
    let kxStart = max(0, -x0)
    let kxEnd = max(kxStart, min(3, g.width - x0))
    depthwisePixel(
      out + ox * c, input: input + (y0 * g.width + x0) * c, taps: taps, bias: bias,
      channels: c, rowStride: g.width * c, kernelW: 3, ky: kyStart..<kyEnd, kx: kxStart..<kxEnd)
  }
  guard first < last else { return }
  func row(_ ky: Int) -> UnsafePointer<Float> {
    let iy = y0 + ky
    return iy >= 0 && iy < g.height ? input + iy * g.width * c : zeroRow
  }
  // In C (CSAMKernels/depthwise.c), 16 channels at a time where the CPU has AVX-512.
  sam_depthwise3x3_inner(out, row(0), row(1), row(2), taps, bias, c, first, last, g.stride, g.padding)
}

/// One output row of a depthwise convolution.
private func depthwiseRow(
  _ out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, taps: UnsafePointer<Float>,
  bias: UnsafePointer<Float>, outputRow oy: Int, geometry g: ConvolutionGeometry
) {
  let c = g.channels
  // Valid kernel rows for this output row.
  let y0 = oy * g.stride - g.padding
  let kyStart = max(0, -y0)
  let kyEnd = max(kyStart, min(g.kernelH, g.height - y0))
  for ox in 0..<g.outW {
    let x0 = ox * g.stride - g.padding
    let kxStart = max(0, -x0)
    let kxEnd = max(kxStart, min(g.kernelW, g.width - x0))
    depthwisePixel(
      out + ox * c, input: input + (y0 * g.width + x0) * c, taps: taps, bias: bias,
      channels: c, rowStride: g.width * c, kernelW: g.kernelW,
      ky: kyStart..<kyEnd, kx: kxStart..<kxEnd)
  }
}

/// out[c] = bias[c] + sum over valid taps of taps[ky * kw + kx][c] * input[ky, kx, c], where
/// `input` points at the window's (possibly out-of-image) top-left pixel; only valid taps are read.
@inline(__always)
private func depthwisePixel(
  _ out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, taps: UnsafePointer<Float>,
  bias: UnsafePointer<Float>, channels: Int, rowStride: Int, kernelW: Int,
  ky kyRange: Range<Int>, kx kxRange: Range<Int>
) {
  var c = 0
  while c + 8 <= channels {
    var acc = loadVector(bias + c)
    for ky in kyRange {
      for kx in kxRange {
        let w = loadVector(taps + (ky * kernelW + kx) * channels + c)
        let v = loadVector(input + ky * rowStride + kx * channels + c)
        acc.addProduct(w, v)
      }
    }
    storeVector(acc, out + c)
    c += 8
  }
  while c < channels {
    var acc = bias[c]
    for ky in kyRange {
      for kx in kxRange {
        acc += taps[(ky * kernelW + kx) * channels + c] * input[ky * rowStride + kx * channels + c]
      }
    }
    out[c] = acc
    c += 1
  }
}

/// nn.ConvTranspose2d with kernel == stride == k and no padding: x [H, W, Cin],
/// weight [Cin, Cout, k, k], bias [Cout] -> [H * k, W * k, Cout]. The k x k output blocks do not
/// overlap, so this is one GEMM [H * W, Cin] x [Cin, k * k * Cout] and a scatter of the blocks.
public func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int) -> Tensor {
  precondition(x.shape.count == 3, "convTranspose2d: input must be [H, W, Cin], got \(x.shape)")
  let (height, width, inChannels) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(
    weight.shape.count == 4 && weight.shape[0] == inChannels && weight.shape[2] == stride
      && weight.shape[3] == stride,
    "convTranspose2d: weight must be [\(inChannels), Cout, \(stride), \(stride)], got \(weight.shape)")
  let outChannels = weight.shape[1]
  let k = stride
  if let bias {
    precondition(bias.count == outChannels, "convTranspose2d: bias \(bias.shape) for \(outChannels)")
  }
  // [Cin, k, k, Cout]: a GEMM row (one input pixel) then holds its block as (dy, dx, co).
  let reordered = permute(weight, [0, 2, 3, 1]).reshaped([inChannels, k * k * outChannels])
  var blocks = Tensor(zeros: [height * width, k * k * outChannels])
  if inChannels > 0 {
    x.withUnsafeBufferPointer { xp in
      reordered.withUnsafeBufferPointer { wp in
        blocks.data.withUnsafeMutableBufferPointer { bp in
          sgemm(
            m: height * width, n: k * k * outChannels, k: inChannels, a: xp.baseAddress!,
            lda: inChannels, transposeA: false, b: wp.baseAddress!, ldb: k * k * outChannels,
            transposeB: false, c: bp.baseAddress!, ldc: k * k * outChannels)
        }
      }
    }
  }
  let biasValues = bias?.data ?? [Float](repeating: 0, count: outChannels)
  let run = k * outChannels  // one block row: k pixels of Cout
  return Tensor(shape: [height * k, width * k, outChannels]) { out in
    blocks.withUnsafeBufferPointer { bp in
      biasValues.withUnsafeBufferPointer { biasp in
        parallelFor(height * k) { outRow in
          let iy = outRow / k
          let dy = outRow % k
          for ix in 0..<width {
            let src = bp.baseAddress! + (iy * width + ix) * k * run + dy * run
            let dst = out + (outRow * width * k + ix * k) * outChannels
            for dx in 0..<k {
              addVectors(
                dst + dx * outChannels, src + dx * outChannels, biasp.baseAddress!, count: outChannels)
            }
          }
        }
      }
    }
  }
}

// Per-file copies: SwiftPM's debug builds compile file by file, and the optimizer cannot inline a
// function from another file of the module (not even an @inlinable one), which would leave a call
// per vector in these loops.
@inline(__always)
private func loadVector(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func loadVector(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always)
private func storeVector(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}
