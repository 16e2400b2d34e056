/// An 8-bit RGB image, pixels interleaved (R, G, B), rows top to bottom.
public struct RGBImage: Sendable, Equatable {
  public let width: Int
  public let height: Int
  /// `width * height * 3` bytes.
  public var pixels: [UInt8]

  public init(width: Int, height: Int, pixels: [UInt8]) {
    precondition(
      pixels.count == width * height * 3, "RGBImage: \(width)x\(height) needs \(width * height * 3) bytes")
    self.width = width
    self.height = height
    self.pixels = pixels
  }
}
