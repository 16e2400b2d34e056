import SAMTensor
import XCTest

// Tolerance for convolutions: 1e-6 of the sum of |terms| (float32 dot products of up to 2304
// terms summed in blocks by OpenBLAS or tap by tap; see GEMMTests for the bound).
private let convolutionTolerance = 1e-6

final class ConvolutionTests: XCTestCase {
  func testConv2dAwkwardShapes() {
    var random = SeededRandom(seed: 10)
    // (H, W, Cin, Cout, kh, kw, stride, padding)
    let cases = [
      (13, 9, 5, 7, 3, 3, 2, 1), (12, 11, 3, 10, 3, 3, 1, 1), (8, 10, 6, 5, 1, 1, 1, 0),
      (9, 7, 6, 4, 1, 1, 2, 0), (7, 8, 4, 3, 2, 3, 2, 0), (5, 6, 3, 2, 5, 3, 1, 2),
      (4, 4, 2, 3, 3, 3, 3, 2),
    ]
    for (h, w, cin, cout, kh, kw, stride, padding) in cases {
      let x = random.tensor([h, w, cin])
      let weight = random.tensor([cout, cin, kh, kw])
      let bias = random.tensor([cout])
      for b in [bias, nil] {
        assertClose(
          conv2d(x, weight: weight, bias: b, stride: stride, padding: padding),
          Reference.conv2d(x, weight: weight, bias: b, stride: stride, padding: padding),
          relative: convolutionTolerance,
          "conv2d \([h, w, cin]) w \(weight.shape) s\(stride) p\(padding) bias \(b != nil)")
      }
    }
  }

  func testConv2dPatchEmbeddingShape() {
    // TinyViT's first conv: 3x3 stride 2 padding 1, 3 -> 32, here on 256x256 instead of 1024.
    var random = SeededRandom(seed: 11)
    let x = random.tensor([256, 256, 3])
    let weight = random.tensor([32, 3, 3, 3])
    let bias = random.tensor([32])
    assertClose(
      conv2d(x, weight: weight, bias: bias, stride: 2, padding: 1),
      Reference.conv2d(x, weight: weight, bias: bias, stride: 2, padding: 1),
      relative: convolutionTolerance, "conv2d patch embed 256x256x3 -> 32")
  }

  func testConv2dLargerThanOneIm2colBlock() {
    // The neck's 3x3 256 -> 256 conv on a grid large enough to need several im2col blocks
    // (4M floats per block: 64 columns x 2304 values -> 28 rows per block, 40 rows here).
    var random = SeededRandom(seed: 12)
    let x = random.tensor([40, 64, 256])
    let weight = random.tensor([24, 256, 3, 3])
    let bias = random.tensor([24])
    assertClose(
      conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1),
      Reference.conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1),
      relative: convolutionTolerance, "conv2d 3x3 over im2col blocks")
  }

  func testDepthwiseAwkwardShapes() {
    var random = SeededRandom(seed: 13)
    // (H, W, C, kh, kw, stride, padding)
    let cases = [
      (13, 9, 5, 3, 3, 2, 1), (12, 11, 19, 3, 3, 1, 1), (7, 10, 8, 3, 3, 2, 1), (6, 5, 17, 5, 5, 1, 2),
      (9, 8, 3, 2, 3, 2, 0), (3, 3, 11, 3, 3, 1, 0), (4, 6, 9, 3, 3, 3, 3),
      // 3x3 with C % 8 == 0: the register-blocked path (several 8-channel blocks, odd sizes,
      // stride 2, no padding, a window wider than the image).
      (7, 9, 24, 3, 3, 1, 1), (9, 11, 16, 3, 3, 2, 1), (5, 6, 32, 3, 3, 1, 0), (2, 2, 8, 3, 3, 1, 1),
      (6, 7, 16, 3, 3, 2, 2),
    ]
    for (h, w, c, kh, kw, stride, padding) in cases {
      let x = random.tensor([h, w, c])
      let weight = random.tensor([c, 1, kh, kw])
      let bias = random.tensor([c])
      for b in [bias, nil] {
        assertClose(
          depthwiseConv2d(x, weight: weight, bias: b, stride: stride, padding: padding),
          Reference.conv2d(
            x, weight: weight, bias: b, stride: stride, padding: padding, depthwise: true),
          relative: convolutionTolerance,
          "depthwise \([h, w, c]) k\(kh)x\(kw) s\(stride) p\(padding) bias \(b != nil)")
      }
    }
  }

  func testDepthwiseMBConvShape() {
    // TinyViT stage 0 MBConv: 3x3 depthwise on [256, 256, 256].
    var random = SeededRandom(seed: 14)
    let x = random.tensor([256, 256, 256])
    let weight = random.tensor([256, 1, 3, 3])
    let bias = random.tensor([256])
    assertClose(
      depthwiseConv2d(x, weight: weight, bias: bias, stride: 1, padding: 1),
      Reference.conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1, depthwise: true),
      relative: convolutionTolerance, "depthwise 256x256x256")
  }

  func testConvTransposeAwkwardShapes() {
    var random = SeededRandom(seed: 15)
    // (H, W, Cin, Cout, k)
    for (h, w, cin, cout, k) in [(5, 7, 9, 3, 2), (3, 4, 5, 6, 3), (1, 1, 4, 2, 2), (16, 16, 256, 64, 2)] {
      let x = random.tensor([h, w, cin])
      let weight = random.tensor([cin, cout, k, k])
      let bias = random.tensor([cout])
      for b in [bias, nil] {
        assertClose(
          convTranspose2d(x, weight: weight, bias: b, stride: k),
          Reference.convTranspose2d(x, weight: weight, bias: b, stride: k),
          relative: convolutionTolerance, "convTranspose2d \([h, w, cin]) -> \(cout) k\(k) bias \(b != nil)")
      }
    }
  }
}
