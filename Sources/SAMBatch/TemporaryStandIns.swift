// TEMPORARY STAND-INS, to be deleted when branches `predict` (MaskRLE, Sources/SAMBatch/RLE.swift)
// and `image` (SAMImage.ImageDecoder) are merged. They exist only so the runner can be built and
// tested before those land; they are not the implementations.
import Foundation
import MobileSAM
import SAMImage

public enum MaskRLE {
  /// Column-major run lengths, starting with zeros (COCO's convention).
  static func runs(_ mask: BinaryMask) -> [Int] {
    var counts: [Int] = []
    var current: UInt8 = 0
    var run = 0
    for x in 0..<mask.width {
      for y in 0..<mask.height {
        let v = mask.pixels[y * mask.width + x]
        if v != current {
          counts.append(run)
          run = 0
          current = v
        }
        run += 1
      }
    }
    counts.append(run)
    return counts
  }

  public static func encode(_ mask: BinaryMask) -> String {
    let counts = runs(mask)
    var out: [UInt8] = []
    for i in 0..<counts.count {
      var x = counts[i]
      if i > 2 { x -= counts[i - 2] }
      var more = true
      while more {
        var c = x & 0x1f
        x >>= 5
        more = (c & 0x10) != 0 ? x != -1 : x != 0
        if more { c |= 0x20 }
        out.append(UInt8(c + 48))
      }
    }
    return String(decoding: out, as: UTF8.self)
  }

  public static func decode(_ counts: String, width: Int, height: Int) throws -> BinaryMask {
    var values: [Int] = []
    let bytes = Array(counts.utf8)
    var p = 0
    while p < bytes.count {
      var x = 0
      var k = 0
      var more = true
      while more {
        guard p < bytes.count else { throw SAMBatchError.export("malformed RLE") }
        let c = Int(bytes[p]) - 48
        x |= (c & 0x1f) << (5 * k)
        more = (c & 0x20) != 0
        p += 1
        k += 1
        if !more && (c & 0x10) != 0 { x |= -1 << (5 * k) }
      }
      if values.count > 2 { x += values[values.count - 2] }
      values.append(x)
    }
    var pixels = [UInt8](repeating: 0, count: width * height)
    var index = 0
    var value: UInt8 = 0
    for run in values {
      guard run >= 0, index + run <= width * height else { throw SAMBatchError.export("malformed RLE") }
      for j in index..<index + run where value == 1 { pixels[(j % height) * width + j / height] = 1 }
      index += run
      value ^= 1
    }
    return BinaryMask(width: width, height: height, pixels: pixels)
  }

  public static func area(_ mask: BinaryMask) -> Int { mask.pixels.reduce(0) { $0 + Int($1) } }

  public static func bbox(_ mask: BinaryMask) -> [Double] {
    var x0 = Int.max
    var y0 = Int.max
    var x1 = -1
    var y1 = -1
    for y in 0..<mask.height {
      for x in 0..<mask.width where mask.pixels[y * mask.width + x] != 0 {
        x0 = min(x0, x)
        x1 = max(x1, x)
        y0 = min(y0, y)
        y1 = max(y1, y)
      }
    }
    if x1 < 0 { return [0, 0, 0, 0] }
    return [Double(x0), Double(y0), Double(x1 - x0 + 1), Double(y1 - y0 + 1)]
  }
}

public enum ImageDecoder {
  public static let defaultMaxPixels = 178_956_970

  /// Reads only a JPEG's size; the pixels are filled from the file's bytes.
  public static func decode(
    contentsOf url: URL, applyEXIFOrientation: Bool = true, maxPixels: Int = defaultMaxPixels
  ) throws -> RGBImage {
    let data: [UInt8]
    do { data = [UInt8](try Data(contentsOf: url)) } catch {
      throw SAMBatchError.export("\(url.path): cannot read the file")
    }
    guard data.count > 4, data[0] == 0xFF, data[1] == 0xD8 else {
      throw SAMBatchError.export("\(url.path): unsupported image format")
    }
    var i = 2
    while i + 9 < data.count {
      guard data[i] == 0xFF else { throw SAMBatchError.export("\(url.path): corrupt JPEG") }
      let marker = data[i + 1]
      let length = Int(data[i + 2]) << 8 | Int(data[i + 3])
      if (0xC0...0xC2).contains(marker) {
        let h = Int(data[i + 5]) << 8 | Int(data[i + 6])
        let w = Int(data[i + 7]) << 8 | Int(data[i + 8])
        guard w > 0, h > 0, w * h <= maxPixels else { throw SAMBatchError.export("\(url.path): bad size") }
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for j in stride(from: 0, to: pixels.count, by: 97) { pixels[j] = data[j % data.count] }
        return RGBImage(width: w, height: h, pixels: pixels)
      }
      i += 2 + length
    }
    throw SAMBatchError.export("\(url.path): corrupt or truncated JPEG")
  }
}
