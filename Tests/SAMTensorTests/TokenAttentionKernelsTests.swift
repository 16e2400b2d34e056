import Foundation
import SAMTensor
import XCTest

/// TokenAttentionKernels.swift against naive loops in Double.
final class TokenAttentionKernelsTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    VectorKernels.use(.automatic)
    super.tearDown()
  }

  func testTokenMajorHeadBlocksPlaceEachHeadInItsOwnColumns() {
    var random = SeededRandom(seed: 95)
    let (tokens, heads, depth) = (3, 4, 2)
    let x = random.tensor([tokens, heads * depth])
    let (values, spread) = (x.data, tokenMajorHeadBlocks(x, heads: heads))
    XCTAssertEqual(spread.shape, [tokens * heads, heads * depth])
    let spreadValues = spread.data
    for t in 0..<tokens {
      for h in 0..<heads {
        for column in 0..<(heads * depth) {
          let want = column / depth == h ? values[t * heads * depth + column] : 0
          XCTAssertEqual(spreadValues[(t * heads + h) * heads * depth + column], want, "token \(t) head \(h)")
        }
      }
    }
  }

  func testSoftmaxOverStridedGroupsAgainstDouble() {
    var random = SeededRandom(seed: 93)
    // 7 tokens x 8 heads as the decoder has; lanes beyond a vector (13 = 8 + 5), one lane, and
    // softmaxes of one value.
    for (rows, length, lanes) in [(300, 7, 8), (5, 3, 13), (4, 6, 1), (3, 1, 8)] {
      var x = random.tensor([rows, length * lanes], -20, 20)
      let values = x.data
      var expected = Expected(shape: x.shape)
      for r in 0..<rows {
        for s in 0..<lanes {
          let indices = (0..<length).map { r * length * lanes + $0 * lanes + s }
          let logits = indices.map { Double(values[$0]) }
          let top = logits.max()!
          let total = logits.map { exp($0 - top) }.reduce(0, +)
          for (index, logit) in zip(indices, logits) {
            expected.values[index] = exp(logit - top) / total
            expected.magnitudes[index] = expected.values[index]
          }
        }
      }
      softmaxOverStridedGroups(&x, lanes: lanes)
      // 1e-6 relative: the vector exp (< 6e-9) and a handful of float32 roundings; 1e-12 absolute
      // for the tiny probabilities.
      assertClose(x, expected, relative: 1e-6, absolute: 1e-12, "softmax \(rows) rows, \(length) x \(lanes)")
    }
  }

  /// 8 lanes (the decoder's heads) run two rows at a time in C: the same bits with AVX2 and
  /// AVX-512, and as the 8-lane loop for other lane counts computes them (lanes 8 + 8 of a row of
  /// 16 lanes, each group of 8 adjacent lanes taken alone).
  func testSoftmaxOverEightLanesGivesTheSameBitsEverywhere() throws {
    defer { VectorKernels.use(.automatic) }
    var random = SeededRandom(seed: 94)
    let x = random.tensor([301, 7 * 8], -20, 20)
    var narrow = x
    XCTAssertEqual(VectorKernels.use(.avx2), 8)
    softmaxOverStridedGroups(&narrow, lanes: 8)
    // The same logits as 16 lanes per token: lanes 0..<8 and 8..<16 are two rows' heads.
    var paired = Tensor(shape: [151, 7 * 16], data: [Float](repeating: -30, count: 151 * 7 * 16))
    for r in 0..<301 {
      for t in 0..<7 {
        for h in 0..<8 {
          paired.data[(r / 2) * 112 + t * 16 + (r % 2) * 8 + h] = x.data[r * 56 + t * 8 + h]
        }
      }
    }
    softmaxOverStridedGroups(&paired, lanes: 16)
    var differing = 0
    for r in 0..<301 {
      for t in 0..<7 {
        for h in 0..<8
        where narrow.data[r * 56 + t * 8 + h].bitPattern
          != paired.data[(r / 2) * 112 + t * 16 + (r % 2) * 8 + h].bitPattern
        {
          differing += 1
        }
      }
    }
    XCTAssertEqual(differing, 0, "8-lane softmax values that differ from the generic loop")
    guard VectorKernels.use(.avx512) == 16 else {
      throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
    }
    var wide = x
    softmaxOverStridedGroups(&wide, lanes: 8)
    XCTAssertEqual(
      zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count, 0,
      "values that differ between AVX2 and AVX-512")
  }

  func testLayerNormOfProductAndResidualAgainstDouble() {
    var random = SeededRandom(seed: 94)
    // The decoder's shape (4096 x 56 x 256, several row blocks per thread), an odd one, and k = 0;
    // then shapes the kernel cannot normalize tile by tile (more inputs than one column block of
    // the weight allows, more columns than its scratch holds), normalized after the product.
    for (m, k, n) in [(4096, 56, 256), (37, 5, 12), (3, 0, 8), (50, 200, 256), (29, 3, 600)] {
      let a = random.tensor([m, k])
      let b = random.tensor([k, n])
      let residual = random.tensor([m, n], -2, 2)
      let offset = random.tensor([m, n], -2, 2)
      let bias = random.tensor([n])
      let weight = random.tensor([n], 0.5, 1.5)
      let normBias = random.tensor([n])
      let (aValues, bValues, residualValues, biasValues) = (a.data, b.data, residual.data, bias.data)
      let (weightValues, normBiasValues, offsetValues) = (weight.data, normBias.data, offset.data)
      var normalized = Expected(shape: [m, n])
      var (wantMeans, wantInverses) = ([Double](repeating: 0, count: m), [Double](repeating: 0, count: m))
      for i in 0..<m {
        var sums = [Double](repeating: 0, count: n)
        var magnitudes = sums
        for j in 0..<n {
          sums[j] = Double(residualValues[i * n + j]) + Double(biasValues[j])
          magnitudes[j] = abs(Double(residualValues[i * n + j])) + abs(Double(biasValues[j]))
          for p in 0..<k {
            let term = Double(aValues[i * k + p]) * Double(bValues[p * n + j])
            sums[j] += term
            magnitudes[j] += abs(term)
          }
        }
        let mean = sums.reduce(0, +) / Double(n)
        let variance = sums.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)
        let inverse = 1 / (variance + 1e-5).squareRoot()
        (wantMeans[i], wantInverses[i]) = (mean, inverse)
        for j in 0..<n {
          let w = Double(weightValues[j])
          normalized.values[i * n + j] = (sums[j] - mean) * inverse * w + Double(normBiasValues[j])
          // The sum's rounding (scale: its terms) and the normalization's, carried by inverse * w.
          normalized.magnitudes[i * n + j] =
            (magnitudes[j] + abs(mean)) * inverse * abs(w) + abs(Double(normBiasValues[j]))
        }
      }
      var shifted = normalized
      for i in 0..<(m * n) {
        shifted.values[i] += Double(offsetValues[i])
        shifted.magnitudes[i] += abs(Double(offsetValues[i]))
      }
      let (gotNormalized, gotShifted, gotMeans, gotInverses) = layerNormOfProductAndResidual(
        a, b, residual: residual, bias: bias, normWeight: weight, normBias: normBias, eps: 1e-5,
        offset: offset)
      // 1e-6 relative to the terms: float32 sums of up to 58 terms in BLAS's order, then the norm.
      assertClose(gotNormalized, normalized, relative: 1e-6, "normalized \(m)x\(k)x\(n)")
      assertClose(gotShifted, shifted, relative: 1e-6, "normalized + offset \(m)x\(k)x\(n)")
      // The statistics the norm used (LowRankUpscalingInput needs them).
      XCTAssertEqual(gotMeans.count, m)
      XCTAssertEqual(gotInverses.count, m)
      for i in 0..<min(m, gotMeans.count, gotInverses.count) {
        XCTAssertEqual(
          Double(gotInverses[i]), wantInverses[i], accuracy: 1e-5 * wantInverses[i], "inverse, row \(i)")
        XCTAssertEqual(Double(gotMeans[i]), wantMeans[i], accuracy: 1e-5 / wantInverses[i], "mean, row \(i)")
      }
    }
  }

  /// The same bits with AVX2 and AVX-512, and with any number of threads.
  func testLayerNormOfProductAndResidualSameBitsForEveryWidthAndThreadCount() throws {
    var random = SeededRandom(seed: 96)
    // Tiles of 12 and 6 rows with tails, a partial last vector of columns, both ways to normalize.
    for (m, k, n) in [(4096, 56, 256), (101, 7, 40), (50, 200, 256), (29, 3, 600)] {
      let (a, b) = (random.tensor([m, k]), random.tensor([k, n]))
      let (residual, offset) = (random.tensor([m, n], -2, 2), random.tensor([m, n], -2, 2))
      let (bias, weight, normBias) = (random.tensor([n]), random.tensor([n], 0.5, 1.5), random.tensor([n]))
      func run() -> [[Float]] {
        let (normalized, shifted, means, inverses) = layerNormOfProductAndResidual(
          a, b, residual: residual, bias: bias, normWeight: weight, normBias: normBias, eps: 1e-5,
          offset: offset)
        return [normalized.data, shifted.data, means, inverses]
      }
      func differing(_ x: [[Float]], _ y: [[Float]]) -> [Int] {
        zip(x, y).map { zip($0, $1).filter { $0.bitPattern != $1.bitPattern }.count }
      }
      let label = "\(m)x\(k)x\(n): normalized, shifted, means, inverses that differ"
      XCTAssertEqual(VectorKernels.use(.avx2), 8)
      ComputeThreads.set(1)
      let narrow = run()
      for threads in [2, 3] {
        ComputeThreads.set(threads)
        XCTAssertEqual(differing(run(), narrow), [0, 0, 0, 0], "AVX2, \(threads) threads: \(label)")
      }
      guard VectorKernels.use(.avx512) == 16 else {
        throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
      }
      for threads in [1, 2, 3] {
        ComputeThreads.set(threads)
        XCTAssertEqual(differing(run(), narrow), [0, 0, 0, 0], "AVX-512, \(threads) threads: \(label)")
      }
    }
  }

  /// With a probe, the norm's outputs are the same bits as without, and the probed rows are those
  /// of `linear(normalized + offset, packed: probe)`, for both ISAs, any thread count, both ways
  /// the kernel normalizes (tile by tile, and block by block for wide or deep products), probes of
  /// at most 16 columns and of several panels, and tail tiles.
  func testLayerNormProbeGivesTheProductOfTheOffsetRows() throws {
    var random = SeededRandom(seed: 97)
    // Without AVX-512 only the AVX2 kernel runs (its bits are the same, checked above).
    let widths: [VectorKernels.Width] = VectorKernels.use(.avx512) == 16 ? [.avx2, .avx512] : [.avx2]
    for (m, k, n, probeColumns) in [
      (4096, 56, 256, 16), (101, 7, 40, 56), (50, 200, 256, 40), (29, 3, 600, 9),
    ] {
      let (a, b) = (random.tensor([m, k]), random.tensor([k, n]))
      let (residual, offset) = (random.tensor([m, n], -2, 2), random.tensor([m, n], -2, 2))
      let (bias, weight, normBias) = (random.tensor([n]), random.tensor([n], 0.5, 1.5), random.tensor([n]))
      let probe = PackedWeight(random.tensor([probeColumns, n]))
      for width in widths {
        VectorKernels.use(width)
        for threads in [1, 2, 3] {
          ComputeThreads.set(threads)
          let label = "\(m)x\(k)x\(n), probe \(probeColumns), \(width), \(threads) threads"
          let (normalized, shifted, means, inverses) = layerNormOfProductAndResidual(
            a, b, residual: residual, bias: bias, normWeight: weight, normBias: normBias, eps: 1e-5,
            offset: offset)
          let (probedNormalized, probed, probedMeans, probedInverses) = layerNormOfProductAndResidual(
            a, b, residual: residual, bias: bias, normWeight: weight, normBias: normBias, eps: 1e-5,
            offset: offset, probe: probe)
          let want = linear(shifted, packed: probe, bias: nil)
          XCTAssertEqual(probed.shape, [m, probeColumns], label)
          func differing(_ x: [Float], _ y: [Float]) -> Int {
            x.count != y.count
              ? max(x.count, y.count) : zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count
          }
          XCTAssertEqual(differing(probed.data, want.data), 0, "probed values that differ: \(label)")
          XCTAssertEqual(differing(probedNormalized.data, normalized.data), 0, "normalized: \(label)")
          XCTAssertEqual(differing(probedMeans, means), 0, "means: \(label)")
          XCTAssertEqual(differing(probedInverses, inverses), 0, "inverses: \(label)")
          // Without the offset rows (not stored when the kernel fuses, e.g. 4096x56x256): the
          // same normalized rows and statistics.
          let (bare, bareMeans, bareInverses) = layerNormOfProductAndResidual(
            a, b, residual: residual, bias: bias, normWeight: weight, normBias: normBias, eps: 1e-5)
          XCTAssertEqual(differing(bare.data, normalized.data), 0, "normalized without offset: \(label)")
          XCTAssertEqual(differing(bareMeans, means), 0, "means without offset: \(label)")
          XCTAssertEqual(differing(bareInverses, inverses), 0, "inverses without offset: \(label)")
        }
      }
    }
  }

  /// Head-by-head scores of transposed rows: the product with the keys' head blocks, bit for bit,
  /// for both ISAs and any thread count, with a last partial block of rows, the decoder's 8 heads of
  /// 16 values, a small odd shape and more columns than the kernel's buffer (320: two slices).
  func testHeadScoresEqualTheProductWithTheHeadBlocks() throws {
    var random = SeededRandom(seed: 98)
    let widths: [VectorKernels.Width] = VectorKernels.use(.avx512) == 16 ? [.avx2, .avx512] : [.avx2]
    for (rows, tokens, heads, depth) in [
      (4096, 7, 8, 16), (301, 3, 8, 16), (37, 2, 3, 5), (16, 1, 1, 1), (40, 40, 8, 16),
    ] {
      let x = random.tensor([rows, heads * depth], -2, 2)
      let keys = random.tensor([tokens, heads * depth], -2, 2)
      let transposed = TransposedRows(x)
      // The other heads' columns hold zeros: the dense product's chains add only those.
      let want = linear(x, packed: PackedWeight(tokenMajorHeadBlocks(keys, heads: heads)), bias: nil)
      for width in widths {
        VectorKernels.use(width)
        for threads in [1, 2, 3] {
          ComputeThreads.set(threads)
          let got = headScores(transposed, keys: keys, heads: heads)
          let label =
            "\(rows) rows, \(tokens) tokens, \(heads) heads of \(depth), \(width), \(threads) threads"
          XCTAssertEqual(got.shape, [rows, tokens * heads], label)
          XCTAssertEqual(
            zip(got.data, want.data).filter { $0.bitPattern != $1.bitPattern }.count, 0, "differing: \(label)"
          )
        }
      }
      // And against Double, so that a wrong product in both places shows too.
      var worst = 0.0
      for p in 0..<rows {
        for t in 0..<tokens {
          for h in 0..<heads {
            var sum = 0.0
            for j in 0..<depth {
              sum +=
                Double(x.data[p * heads * depth + h * depth + j])
                * Double(keys.data[t * heads * depth + h * depth + j])
            }
            worst = max(worst, abs(Double(want.data[p * tokens * heads + t * heads + h]) - sum))
          }
        }
      }
      XCTAssertLessThan(worst, 1e-4, "\(rows) rows against Double")
    }
  }
}
