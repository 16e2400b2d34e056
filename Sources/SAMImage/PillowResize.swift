// Pillow's resampling (src/libImaging/Resample.c, Pillow 13) re-implemented for 8-bit RGB with
// the bilinear filter, to give byte for byte what `Image.resize((w, h), Image.BILINEAR)` gives:
// MobileSAM's `ResizeLongestSide.apply_image` resizes through torchvision, which hands PIL images
// to Pillow.
//
// What has to match exactly:
// - The filter support grows with the downscale factor (Pillow always antialiases).
// - Per output pixel, the first input index and the tap count are rounded as Pillow does, the
//   weights are normalized in Double and then turned into 22-bit fixed point with Pillow's
//   rounding (away from zero).
// - Two passes with the intermediate clipped to 8 bits. A pass whose dimension is unchanged is
//   skipped. The horizontal pass runs first (only over the rows the vertical pass will read),
//   except when the width grows while the height shrinks: then Pillow 13 shrinks first (the
//   vertical pass runs first). We found that order by comparing Pillow 13.0.0's output with both
//   orders over many size combinations (Scripts/make_image_fixtures.py keeps cases of each).

/// The size `ResizeLongestSide.get_preprocess_shape` gives: the longest side becomes `target`,
/// the other is scaled by the same factor and rounded as `int(x * scale + 0.5)` in Double.
public func longestSideSize(width: Int, height: Int, target: Int = 1024) -> (width: Int, height: Int) {
  precondition(width > 0 && height > 0 && target > 0, "longestSideSize of \(width)x\(height) to \(target)")
  let scale = Double(target) / Double(max(width, height))
  let newWidth = Int(Double(width) * scale + 0.5)
  let newHeight = Int(Double(height) * scale + 0.5)
  return (newWidth, newHeight)
}

/// Resizes like Pillow's `Image.resize((width, height), Image.BILINEAR)` on an RGB image.
public func resizeBilinearLikePillow(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
  precondition(width > 0 && height > 0, "resize target \(width)x\(height) must be positive")
  precondition(image.width > 0 && image.height > 0, "cannot resize an empty image")
  let needHorizontal = width != image.width
  let needVertical = height != image.height
  if !needHorizontal && !needVertical { return image }

  let vertical = ResampleTable(inputSize: image.height, outputSize: height)
  if needHorizontal && needVertical && width > image.width && height < image.height {
    let shrunk = resampleVertically(image, table: vertical, rowOffset: 0)
    let horizontal = ResampleTable(inputSize: image.width, outputSize: width)
    return resampleHorizontally(shrunk, table: horizontal, rows: 0..<height)
  }
  // Rows of the input that the vertical pass reads; the horizontal pass only produces these.
  let firstRow = vertical.starts[0]
  let lastRow = vertical.starts[height - 1] + vertical.counts[height - 1]

  var current = image
  var rowOffset = 0
  if needHorizontal {
    let horizontal = ResampleTable(inputSize: image.width, outputSize: width)
    let rows = needVertical ? firstRow..<lastRow : 0..<image.height
    current = resampleHorizontally(image, table: horizontal, rows: rows)
    rowOffset = rows.lowerBound
  }
  if needVertical {
    current = resampleVertically(current, table: vertical, rowOffset: rowOffset)
  }
  return current
}

/// Pillow's 8-bit fixed point: weights carry 22 fraction bits (32 - 8 - 2: room for the 8-bit
/// sample and for sums slightly outside 0...1).
private let precisionBits: Int32 = 22

/// Per output index: first input index, number of taps, and `taps` fixed-point weights.
struct ResampleTable {
  let taps: Int
  var starts: [Int]
  var counts: [Int]
  var weights: [Int32]

  /// Pillow's `precompute_coeffs` (with box = the whole input) followed by
  /// `normalize_coeffs_8bpc`, for the bilinear (triangle) filter of support 1.
  init(inputSize: Int, outputSize: Int) {
    let scale = Double(inputSize) / Double(outputSize)
    let filterScale = max(scale, 1.0)
    let support = 1.0 * filterScale
    let taps = Int(support.rounded(.up)) * 2 + 1
    self.taps = taps
    starts = [Int](repeating: 0, count: outputSize)
    counts = [Int](repeating: 0, count: outputSize)
    weights = [Int32](repeating: 0, count: outputSize * taps)
    var real = [Double](repeating: 0, count: taps)
    let inverseFilterScale = 1.0 / filterScale
    for output in 0..<outputSize {
      let center = (Double(output) + 0.5) * scale
      // C's (int) cast truncates toward zero, as Int(_: Double) does.
      let first = max(Int(center - support + 0.5), 0)
      let count = min(Int(center + support + 0.5), inputSize) - first
      var total = 0.0
      for tap in 0..<count {
        let weight = triangle((Double(tap + first) - center + 0.5) * inverseFilterScale)
        real[tap] = weight
        total += weight
      }
      for tap in 0..<taps {
        var weight = tap < count ? real[tap] : 0
        if tap < count && total != 0 { weight /= total }
        weights[output * taps + tap] = fixedPoint(weight)
      }
      starts[output] = first
      counts[output] = count
    }
  }

  /// The same weights as fixed windows of `taps` inputs (the most any output uses) that stay
  /// inside the input: windows near the end start earlier, with zero weights in front. A constant
  /// trip count spares the kernel the branch mispredictions of Pillow's variable one, and zero
  /// weights add exactly 0. Nil when the input is shorter than a window.
  func fixedWindows(inputSize: Int) -> (taps: Int, starts: [Int], weights: [Int32])? {
    let windowTaps = counts.max() ?? 0
    guard windowTaps > 0, inputSize >= windowTaps else { return nil }
    var windowStarts = starts
    var windowWeights = [Int32](repeating: 0, count: starts.count * windowTaps)
    for output in 0..<starts.count {
      let start = min(starts[output], inputSize - windowTaps)
      let shift = starts[output] - start
      windowStarts[output] = start
      for tap in 0..<counts[output] {
        windowWeights[output * windowTaps + shift + tap] = weights[output * taps + tap]
      }
    }
    return (windowTaps, windowStarts, windowWeights)
  }
}

private func triangle(_ x: Double) -> Double {
  let distance = x < 0 ? -x : x
  return distance < 1 ? 1 - distance : 0
}

private func fixedPoint(_ weight: Double) -> Int32 {
  let scaled = weight * Double(1 << precisionBits)
  return Int32(weight < 0 ? -0.5 + scaled : 0.5 + scaled)
}

@inline(__always)
private func clip8(_ sum: Int32) -> UInt8 {
  UInt8(clamping: sum >> precisionBits)
}

private let roundingHalf: Int32 = 1 << (precisionBits - 1)

/// Output row `r` is input row `rows.lowerBound + r` resampled along x.
private func resampleHorizontally(_ image: RGBImage, table: ResampleTable, rows: Range<Int>) -> RGBImage {
  let outWidth = table.starts.count
  let outHeight = rows.count
  let inRowBytes = image.width * 3
  let outRowBytes = outWidth * 3
  let windows = table.fixedWindows(inputSize: image.width)
  let pixels = [UInt8](unsafeUninitializedCapacity: outRowBytes * outHeight) { buffer, initialized in
    image.pixels.withUnsafeBufferPointer { input in
      let inputEnd = input.baseAddress! + input.count
      var row = 0
      while row < outHeight {
        let source = input.baseAddress! + (rows.lowerBound + row) * inRowBytes
        let output = buffer.baseAddress! + row * outRowBytes
        // The vector kernels load 4 bytes per pixel, one past the pixel: fine while another
        // row follows in memory, not on the buffer's last row.
        if let windows, row + 4 <= outHeight, source + 4 * inRowBytes < inputEnd {
          resampleFourRowsHorizontally(
            input: source, inRowBytes: inRowBytes, output: output, outRowBytes: outRowBytes,
            starts: windows.starts, weights: windows.weights, taps: windows.taps)
          row += 4
        } else {
          resampleRowHorizontally(
            input: source, output: output, outWidth: outWidth, starts: table.starts, counts: table.counts,
            weights: table.weights, taps: table.taps)
          row += 1
        }
      }
    }
    initialized = outRowBytes * outHeight
  }
  return RGBImage(width: outWidth, height: outHeight, pixels: pixels)
}

/// The scalar kernel: three 32-bit sums per output pixel, as Pillow computes them.
private func resampleRowHorizontally(
  input: UnsafePointer<UInt8>, output: UnsafeMutablePointer<UInt8>, outWidth: Int,
  starts: UnsafePointer<Int>, counts: UnsafePointer<Int>, weights: UnsafePointer<Int32>, taps: Int
) {
  for x in 0..<outWidth {
    var red = roundingHalf
    var green = roundingHalf
    var blue = roundingHalf
    let source = input + starts[x] * 3
    let kernel = weights + x * taps
    for tap in 0..<counts[x] {
      let weight = kernel[tap]
      let pixel = source + tap * 3
      red &+= Int32(pixel[0]) &* weight
      green &+= Int32(pixel[1]) &* weight
      blue &+= Int32(pixel[2]) &* weight
    }
    output[x * 3] = clip8(red)
    output[x * 3 + 1] = clip8(green)
    output[x * 3 + 2] = clip8(blue)
  }
}

/// The same sums for four consecutive rows at once, over fixed windows, with R, G, B (and an
/// ignored 4th byte) of a pixel in one SIMD4<Int32>: identical integer arithmetic, with the
/// window bookkeeping and weight loads shared by the four rows. Reads one byte past each window.
private func resampleFourRowsHorizontally(
  input: UnsafePointer<UInt8>, inRowBytes: Int, output: UnsafeMutablePointer<UInt8>, outRowBytes: Int,
  starts: UnsafePointer<Int>, weights: UnsafePointer<Int32>, taps: Int
) {
  let row0 = UnsafeRawPointer(input)
  let row1 = row0 + inRowBytes
  let row2 = row1 + inRowBytes
  let row3 = row2 + inRowBytes
  let outWidth = outRowBytes / 3
  for x in 0..<outWidth {
    var sums0 = SIMD4<Int32>(repeating: roundingHalf)
    var sums1 = sums0
    var sums2 = sums0
    var sums3 = sums0
    var offset = starts[x] * 3
    let kernel = weights + x * taps
    for tap in 0..<taps {
      let weight = SIMD4<Int32>(repeating: kernel[tap])
      sums0 &+= widen(row0.loadUnaligned(fromByteOffset: offset, as: SIMD4<UInt8>.self)) &* weight
      sums1 &+= widen(row1.loadUnaligned(fromByteOffset: offset, as: SIMD4<UInt8>.self)) &* weight
      sums2 &+= widen(row2.loadUnaligned(fromByteOffset: offset, as: SIMD4<UInt8>.self)) &* weight
      sums3 &+= widen(row3.loadUnaligned(fromByteOffset: offset, as: SIMD4<UInt8>.self)) &* weight
      offset += 3
    }
    let pixel = output + x * 3
    storePixel(sums0, to: pixel, isLast: x == outWidth - 1)
    storePixel(sums1, to: pixel + outRowBytes, isLast: x == outWidth - 1)
    storePixel(sums2, to: pixel + 2 * outRowBytes, isLast: x == outWidth - 1)
    storePixel(sums3, to: pixel + 3 * outRowBytes, isLast: x == outWidth - 1)
  }
}

@inline(__always)
private func widen(_ bytes: SIMD4<UInt8>) -> SIMD4<Int32> {
  SIMD4<Int32>(truncatingIfNeeded: bytes)
}

/// Writes the three clipped sums. Inside a row it stores 4 bytes (the 4th lands on the next
/// pixel's red, which is written next); the row's last pixel is stored byte by byte.
@inline(__always)
private func storePixel(_ sums: SIMD4<Int32>, to pixel: UnsafeMutablePointer<UInt8>, isLast: Bool) {
  var values = sums &>> SIMD4<Int32>(repeating: precisionBits)
  values.replace(with: 0, where: values .< 0)
  values.replace(with: 255, where: values .> 255)
  let bytes = SIMD4<UInt8>(truncatingIfNeeded: values)
  if isLast {
    pixel[0] = bytes[0]
    pixel[1] = bytes[1]
    pixel[2] = bytes[2]
  } else {
    UnsafeMutableRawPointer(pixel).storeBytes(of: bytes, as: SIMD4<UInt8>.self)
  }
}

/// Output row `r` reads input rows `starts[r] - rowOffset ..< + counts[r]`.
private func resampleVertically(_ image: RGBImage, table: ResampleTable, rowOffset: Int) -> RGBImage {
  let outHeight = table.starts.count
  let rowBytes = image.width * 3
  var sums = [Int32](repeating: 0, count: rowBytes)
  let pixels = [UInt8](unsafeUninitializedCapacity: rowBytes * outHeight) { buffer, initialized in
    image.pixels.withUnsafeBufferPointer { input in
      sums.withUnsafeMutableBufferPointer { sums in
        for row in 0..<outHeight {
          let first = table.starts[row] - rowOffset
          initializeSums(sums.baseAddress!, count: rowBytes)
          for tap in 0..<table.counts[row] {
            accumulateRow(
              input.baseAddress! + (first + tap) * rowBytes, weight: table.weights[row * table.taps + tap],
              into: sums.baseAddress!, count: rowBytes)
          }
          clipRow(sums.baseAddress!, into: buffer.baseAddress! + row * rowBytes, count: rowBytes)
        }
      }
    }
    initialized = rowBytes * outHeight
  }
  return RGBImage(width: image.width, height: outHeight, pixels: pixels)
}

private func initializeSums(_ sums: UnsafeMutablePointer<Int32>, count: Int) {
  for index in 0..<count { sums[index] = roundingHalf }
}

private func accumulateRow(
  _ row: UnsafePointer<UInt8>, weight: Int32, into sums: UnsafeMutablePointer<Int32>, count: Int
) {
  for index in 0..<count { sums[index] &+= Int32(row[index]) &* weight }
}

private func clipRow(_ sums: UnsafePointer<Int32>, into output: UnsafeMutablePointer<UInt8>, count: Int) {
  for index in 0..<count { output[index] = clip8(sums[index]) }
}
