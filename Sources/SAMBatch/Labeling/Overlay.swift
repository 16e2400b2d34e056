import Foundation
import MobileSAM
import SAMImage

/// One mask to draw over its image.
public struct OverlayMask: Sendable {
  /// At the image's size.
  public var mask: BinaryMask
  public var category: String
  /// `[x0, y0, x1, y1]` in image pixels (the prompt's box, or the mask's), or nil for none.
  public var box: [Double]?

  public init(mask: BinaryMask, category: String, box: [Double]?) {
    self.mask = mask
    self.category = category
    self.box = box
  }
}

/// Draws masks over an image: each mask blended in its category's colour, its outline in full
/// colour, its box as a rectangle; the result scaled so that its longer side is at most
/// `maxSide`.
public enum OverlayRenderer {
  /// Twenty colours far apart from one another (the Tableau 20 palette's hues).
  static let palette: [(UInt8, UInt8, UInt8)] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (174, 199, 232), (255, 187, 120),
    (152, 223, 138), (255, 152, 150), (197, 176, 213), (196, 156, 148), (247, 182, 210), (199, 199, 199),
    (219, 219, 141), (158, 218, 229),
  ]

  /// The colour of a category: the same in every image and every run (FNV-1a of its name).
  public static func color(for category: String) -> (r: UInt8, g: UInt8, b: UInt8) {
    var hash: UInt32 = 2_166_136_261
    for byte in category.utf8 {
      hash ^= UInt32(byte)
      hash = hash &* 16_777_619
    }
    let c = palette[Int(hash % UInt32(palette.count))]
    return (c.0, c.1, c.2)
  }

  /// `"#rrggbb"` of `color(for:)`, for the HTML report.
  public static func cssColor(for category: String) -> String {
    let c = color(for: category)
    return String(format: "#%02x%02x%02x", c.r, c.g, c.b)
  }

  /// The output size for an image of `width` x `height`: unchanged when it fits in `maxSide`.
  public static func outputSize(width: Int, height: Int, maxSide: Int) -> (width: Int, height: Int) {
    let longest = max(width, height)
    guard maxSide > 0, longest > maxSide else { return (width, height) }
    let scale = Double(maxSide) / Double(longest)
    return (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
  }

  public static func render(image: RGBImage, masks: [OverlayMask], maxSide: Int, alpha: Double = 0.45) throws
    -> RGBImage
  {
    for m in masks where m.mask.width != image.width || m.mask.height != image.height {
      throw LabelingError.segmentation(
        "a \(m.mask.width)x\(m.mask.height) mask over a \(image.width)x\(image.height) image")
    }
    let size = outputSize(width: image.width, height: image.height, maxSide: maxSide)
    var out =
      size.width == image.width && size.height == image.height
      ? image : resizeBilinearLikePillow(image, width: size.width, height: size.height)
    let w = size.width
    let h = size.height
    // Output pixel -> source pixel (nearest, at the pixel's centre).
    let sourceX = (0..<w).map {
      min(image.width - 1, Int((Double($0) + 0.5) * Double(image.width) / Double(w)))
    }
    let sourceY = (0..<h).map {
      min(image.height - 1, Int((Double($0) + 0.5) * Double(image.height) / Double(h)))
    }
    let keep = 1 - alpha
    var scaled = [Bool](repeating: false, count: w * h)
    for m in masks {
      let (r, g, b) = color(for: m.category)
      let colour = [Double(r), Double(g), Double(b)]
      for y in 0..<h {
        let row = sourceY[y] * image.width
        for x in 0..<w { scaled[y * w + x] = m.mask.pixels[row + sourceX[x]] != 0 }
      }
      for y in 0..<h {
        for x in 0..<w where scaled[y * w + x] {
          let edge =
            x == 0 || y == 0 || x == w - 1 || y == h - 1 || !scaled[y * w + x - 1] || !scaled[y * w + x + 1]
            || !scaled[(y - 1) * w + x] || !scaled[(y + 1) * w + x]
          let p = (y * w + x) * 3
          for c in 0..<3 {
            out.pixels[p + c] =
              edge
              ? UInt8(colour[c]) : UInt8((Double(out.pixels[p + c]) * keep + colour[c] * alpha).rounded())
          }
        }
      }
      if let box = m.box, box.count == 4, box.allSatisfy(\.isFinite) {
        let sx = Double(w) / Double(image.width)
        let sy = Double(h) / Double(image.height)
        drawRectangle(
          &out, x0: Int((box[0] * sx).rounded(.down)), y0: Int((box[1] * sy).rounded(.down)),
          x1: Int((box[2] * sx).rounded(.up)) - 1, y1: Int((box[3] * sy).rounded(.up)) - 1,
          thickness: max(1, max(w, h) / 400), color: (r, g, b))
      }
    }
    return out
  }

  private static func drawRectangle(
    _ image: inout RGBImage, x0: Int, y0: Int, x1: Int, y1: Int, thickness: Int, color: (UInt8, UInt8, UInt8)
  ) {
    let w = image.width
    let h = image.height
    func set(_ x: Int, _ y: Int) {
      guard x >= 0, y >= 0, x < w, y < h else { return }
      let p = (y * w + x) * 3
      image.pixels[p] = color.0
      image.pixels[p + 1] = color.1
      image.pixels[p + 2] = color.2
    }
    let xa = max(0, x0)
    let xb = min(w - 1, x1)
    let ya = max(0, y0)
    let yb = min(h - 1, y1)
    guard xa <= xb, ya <= yb else { return }
    for t in 0..<thickness {
      for x in xa...xb {
        set(x, y0 + t)
        set(x, y1 - t)
      }
      for y in ya...yb {
        set(x0 + t, y)
        set(x1 - t, y)
      }
    }
  }
}
