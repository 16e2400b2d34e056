// Naive reference loops for every kernel, written for clarity: direct index arithmetic on the
// PyTorch definitions, accumulating in Double. Each returns the values and, where the result is
// a sum, the sum of the absolute values of its terms (the scale of float32 rounding error).
// A tensor's values are read into a local array once per call: `Tensor.data` is a computed
// property, slow to call per element in a debug build.

import Foundation
import SAMTensor
import XCTest

/// Deterministic pseudo-random numbers (SplitMix64), so failures reproduce.
struct SeededRandom {
  var state: UInt64

  init(seed: UInt64) { state = seed }

  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [low, high).
  mutating func uniform(_ low: Float, _ high: Float) -> Float {
    low + (high - low) * Float(next() >> 40) / Float(1 << 24)
  }

  mutating func tensor(_ shape: [Int], _ low: Float = -1, _ high: Float = 1) -> Tensor {
    let count = shape.reduce(1, *)
    var data = [Float](repeating: 0, count: count)
    for i in 0..<count { data[i] = uniform(low, high) }
    return Tensor(shape: shape, data: data)
  }
}

/// Values with the per-element scale of their rounding error.
struct Expected {
  var shape: [Int]
  var values: [Double]
  /// Sum of |terms| for sums; |value| for elementwise results.
  var magnitudes: [Double]

  init(shape: [Int]) {
    self.shape = shape
    let count = shape.reduce(1, *)
    values = [Double](repeating: 0, count: count)
    magnitudes = values
  }

  init(shape: [Int], values: [Double]) {
    self.shape = shape
    self.values = values
    magnitudes = values.map { abs($0) }
  }
}

/// Asserts |actual - expected| <= relative * magnitude + absolute for every element, and prints
/// the worst difference relative to its allowance (1.0 = at the limit).
func assertClose(
  _ actual: Tensor, _ expected: Expected, relative: Double, absolute: Double = 0,
  _ label: String, file: StaticString = #filePath, line: UInt = #line
) {
  let actualValues = actual.data
  XCTAssertEqual(actual.shape, expected.shape, "\(label): shape", file: file, line: line)
  guard actual.shape == expected.shape else { return }
  var worstRatio = 0.0
  var worstIndex = -1
  var failures = 0
  for i in 0..<actual.count {
    let difference = abs(Double(actualValues[i]) - expected.values[i])
    let allowed = relative * expected.magnitudes[i] + absolute
    let ratio = allowed > 0 ? difference / allowed : (difference > 0 ? .infinity : 0)
    if !(ratio <= 1) { failures += 1 }
    if !(ratio <= worstRatio) {
      worstRatio = ratio
      worstIndex = i
    }
  }
  if worstIndex >= 0 {
    let got = actualValues[worstIndex]
    let want = expected.values[worstIndex]
    print(
      "\(label): worst element \(worstIndex) got \(got) want \(want), "
        + "\(String(format: "%.3f", worstRatio)) of the allowance")
  }
  XCTAssertEqual(
    failures, 0,
    "\(label): \(failures) of \(actual.count) values outside tolerance (worst index "
      + "\(worstIndex): \(worstIndex >= 0 ? actualValues[worstIndex] : 0) vs "
      + "\(worstIndex >= 0 ? expected.values[worstIndex] : 0))", file: file, line: line)
}

enum Reference {
  /// C = op(A) op(B) with A, B given as row-major [rows, columns] matrices.
  static func gemm(
    m: Int, n: Int, k: Int, a: [Float], lda: Int, transposeA: Bool, b: [Float], ldb: Int,
    transposeB: Bool
  ) -> Expected {
    var result = Expected(shape: [m, n])
    for i in 0..<m {
      for j in 0..<n {
        var sum = 0.0
        var magnitude = 0.0
        for p in 0..<k {
          let av = Double(transposeA ? a[p * lda + i] : a[i * lda + p])
          let bv = Double(transposeB ? b[j * ldb + p] : b[p * ldb + j])
          sum += av * bv
          magnitude += abs(av * bv)
        }
        result.values[i * n + j] = sum
        result.magnitudes[i * n + j] = magnitude
      }
    }
    return result
  }

  static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Expected {
    let biasValues = bias?.data
    let xValues = x.data
    let weightValues = weight.data
    let (outF, inF) = (weight.shape[0], weight.shape[1])
    let rows = x.count / inF
    var result = Expected(shape: Array(x.shape.dropLast()) + [outF])
    for r in 0..<rows {
      for o in 0..<outF {
        var sum = Double(biasValues?[o] ?? 0)
        var magnitude = abs(sum)
        for i in 0..<inF {
          let term = Double(xValues[r * inF + i]) * Double(weightValues[o * inF + i])
          sum += term
          magnitude += abs(term)
        }
        result.values[r * outF + o] = sum
        result.magnitudes[r * outF + o] = magnitude
      }
    }
    return result
  }

  /// nn.Conv2d with groups 1 or groups == channels (depthwise), on [H, W, C] input.
  static func conv2d(
    _ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int, padding: Int, depthwise: Bool = false
  ) -> Expected {
    let biasValues = bias?.data
    let weightValues = weight.data
    let xValues = x.data
    let (h, w, cin) = (x.shape[0], x.shape[1], x.shape[2])
    let (cout, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    let ho = (h + 2 * padding - kh) / stride + 1
    let wo = (w + 2 * padding - kw) / stride + 1
    var result = Expected(shape: [ho, wo, cout])
    for oy in 0..<ho {
      for ox in 0..<wo {
        for co in 0..<cout {
          var sum = Double(biasValues?[co] ?? 0)
          var magnitude = abs(sum)
          let inputChannels = depthwise ? co..<(co + 1) : 0..<cin
          for ci in inputChannels {
            let weightChannel = depthwise ? 0 : ci
            for ky in 0..<kh {
              for kx in 0..<kw {
                let iy = oy * stride - padding + ky
                let ix = ox * stride - padding + kx
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                let wv = weightValues[((co * weight.shape[1] + weightChannel) * kh + ky) * kw + kx]
                let term = Double(xValues[(iy * w + ix) * cin + ci]) * Double(wv)
                sum += term
                magnitude += abs(term)
              }
            }
          }
          result.values[(oy * wo + ox) * cout + co] = sum
          result.magnitudes[(oy * wo + ox) * cout + co] = magnitude
        }
      }
    }
    return result
  }

  /// nn.ConvTranspose2d(kernel k, stride s, padding 0) on [H, W, Cin] input: every input pixel
  /// scatters x * weight[ci, co, ky, kx] to output (iy * s + ky, ix * s + kx).
  static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor?, stride: Int) -> Expected {
    let biasValues = bias?.data
    let xValues = x.data
    let weightValues = weight.data
    let (h, w, cin) = (x.shape[0], x.shape[1], x.shape[2])
    let (cout, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3])
    let ho = (h - 1) * stride + kh
    let wo = (w - 1) * stride + kw
    var result = Expected(shape: [ho, wo, cout])
    for oy in 0..<ho {
      for ox in 0..<wo {
        for co in 0..<cout {
          let b = Double(biasValues?[co] ?? 0)
          result.values[(oy * wo + ox) * cout + co] = b
          result.magnitudes[(oy * wo + ox) * cout + co] = abs(b)
        }
      }
    }
    for iy in 0..<h {
      for ix in 0..<w {
        for ci in 0..<cin {
          for co in 0..<cout {
            for ky in 0..<kh {
              for kx in 0..<kw {
                let o = ((iy * stride + ky) * wo + ix * stride + kx) * cout + co
                let term =
                  Double(xValues[(iy * w + ix) * cin + ci])
                  * Double(weightValues[((ci * cout + co) * kh + ky) * kw + kx])
                result.values[o] += term
                result.magnitudes[o] += abs(term)
              }
            }
          }
        }
      }
    }
    return result
  }

  static func layerNorm(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Double) -> Expected {
    let xValues = x.data
    let weightValues = weight.data
    let biasValues = bias.data
    let c = x.shape.last!
    var result = Expected(shape: x.shape)
    for r in 0..<(x.count / c) {
      let row = (0..<c).map { Double(xValues[r * c + $0]) }
      let mean = row.reduce(0, +) / Double(c)
      let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(c)
      let inverse = 1 / (variance + eps).squareRoot()
      for i in 0..<c {
        let normalized = (row[i] - mean) * inverse
        let value = normalized * Double(weightValues[i]) + Double(biasValues[i])
        result.values[r * c + i] = value
        // Rounding scales with the terms, not with their (maybe tiny) result: x - mean loses
        // 2^-24 of |x| + |mean|, which the scaling by inverse and weight carries along.
        result.magnitudes[r * c + i] =
          (abs(row[i]) + abs(mean)) * inverse * abs(Double(weightValues[i])) + abs(Double(biasValues[i]))
      }
    }
    return result
  }

  /// x * Phi(x), with 1 + erf(z) written as erfc(-z) so the negative tail does not cancel.
  static func gelu(_ x: Double) -> Double { x * 0.5 * erfc(-x / 2.0.squareRoot()) }

  /// Softmax by rows; the magnitude of p is p * (1 + |x - max|) because float32 rounds the
  /// exponent x - max by 2^-24 |x - max|, a relative error of exp(x - max) of the same size.
  static func softmax(_ x: Tensor) -> Expected {
    let xValues = x.data
    let c = x.shape.last!
    var values = [Double](repeating: 0, count: x.count)
    var magnitudes = values
    for r in 0..<(x.count / c) {
      let row = (0..<c).map { Double(xValues[r * c + $0]) }
      let maximum = row.max()!
      let exps = row.map { exp($0 - maximum) }
      let total = exps.reduce(0, +)
      for i in 0..<c {
        values[r * c + i] = exps[i] / total
        magnitudes[r * c + i] = exps[i] / total * (1 + abs(row[i] - maximum))
      }
    }
    var result = Expected(shape: x.shape, values: values)
    result.magnitudes = magnitudes
    return result
  }

  /// result[i0, i1, ...] = x[index with dimension perm[d] = i_d].
  static func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
    let xValues = x.data
    let outShape = perm.map { x.shape[$0] }
    var inputStrides = [Int](repeating: 1, count: x.shape.count)
    for d in stride(from: x.shape.count - 2, through: 0, by: -1) {
      inputStrides[d] = inputStrides[d + 1] * x.shape[d + 1]
    }
    var data = [Float](repeating: 0, count: x.count)
    for flat in 0..<x.count {
      var rest = flat
      var source = 0
      for d in stride(from: outShape.count - 1, through: 0, by: -1) {
        source += (rest % outShape[d]) * inputStrides[perm[d]]
        rest /= outShape[d]
      }
      data[flat] = xValues[source]
    }
    return Tensor(shape: outShape, data: data)
  }

  static func attention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor?, scale: Double) -> Expected {
    let qValues = q.data
    let kValues = k.data
    let biasValues = bias?.data
    let vValues = v.data
    let (g, nq, d) = (q.shape[0], q.shape[1], q.shape[2])
    let (nk, dv) = (k.shape[1], v.shape[2])
    let heads = bias?.shape[0] ?? 1
    var result = Expected(shape: [g, nq, dv])
    for group in 0..<g {
      for i in 0..<nq {
        var scores = [Double](repeating: 0, count: nk)
        for j in 0..<nk {
          var dot = 0.0
          for p in 0..<d {
            dot += Double(qValues[(group * nq + i) * d + p]) * Double(kValues[(group * nk + j) * d + p])
          }
          scores[j] = dot * scale + Double(biasValues?[((group % heads) * nq + i) * nk + j] ?? 0)
        }
        let maximum = scores.max()!
        let weights = scores.map { exp($0 - maximum) }
        let total = weights.reduce(0, +)
        for c in 0..<dv {
          var sum = 0.0
          var magnitude = 0.0
          for j in 0..<nk {
            let term = weights[j] / total * Double(vValues[(group * nk + j) * dv + c])
            sum += term
            magnitude += abs(term)
          }
          result.values[(group * nq + i) * dv + c] = sum
          result.magnitudes[(group * nq + i) * dv + c] = magnitude
        }
      }
    }
    return result
  }

  /// torch's bilinear interpolate (align_corners=False): source = max(0, (dst + 0.5) * in / out
  /// - 0.5) in float32 (multiply-add fused, as torch's build computes it; TorchParityTests checks
  /// this against torch), neighbours floor(source) and the next one clamped to the edge.
  static func resizeBilinear(_ x: Tensor, height: Int, width: Int) -> Expected {
    let (p, h, w) = (x.shape[0], x.shape[1], x.shape[2])
    func taps(_ dst: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Double) {
      let scale = Float(inSize) / Float(outSize)
      let source = max(0, Float(-0.5).addingProduct(scale, Float(dst) + 0.5))  // fused, as torch
      let low = min(Int(source.rounded(.down)), inSize - 1)
      let high = min(low + 1, inSize - 1)
      return (low, high, Double(source) - Double(low))
    }
    var result = Expected(shape: [p, height, width])
    let input = x.data
    for plane in 0..<p {
      for oy in 0..<height {
        let (y0, y1, ly) = taps(oy, h, height)
        for ox in 0..<width {
          let (x0, x1, lx) = taps(ox, w, width)
          func at(_ y: Int, _ column: Int) -> Double { Double(input[(plane * h + y) * w + column]) }
          let terms = [
            (1 - ly) * (1 - lx) * at(y0, x0), (1 - ly) * lx * at(y0, x1), ly * (1 - lx) * at(y1, x0),
            ly * lx * at(y1, x1),
          ]
          let o = (plane * height + oy) * width + ox
          result.values[o] = terms.reduce(0, +)
          result.magnitudes[o] = terms.map { abs($0) }.reduce(0, +)
        }
      }
    }
    return result
  }
}
