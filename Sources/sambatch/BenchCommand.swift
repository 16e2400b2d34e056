import ArgumentParser
import Foundation
import MobileSAM
import SAMBatch
import SAMImage

/// `sambatch bench`: medians of the encoder and of box decoding on one image, the encoder's
/// GFLOP/s beside OpenBLAS's on the same machine, as JSON.
struct BenchCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench",
    abstract: "Times the encoder and the decoder on one image (medians after warm-up, JSON on stdout).",
    discussion: """
      Scripts/bench_reference.py --sambatch .build/release/sambatch runs this beside the PyTorch \
      reference and ONNX Runtime on the same image and prints the ratios.
      """)

  @Option(help: "The MobileSAM checkpoint. Default: $SAMBATCH_MODEL.")
  var model: String?

  @Option(help: "The image (JPEG or PNG).")
  var image: String

  @Option(
    help: ArgumentHelp("The box to decode; default: the middle half of the image.", valueName: "X0,Y0,X1,Y1"))
  var box: String?

  @Option(help: "Compute threads.")
  var threads = ProcessInfo.processInfo.activeProcessorCount

  @Option(help: "Timed encoder runs.")
  var runs = 5

  @Option(help: "Timed decoder runs.")
  var decoderRuns = 20

  @Option(help: "Untimed runs first.")
  var warmup = 1

  @Option(help: "Boxes per image for the job-parts rate (job_parts_images_per_s).")
  var boxes = 8

  @Option(help: "Vector width of the C kernels: auto (the widest the CPU has), avx2 or avx512.")
  var kernels = "auto"

  func run() throws {
    try reportingErrors("bench", benchmark)
  }

  private func benchmark() throws {
    let modelPath = try ModelPath.resolve(
      option: model, job: nil, environment: ProcessInfo.processInfo.environment)
    let rgb = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: image))
    let samModel = try MobileSAMModel(checkpoint: modelPath.url)
    let prompt: PromptBox
    if let box {
      prompt = try PromptFields.commandLineBox(box)
    } else {
      let (w, h) = (Float(rgb.width), Float(rgb.height))
      prompt = PromptBox(x0: w / 4, y0: h / 4, x1: 3 * w / 4, y1: 3 * h / 4)
    }
    guard ModelBenchmark.useKernels(named: kernels) else {
      throw ValidationError("--kernels \(kernels): expected auto, avx2 or avx512")
    }
    var benchmark = ModelBenchmark()
    benchmark.threads = threads
    benchmark.encoderRuns = runs
    benchmark.decoderRuns = decoderRuns
    benchmark.warmup = warmup
    var result: [String: Any] = try benchmark.run(model: samModel, image: rgb, box: prompt)
    result["threads"] = threads
    result["blas_core"] = ModelBenchmark.blasCore ?? "unknown"
    if let held = ModelBenchmark.blasHeldBack {
      note(
        "sambatch bench: note: OPENBLAS_CORETYPE=\(held.set) in the environment holds OpenBLAS to narrower "
          + "kernels than this CPU runs (\(held.preferred)); GEMMs may be up to 2x slower. Unset it to let "
          + "OpenBLAS choose.")
    }
    result["vector_lanes"] = ModelBenchmark.vectorLanes
    result["model_kind"] = samModel.modelKind
    result["model_sha256"] = try CheckpointSource(url: modelPath.url).identify().sha256
    try addJobParts(to: &result, model: samModel, image: rgb, box: prompt)
    print(JSONWriter.write(JSONValue(native: result), sortedKeys: true))
  }

  /// read, RLE and write beside the model's parts, and the rate they allow a job with `boxes` boxes
  /// per image: what `sambatch run` on such images is measured against.
  private func addJobParts(
    to result: inout [String: Any], model: MobileSAMModel, image rgb: RGBImage, box: PromptBox
  ) throws {
    let embedding = try model.embed(rgb)
    let mask = try model.predict(embedding, prompts: [Prompt(box: box)], multimask: false)[0].masks[0]
    var parts = JobPartsBenchmark()
    parts.runs = max(runs, 5)
    parts.warmup = warmup
    parts.boxes = boxes
    let timed = try parts.run(imageFile: URL(fileURLWithPath: image), mask: mask)
    result.merge(timed.fields) { $1 }
    result["boxes"] = boxes
    result["job_parts_images_per_s"] = JobPartsBenchmark.imagesPerSecond(
      readMs: timed.read, embedMs: result["embed_ms"] as? Double ?? 0,
      boxMs: result["predict_box_ms"] as? Double ?? 0,
      rleMs: timed.rle, writeMs: timed.write, boxes: boxes)
  }
}
