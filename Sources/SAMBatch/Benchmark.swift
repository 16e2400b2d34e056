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

  public init() {}

  /// Medians in milliseconds: `embed_ms` (resize, normalize, encoder), `predict_box_ms` (one box,
  /// multimask off, masks at original size), `predict_box_multimask_ms`.
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
    return ["embed_ms": embed, "predict_box_ms": predictBox, "predict_box_multimask_ms": predictMulti]
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
