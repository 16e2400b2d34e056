import SAMTensor
import XCTest

/// The C kernels exist in an AVX2 and an AVX-512 version (CSAMKernels); the one the CPU can run
/// is chosen at run time. Their accuracy is tested through the public kernels (ElementwiseTests,
/// ConvolutionTests); here, that the two versions agree to the bit, so results do not depend on
/// the machine's vector width.
final class VectorKernelsTests: XCTestCase {
  override func tearDown() {
    VectorKernels.use(.automatic)
  }

  func testGELUGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 90)
    // An odd count (the vector tail), the whole range, and the special values.
    var values = (0..<20_011).map { _ in random.uniform(-14, 14) }
    values += [0, -0.0, 1e-30, -1e-30, 87, -87, 1e4, -1e4, .infinity, -.infinity]
    let x = Tensor(shape: [values.count], data: values)
    XCTAssertEqual(VectorKernels.use(.avx2), 8)
    let narrow = gelu(x)
    guard VectorKernels.use(.avx512) == 16 else {
      throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
    }
    let wide = gelu(x)
    let differing = zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count
    XCTAssertEqual(differing, 0, "values whose GELU differs between AVX2 and AVX-512")
  }

  func testDepthwiseGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 91)
    // 40 channels: two 16-channel blocks and an 8-channel remainder; strides 1 and 2.
    let x = random.tensor([9, 11, 40])
    let weight = random.tensor([40, 1, 3, 3])
    let bias = random.tensor([40])
    for stride in [1, 2] {
      XCTAssertEqual(VectorKernels.use(.avx2), 8)
      let narrow = depthwiseConv2d(x, weight: weight, bias: bias, stride: stride, padding: 1)
      guard VectorKernels.use(.avx512) == 16 else {
        throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
      }
      let wide = depthwiseConv2d(x, weight: weight, bias: bias, stride: stride, padding: 1)
      let differing = zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count
      XCTAssertEqual(differing, 0, "stride \(stride): outputs that differ between AVX2 and AVX-512")
    }
  }

  func testAttentionGivesTheSameBitsWithAVX2AndAVX512() throws {
    var random = SeededRandom(seed: 92)
    // (groups, queries, keys, depth, value depth): 32-, 16- and 8-column blocks of scores and of
    // values, row blocks of 4 and a remainder, keys not a multiple of 8.
    for (g, nq, nk, d, dv) in [
      (3, 49, 49, 32, 32), (2, 14, 57, 16, 16), (2, 7, 41, 8, 56), (1, 6, 196, 32, 40),
    ] {
      let q = random.tensor([g, nq, d])
      let k = random.tensor([g, nk, d])
      let v = random.tensor([g, nk, dv])
      let bias = random.tensor([g, nq, nk], -2, 2)
      XCTAssertEqual(VectorKernels.use(.avx2), 8)
      let narrow = attention(q: q, k: k, v: v, bias: bias, scale: 0.3)
      guard VectorKernels.use(.avx512) == 16 else {
        throw XCTSkip("this CPU has no AVX-512: only the AVX2 version can run here")
      }
      let wide = attention(q: q, k: k, v: v, bias: bias, scale: 0.3)
      let differing = zip(narrow.data, wide.data).filter { $0.bitPattern != $1.bitPattern }.count
      XCTAssertEqual(differing, 0, "G\(g) Nq\(nq) Nk\(nk) d\(d) dv\(dv): outputs that differ")
    }
  }
}
