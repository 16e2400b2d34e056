import MobileSAM
import SAMImage

enum RGBImageFixture {
  /// A 64x48 image whose pixels depend on the seed.
  static func gradient(seed: Int) -> RGBImage {
    var pixels: [UInt8] = []
    for y in 0..<48 {
      for x in 0..<64 {
        pixels += [UInt8((x * 4 + seed) & 255), UInt8((y * 5) & 255), UInt8((x + y + seed * 7) & 255)]
      }
    }
    return RGBImage(width: 64, height: 48, pixels: pixels)
  }
}

enum MobileSAMPrompt {
  static func box(_ x0: Float, _ y0: Float, _ x1: Float, _ y1: Float) -> Prompt {
    Prompt(box: PromptBox(x0: x0, y0: y0, x1: x1, y1: y1))
  }
}

/// A mask's COCO runs the plain way: down each column, left to right, starting with a run of
/// zeros (the reference for the RLE tests).
func columnWalkRuns(_ pixels: [UInt8], width: Int, height: Int) -> [Int] {
  var runs: [Int] = []
  var current = false
  var length = 0
  for x in 0..<width {
    for y in 0..<height {
      let set = pixels[y * width + x] != 0
      if set != current {
        runs.append(length)
        length = 0
        current = set
      }
      length += 1
    }
  }
  runs.append(length)
  return runs
}
