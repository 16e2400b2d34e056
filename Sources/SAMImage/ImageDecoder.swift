import CImageCodecs
import Foundation

/// Decodes JPEG and PNG files to 8-bit RGB as MobileSAM's reference input path sees them:
/// pixels as Pillow's `convert("RGB")` gives them (OpenCV's high byte for 16-bit PNG), EXIF
/// orientation applied as OpenCV's `imread` does.
public enum ImageDecoder {
  /// Pillow's decompression-bomb error threshold (2 x `Image.MAX_IMAGE_PIXELS` = 2 x 89,478,485):
  /// a 16k x 11k photo still decodes, and the largest accepted image needs ~540 MB of RGB.
  public static let defaultMaxPixels = 178_956_970

  public enum Format: String, Sendable {
    case jpeg = "JPEG"
    case png = "PNG"
  }

  public static func decode(
    contentsOf url: URL, applyEXIFOrientation: Bool = true, maxPixels: Int = defaultMaxPixels
  ) throws -> RGBImage {
    let data = try readFile(url)
    return try decode(
      data: data, name: url.path, applyEXIFOrientation: applyEXIFOrientation, maxPixels: maxPixels)
  }

  /// `name` only labels errors (a path, a URL, a database key).
  public static func decode(
    data: Data, name: String, applyEXIFOrientation: Bool = true, maxPixels: Int = defaultMaxPixels
  ) throws -> RGBImage {
    guard let format = detectFormat(data) else {
      throw ImageError.unsupportedFormat(name: name, detail: describeUnknownFormat(data))
    }
    let limit = Int64(max(0, maxPixels))
    let stored = try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> RGBImage in
      let bytes = raw.bindMemory(to: UInt8.self)
      // First the header alone (size and pixel limit), then the pixels straight into the
      // array's storage.
      var header = sb_decoded_image()
      let status = decodeCall(format, bytes, limit, nil, 0, &header)
      try check(status, &header, format: format, name: name, maxPixels: maxPixels)
      let width = Int(header.width)
      let height = Int(header.height)
      guard width > 0, height > 0 else {
        throw ImageError.corrupt(name: name, format: format.rawValue, detail: "empty image")
      }
      let byteCount = width * height * 3
      var decoded = sb_decoded_image()
      var decodeStatus = SB_CODEC_CORRUPT
      let pixels = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
        decodeStatus = decodeCall(format, bytes, limit, buffer.baseAddress, byteCount, &decoded)
        initialized = decodeStatus == SB_CODEC_OK ? byteCount : 0
      }
      try check(decodeStatus, &decoded, format: format, name: name, maxPixels: maxPixels)
      return RGBImage(width: width, height: height, pixels: pixels)
    }
    guard applyEXIFOrientation else { return stored }
    return EXIFOrientation.read(from: data, format: format).apply(to: stored)
  }

  /// The size `decode` would give (EXIF orientation applied when asked), from the header alone:
  /// the pixel data is not decoded, so damage after the header goes unnoticed.
  public static func size(
    contentsOf url: URL, applyEXIFOrientation: Bool = true, maxPixels: Int = defaultMaxPixels
  ) throws -> (width: Int, height: Int) {
    let path = url.path
    let data = try readFile(url)
    guard let format = detectFormat(data) else {
      throw ImageError.unsupportedFormat(name: path, detail: describeUnknownFormat(data))
    }
    var header = sb_decoded_image()
    try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
      let status = decodeCall(
        format, raw.bindMemory(to: UInt8.self), Int64(max(0, maxPixels)), nil, 0, &header)
      try check(status, &header, format: format, name: path, maxPixels: maxPixels)
    }
    let width = Int(header.width)
    let height = Int(header.height)
    guard width > 0, height > 0 else {
      throw ImageError.corrupt(name: path, format: format.rawValue, detail: "empty image")
    }
    if applyEXIFOrientation && EXIFOrientation.read(from: data, format: format).swapsAxes {
      return (height, width)
    }
    return (width, height)
  }

  /// The file's bytes. Only a regular file (or a link to one) is read: a named pipe, socket or
  /// device called x.jpg would block the reader or never end, so it is refused by its type.
  private static func readFile(_ url: URL) throws -> Data {
    let path = url.path
    var info = stat()
    guard stat(path, &info) == 0 else {
      if errno == ENOENT || errno == ENOTDIR { throw ImageError.fileNotFound(path: path) }
      throw ImageError.unreadable(path: path, reason: String(cString: strerror(errno)))
    }
    switch info.st_mode & S_IFMT {
    case S_IFREG: break
    case S_IFDIR: throw ImageError.unreadable(path: path, reason: "it is a directory")
    case S_IFIFO: throw ImageError.unreadable(path: path, reason: "it is a named pipe, not a regular file")
    case S_IFSOCK: throw ImageError.unreadable(path: path, reason: "it is a socket, not a regular file")
    default: throw ImageError.unreadable(path: path, reason: "it is a device, not a regular file")
    }
    do {
      return try Data(contentsOf: url)
    } catch {
      throw ImageError.unreadable(path: path, reason: error.localizedDescription)
    }
  }

  private static func decodeCall(
    _ format: Format, _ bytes: UnsafeBufferPointer<UInt8>, _ limit: Int64,
    _ pixels: UnsafeMutablePointer<UInt8>?, _ capacity: Int, _ out: inout sb_decoded_image
  ) -> sb_codec_status {
    switch format {
    case .jpeg: return sb_decode_jpeg(bytes.baseAddress, bytes.count, limit, pixels, capacity, &out)
    case .png: return sb_decode_png(bytes.baseAddress, bytes.count, limit, pixels, capacity, &out)
    }
  }

  private static func check(
    _ status: sb_codec_status, _ decoded: inout sb_decoded_image, format: Format, name: String,
    maxPixels: Int
  ) throws {
    let width = Int(decoded.width)
    let height = Int(decoded.height)
    switch status {
    case SB_CODEC_OK:
      return
    case SB_CODEC_TOO_MANY_PIXELS:
      throw ImageError.tooManyPixels(name: name, width: width, height: height, limit: maxPixels)
    case SB_CODEC_OUT_OF_MEMORY:
      throw ImageError.outOfMemory(name: name, width: width, height: height)
    default:
      throw ImageError.corrupt(name: name, format: format.rawValue, detail: message(of: &decoded))
    }
  }

  /// The format from the file's first bytes; the name's extension is never consulted.
  public static func detectFormat(_ data: Data) -> Format? {
    if data.starts(with: [0xFF, 0xD8, 0xFF]) { return .jpeg }
    if data.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
    return nil
  }

  static func describeUnknownFormat(_ data: Data) -> String {
    if data.isEmpty { return "the file is empty" }
    let head = [UInt8](data.prefix(16))
    func starts(_ magic: String, at offset: Int = 0) -> Bool {
      let bytes = Array(magic.utf8)
      return head.count >= offset + bytes.count && Array(head[offset..<offset + bytes.count]) == bytes
    }
    let known: String?
    if starts("GIF8") {
      known = "GIF"
    } else if starts("BM") {
      known = "BMP"
    } else if starts("RIFF") && starts("WEBP", at: 8) {
      known = "WebP"
    } else if starts("II*\u{0}") || starts("MM\u{0}*") {
      known = "TIFF"
    } else if starts("ftyp", at: 4) {
      known = "HEIF/AVIF/MP4 family"
    } else {
      known = nil
    }
    let hex = head.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
    if let known { return "looks like \(known)" }
    return "not JPEG or PNG; first bytes: \(hex)"
  }

  private static func message(of decoded: inout sb_decoded_image) -> String {
    withUnsafeBytes(of: &decoded.message) { raw in
      let bytes = raw.prefix { $0 != 0 }
      return String(decoding: bytes, as: UTF8.self)
    }
  }
}
