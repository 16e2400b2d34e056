// TEMPORARY STAND-IN, to be deleted when branch `image` (SAMImage.ImageDecoder) is merged. It
// exists only so the runner can be built and tested before that lands; it is not the decoder: it
// reads a JPEG's size and fills the pixels from the file's bytes.
import Foundation
import SAMImage

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

/// Stand-in for SAMImage's `encodeGrayPNG` (branch `image`): an 8-bit grayscale PNG with
/// uncompressed (stored) deflate blocks.
func encodeGrayPNG(pixels: [UInt8], width: Int, height: Int) throws -> Data {
  func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
      c ^= UInt32(b)
      for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return c ^ 0xFFFF_FFFF
  }
  func be32(_ v: UInt32) -> [UInt8] {
    [UInt8(v >> 24), UInt8((v >> 16) & 255), UInt8((v >> 8) & 255), UInt8(v & 255)]
  }
  func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
    let body = Array(type.utf8) + data
    return be32(UInt32(data.count)) + body + be32(crc32(body))
  }
  var raw: [UInt8] = []
  raw.reserveCapacity((width + 1) * height)
  for y in 0..<height {
    raw.append(0)
    raw += pixels[(y * width)..<(y * width + width)]
  }
  var z: [UInt8] = [0x78, 0x01]
  var offset = 0
  repeat {
    let n = min(65535, raw.count - offset)
    let last: UInt8 = offset + n == raw.count ? 1 : 0
    z += [last, UInt8(n & 255), UInt8(n >> 8), UInt8(~n & 255), UInt8((~n >> 8) & 255)]
    z += raw[offset..<(offset + n)]
    offset += n
  } while offset < raw.count
  var a: UInt32 = 1
  var b: UInt32 = 0
  for byte in raw {
    a = (a + UInt32(byte)) % 65521
    b = (b + a) % 65521
  }
  z += be32(b << 16 | a)
  let header = be32(UInt32(width)) + be32(UInt32(height)) + [8, 0, 0, 0, 0]
  let png: [UInt8] =
    [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", z)
    + chunk("IEND", [])
  return Data(png)
}
