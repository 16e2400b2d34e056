import Foundation
import SAMImage
import XCTest

/// A plain transcription of Pillow's bilinear resampling (per pixel, per channel, variable tap
/// count, separate passes), to check the fast kernels on many sizes the fixtures do not cover:
/// row-group remainders, windows clamped at the right edge, inputs smaller than a window.
private func naiveCoefficients(inputSize: Int, outputSize: Int) -> [(first: Int, weights: [Int32])] {
  let scale = Double(inputSize) / Double(outputSize)
  let filterScale = max(scale, 1)
  let support = filterScale
  return (0..<outputSize).map { output in
    let center = (Double(output) + 0.5) * scale
    let first = max(Int(center - support + 0.5), 0)
    let last = min(Int(center + support + 0.5), inputSize)
    let real = (first..<last).map { index -> Double in
      let distance = abs((Double(index) - center + 0.5) / filterScale)
      return distance < 1 ? 1 - distance : 0
    }
    let total = real.reduce(0, +)
    let weights = real.map { value -> Int32 in
      let normalized = total != 0 ? value / total : value
      return Int32(normalized * 4_194_304 + (normalized < 0 ? -0.5 : 0.5))
    }
    return (first, weights)
  }
}

private func naivePass(_ image: RGBImage, width: Int, height: Int, horizontal: Bool) -> RGBImage {
  let table =
    horizontal
    ? naiveCoefficients(inputSize: image.width, outputSize: width)
    : naiveCoefficients(inputSize: image.height, outputSize: height)
  var pixels = [UInt8](repeating: 0, count: width * height * 3)
  for y in 0..<height {
    for x in 0..<width {
      let (first, weights) = horizontal ? table[x] : table[y]
      for channel in 0..<3 {
        var sum: Int32 = 1 << 21
        for (tap, weight) in weights.enumerated() {
          let sx = horizontal ? first + tap : x
          let sy = horizontal ? y : first + tap
          sum += Int32(image.pixels[(sy * image.width + sx) * 3 + channel]) * weight
        }
        pixels[(y * width + x) * 3 + channel] = UInt8(clamping: sum >> 22)
      }
    }
  }
  return RGBImage(width: width, height: height, pixels: pixels)
}

private func naiveResize(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
  let horizontal = width != image.width
  let vertical = height != image.height
  if horizontal && vertical && width > image.width && height < image.height {
    let shorter = naivePass(image, width: image.width, height: height, horizontal: false)
    return naivePass(shorter, width: width, height: height, horizontal: true)
  }
  var current = image
  if horizontal { current = naivePass(current, width: width, height: image.height, horizontal: true) }
  if vertical { current = naivePass(current, width: width, height: height, horizontal: false) }
  return current
}

final class NaiveResizeTests: XCTestCase {
  func testFastResizeEqualsNaiveTranscription() {
    var generator = SplitMix64(seed: 21)
    func size() -> Int { 1 + Int(generator.next() % 40) }
    for _ in 0..<300 {
      let width = size()
      let height = size()
      let pixels = (0..<(width * height * 3)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
      let image = RGBImage(width: width, height: height, pixels: pixels)
      let outWidth = size()
      let outHeight = size()
      let fast = resizeBilinearLikePillow(image, width: outWidth, height: outHeight)
      let naive = naiveResize(image, width: outWidth, height: outHeight)
      XCTAssertTrue(
        fast == naive, "\(width)x\(height) -> \(outWidth)x\(outHeight): \(describeDifference(fast, naive))")
    }
  }
}
