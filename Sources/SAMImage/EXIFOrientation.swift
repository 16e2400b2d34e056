import Foundation

/// The EXIF orientation tag (0x0112): how the stored pixels must be turned to be seen upright.
/// OpenCV's `imread` applies it by default; so do we. Pillow's `ImageOps.exif_transpose` maps the
/// same values to the same transposes.
public enum EXIFOrientation: Int, Sendable, CaseIterable {
  case up = 1
  case mirrored = 2  // flip left-right
  case down = 3  // rotate 180
  case downMirrored = 4  // flip top-bottom
  case leftMirrored = 5  // transpose: (x, y) -> (y, x)
  case right = 6  // rotate 90 clockwise
  case rightMirrored = 7  // transverse: (x, y) -> (H-1-y, W-1-x)
  case left = 8  // rotate 90 counter-clockwise

  /// The orientation stored in a JPEG's APP1 Exif segment or a PNG's eXIf chunk; `.up` when
  /// there is none, or when the block is malformed or holds a value outside 1...8.
  public static func read(from data: Data, format: ImageDecoder.Format) -> EXIFOrientation {
    let value = data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int? in
      let bytes = ByteReader(raw)
      switch format {
      case .jpeg: return bytes.jpegExifRange().flatMap { bytes.tiffOrientation(in: $0) }
      case .png: return bytes.pngExifRange().flatMap { bytes.tiffOrientation(in: $0) }
      }
    }
    return value.flatMap { EXIFOrientation(rawValue: $0) } ?? .up
  }

  /// Whether width and height trade places.
  public var swapsAxes: Bool { rawValue >= 5 }

  /// The image turned upright (the same image for `.up`).
  public func apply(to image: RGBImage) -> RGBImage {
    if self == .up { return image }
    let width = image.width
    let height = image.height
    let outWidth = swapsAxes ? height : width
    let outHeight = swapsAxes ? width : height
    let pixels = [UInt8](unsafeUninitializedCapacity: width * height * 3) { buffer, count in
      image.pixels.withUnsafeBufferPointer { source in
        guard let source = source.baseAddress, let destination = buffer.baseAddress else { return }
        for row in 0..<outHeight {
          // The source pixel of output (0, row) and the source step for each output column.
          let (start, step) = sourceWalk(row: row, width: width, height: height)
          copyWalk(
            from: source, start: start, step: step, to: destination + row * outWidth * 3, count: outWidth)
        }
      }
      count = width * height * 3
    }
    return RGBImage(width: outWidth, height: outHeight, pixels: pixels)
  }

  /// Source pixel index of output pixel (0, row), and the index step per output column.
  private func sourceWalk(row: Int, width: Int, height: Int) -> (start: Int, step: Int) {
    switch self {
    case .up: return (row * width, 1)
    case .mirrored: return (row * width + width - 1, -1)
    case .down: return ((height - 1 - row) * width + width - 1, -1)
    case .downMirrored: return ((height - 1 - row) * width, 1)
    case .leftMirrored: return (row, width)
    case .right: return ((height - 1) * width + row, -width)
    case .rightMirrored: return ((height - 1) * width + width - 1 - row, -width)
    case .left: return (width - 1 - row, width)
    }
  }
}

private func copyWalk(
  from source: UnsafePointer<UInt8>, start: Int, step: Int, to destination: UnsafeMutablePointer<UInt8>,
  count: Int
) {
  var index = start
  for column in 0..<count {
    let from = source + index * 3
    let to = destination + column * 3
    to[0] = from[0]
    to[1] = from[1]
    to[2] = from[2]
    index += step
  }
}

/// Bounds-checked big/little-endian reads over the file's bytes: a malformed block yields nil,
/// never a trap.
struct ByteReader {
  let bytes: UnsafeRawBufferPointer

  init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

  func u8(_ offset: Int) -> Int? {
    offset >= 0 && offset < bytes.count ? Int(bytes[offset]) : nil
  }

  func u16(_ offset: Int, bigEndian: Bool) -> Int? {
    guard let a = u8(offset), let b = u8(offset + 1) else { return nil }
    return bigEndian ? a << 8 | b : b << 8 | a
  }

  func u32(_ offset: Int, bigEndian: Bool) -> Int? {
    guard let low = u16(bigEndian ? offset + 2 : offset, bigEndian: bigEndian),
      let high = u16(bigEndian ? offset : offset + 2, bigEndian: bigEndian)
    else { return nil }
    return high << 16 | low
  }

  func matches(_ magic: [UInt8], at offset: Int) -> Bool {
    guard offset >= 0, offset + magic.count <= bytes.count else { return false }
    for (index, byte) in magic.enumerated() where bytes[offset + index] != byte { return false }
    return true
  }

  private static let exifHeader: [UInt8] = Array("Exif".utf8) + [0, 0]

  /// The TIFF block of the first APP1 "Exif" segment before the image data.
  func jpegExifRange() -> Range<Int>? {
    var offset = 2  // after SOI
    while let prefix = u8(offset), prefix == 0xFF {
      guard var marker = u8(offset + 1) else { return nil }
      // Fill bytes: any number of 0xFF before the marker code.
      while marker == 0xFF {
        offset += 1
        guard let next = u8(offset + 1) else { return nil }
        marker = next
      }
      // Start of scan or end of image: no Exif among the headers.
      if marker == 0xDA || marker == 0xD9 { return nil }
      // Markers without a length field.
      if marker == 0x01 || (0xD0...0xD8).contains(marker) {
        offset += 2
        continue
      }
      guard let length = u16(offset + 2, bigEndian: true), length >= 2 else { return nil }
      let payload = offset + 4
      let end = offset + 2 + length
      if marker == 0xE1, end <= bytes.count, end >= payload + 6, matches(Self.exifHeader, at: payload) {
        return (payload + 6)..<end
      }
      offset = end
    }
    return nil
  }

  /// The TIFF block of the first eXIf chunk (some writers prefix it with "Exif\0\0").
  func pngExifRange() -> Range<Int>? {
    var offset = 8  // after the signature
    while let length = u32(offset, bigEndian: true) {
      let data = offset + 8
      let end = data + length
      guard end + 4 <= bytes.count else { return nil }
      if matches(Array("eXIf".utf8), at: offset + 4) {
        let prefixed = length >= 6 && matches(Self.exifHeader, at: data)
        return prefixed ? (data + 6)..<end : data..<end
      }
      if matches(Array("IEND".utf8), at: offset + 4) { return nil }
      offset = end + 4  // skip the CRC
    }
    return nil
  }

  /// Tag 0x0112 of IFD0 in a TIFF block (offsets are relative to the block's start).
  func tiffOrientation(in block: Range<Int>) -> Int? {
    let tiff = ByteReader(UnsafeRawBufferPointer(rebasing: bytes[block]))
    let bigEndian: Bool
    if tiff.matches(Array("MM".utf8), at: 0) {
      bigEndian = true
    } else if tiff.matches(Array("II".utf8), at: 0) {
      bigEndian = false
    } else {
      return nil
    }
    guard tiff.u16(2, bigEndian: bigEndian) == 42, let ifd = tiff.u32(4, bigEndian: bigEndian),
      let entries = tiff.u16(ifd, bigEndian: bigEndian)
    else { return nil }
    for index in 0..<entries {
      let entry = ifd + 2 + index * 12
      guard let tag = tiff.u16(entry, bigEndian: bigEndian),
        let type = tiff.u16(entry + 2, bigEndian: bigEndian)
      else { return nil }
      if tag != 0x0112 { continue }
      switch type {
      case 3: return tiff.u16(entry + 8, bigEndian: bigEndian)  // SHORT, stored in the entry
      case 4: return tiff.u32(entry + 8, bigEndian: bigEndian)  // LONG, from lenient writers
      default: return nil
      }
    }
    return nil
  }
}
