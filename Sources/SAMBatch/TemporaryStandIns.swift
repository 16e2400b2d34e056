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
