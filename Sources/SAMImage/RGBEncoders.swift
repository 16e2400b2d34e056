import CImageCodecs
import Foundation

/// Encodes an RGB image as a PNG file (lossless).
public func encodePNG(_ image: RGBImage) throws -> Data {
  try encodeRGB(image) { pixels, out in
    sb_encode_rgb_png(pixels, Int32(image.width), Int32(image.height), out)
  }
}

/// Encodes an RGB image as a baseline JPEG file at `quality` (1-100).
public func encodeJPEG(_ image: RGBImage, quality: Int = 90) throws -> Data {
  guard (1...100).contains(quality) else {
    throw ImageError.encodingFailed(reason: "JPEG quality \(quality) is outside 1-100")
  }
  return try encodeRGB(image) { pixels, out in
    sb_encode_jpeg(pixels, Int32(image.width), Int32(image.height), Int32(quality), out)
  }
}

private func encodeRGB(
  _ image: RGBImage,
  _ encode: (UnsafePointer<UInt8>?, UnsafeMutablePointer<sb_encoded_file>) -> sb_codec_status
) throws -> Data {
  guard image.width > 0, image.height > 0, image.width <= Int(Int32.max), image.height <= Int(Int32.max)
  else {
    throw ImageError.encodingFailed(reason: "invalid size \(image.width)x\(image.height)")
  }
  var encoded = sb_encoded_file()
  let status = image.pixels.withUnsafeBufferPointer { buffer in encode(buffer.baseAddress, &encoded) }
  defer { sb_codec_free(encoded.bytes) }
  guard status == SB_CODEC_OK, let bytes = encoded.bytes else {
    let reason = withUnsafeBytes(of: &encoded.message) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    throw ImageError.encodingFailed(reason: reason)
  }
  return Data(bytes: bytes, count: encoded.size)
}
