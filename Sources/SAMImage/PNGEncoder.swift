import CImageCodecs
import Foundation

/// Encodes 8-bit grayscale pixels (rows top to bottom, `width * height` bytes) as a PNG file.
public func encodeGrayPNG(pixels: [UInt8], width: Int, height: Int) throws -> Data {
  guard width > 0, height > 0, width <= Int(Int32.max), height <= Int(Int32.max) else {
    throw ImageError.encodingFailed(reason: "invalid size \(width)x\(height)")
  }
  guard pixels.count == width * height else {
    throw ImageError.encodingFailed(
      reason: "\(pixels.count) pixels given for a \(width)x\(height) image (needs \(width * height))")
  }
  var encoded = sb_encoded_file()
  let status = pixels.withUnsafeBufferPointer { buffer in
    sb_encode_gray_png(buffer.baseAddress, Int32(width), Int32(height), &encoded)
  }
  defer { sb_codec_free(encoded.bytes) }
  guard status == SB_CODEC_OK, let bytes = encoded.bytes else {
    let reason = withUnsafeBytes(of: &encoded.message) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    throw ImageError.encodingFailed(reason: reason)
  }
  return Data(bytes: bytes, count: encoded.size)
}
