import Dispatch
import Foundation
import MobileSAM
import SAMImage
import SAMTensor

/// In-process timings of the engine on one image, measured the way Scripts/bench_reference.py
/// measures the reference: medians after warm-up runs, so the numbers can be set side by side.
public struct ModelBenchmark: Sendable {
  public var warmup = 1
  public var encoderRuns = 5
  public var decoderRuns = 20
  public var threads = ProcessInfo.processInfo.activeProcessorCount

  /// Multiply-adds of the MobileSAM image encoder, times two: 77.5 GFLOP per image.
  public static let encoderFLOP = 77.5e9
  /// The GEMM measured for the machine's reference speed: the encoder's widest MLP
  /// (4096 tokens, 320 -> 1280), as `linear` runs it.
  static let gemmShape = (m: 4096, n: 1280, k: 320)

  public init() {}

  /// OpenBLAS's kernel family in use (e.g. "SkylakeX"), nil when the BLAS does not say.
  public static var blasCore: String? { BLASCore.name }
  /// OPENBLAS_CORETYPE's value and the CPU's own kernels, when that variable holds OpenBLAS back.
  public static var blasHeldBack: (set: String, preferred: String)? { BLASCore.heldBackBy }
  /// Float lanes of our C kernels' vectors: 16 with AVX-512, 8 with AVX2.
  public static var vectorLanes: Int { VectorKernels.lanes }

  /// Sets the C kernels' vector width by name ("auto", "avx2", "avx512": the latter falls back to
  /// AVX2 where the CPU lacks it); false, changing nothing, for another name.
  public static func useKernels(named name: String) -> Bool {
    let widths: [String: VectorKernels.Width] = ["auto": .automatic, "avx2": .avx2, "avx512": .avx512]
    guard let width = widths[name] else { return false }
    VectorKernels.use(width)
    return true
  }

  /// Medians in milliseconds: `embed_ms` (resize, normalize, encoder), `predict_box_ms` (one box,
  /// multimask off, masks at original size), `predict_box_multimask_ms`, `box_rle_ms` (one box and
  /// the RLE of its mask, as a job stores it), `boxes32_rle_ms` (32 boxes in one call, each mask
  /// RLE-encoded) and `marginal_box_ms` = (boxes32_rle_ms - box_rle_ms) / 31. Also
  /// `encoder_gflops` (77.5 GFLOP / embed time) and `sgemm_gflops`, OpenBLAS's speed on the
  /// encoder's largest GEMM shape with the same threads, measured in this process.
  public func run(model: MobileSAMModel, image: RGBImage, box: PromptBox) throws -> [String: Double] {
    ComputeThreads.set(threads)
    var embedding = try model.embed(image)
    let embed = try median(runs: encoderRuns) { embedding = try model.embed(image) }
    let prompt = [Prompt(box: box)]
    let predictBox = try median(runs: decoderRuns) {
      _ = try model.predict(embedding, prompts: prompt, multimask: false)
    }
    let predictMulti = try median(runs: decoderRuns) {
      _ = try model.predict(embedding, prompts: prompt, multimask: true)
    }
    let boxRLE = try median(runs: decoderRuns) { try predictAndEncode(model, embedding, prompt) }
    let boxes = Self.boxes(around: box, count: 32, width: image.width, height: image.height)
    let boxes32 = try median(runs: max(1, decoderRuns / 4)) { try predictAndEncode(model, embedding, boxes) }
    let encoderSeconds = embed / 1000
    return [
      "embed_ms": embed, "predict_box_ms": predictBox, "predict_box_multimask_ms": predictMulti,
      "box_rle_ms": boxRLE, "boxes32_rle_ms": boxes32, "marginal_box_ms": (boxes32 - boxRLE) / 31,
      "encoder_gflops": Self.encoderFLOP / encoderSeconds / 1e9, "sgemm_gflops": try sgemmGFLOPS(),
    ]
  }

  /// `count` distinct boxes: `box` shifted by a few pixels at a time, kept inside the image.
  static func boxes(around box: PromptBox, count: Int, width: Int, height: Int) -> [Prompt] {
    (0..<count).map { i in
      let shift = Float(i * 4)
      let dx = min(shift, max(0, Float(width) - box.x1))
      let dy = min(shift / 2, max(0, Float(height) - box.y1))
      return Prompt(box: PromptBox(x0: box.x0 + dx, y0: box.y0 + dy, x1: box.x1 + dx, y1: box.y1 + dy))
    }
  }

  private func predictAndEncode(_ model: MobileSAMModel, _ embedding: ImageEmbedding, _ prompts: [Prompt])
    throws
  {
    // As a job makes them (Pipeline): low-res logits, then each mask made and encoded.
    _ = try model.predictMasks(embedding, prompts: prompts, multimask: false, wanted: { _ in [0] }) {
      MaskRLE.summarize($0.mask)
    }
  }

  /// GFLOP/s of `sgemm` (OpenBLAS, split over our threads as the encoder runs it) on the
  /// encoder's largest GEMM shape.
  private func sgemmGFLOPS() throws -> Double {
    let (m, n, k) = Self.gemmShape
    let a = [Float](repeating: 0.5, count: m * k)
    let b = [Float](repeating: 0.25, count: n * k)
    var c = [Float](repeating: 0, count: m * n)
    let time = try median(runs: max(3, encoderRuns)) {
      a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
          c.withUnsafeMutableBufferPointer { cp in
            sgemm(
              m: m, n: n, k: k, a: ap.baseAddress!, lda: k, transposeA: false, b: bp.baseAddress!, ldb: k,
              transposeB: true, c: cp.baseAddress!, ldc: n)
          }
        }
      }
    }
    return 2 * Double(m * n * k) / (time / 1000) / 1e9
  }

  private func median(runs: Int, _ body: () throws -> Void) throws -> Double {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<max(1, runs) {
      let start = DispatchTime.now().uptimeNanoseconds
      try body()
      times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    times.sort()
    return times.count % 2 == 1
      ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
  }
}
