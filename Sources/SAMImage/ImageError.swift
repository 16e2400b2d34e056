import Foundation

/// Everything that can go wrong while reading or writing an image. Each message names the file
/// (or the data's given name) and the cause.
public enum ImageError: Error, LocalizedError, Equatable {
  case fileNotFound(path: String)
  case unreadable(path: String, reason: String)
  /// Not a JPEG or PNG; `detail` says what the first bytes look like.
  case unsupportedFormat(name: String, detail: String)
  /// A JPEG or PNG that libjpeg/libpng cannot decode: damaged, truncated, or a variant they do
  /// not handle. `detail` is the library's own message.
  case corrupt(name: String, format: String, detail: String)
  /// The header claims more pixels than the limit; nothing was allocated for them.
  case tooManyPixels(name: String, width: Int, height: Int, limit: Int)
  case outOfMemory(name: String, width: Int, height: Int)
  case encodingFailed(reason: String)

  public var errorDescription: String? {
    switch self {
    case .fileNotFound(let path):
      return "\(path): no such image file"
    case .unreadable(let path, let reason):
      return "\(path): cannot read the image file: \(reason)"
    case .unsupportedFormat(let name, let detail):
      return "\(name): unsupported image format (\(detail)); only JPEG and PNG are decoded"
    case .corrupt(let name, let format, let detail):
      return "\(name): corrupt or truncated \(format) image: \(detail)"
    case .tooManyPixels(let name, let width, let height, let limit):
      return
        "\(name): the image claims \(width)x\(height) = \(width * height) pixels, more than the limit of \(limit)"
    case .outOfMemory(let name, let width, let height):
      return "\(name): cannot allocate memory for \(width)x\(height) pixels"
    case .encodingFailed(let reason):
      return "cannot encode PNG: \(reason)"
    }
  }
}
