import ArgumentParser
import Foundation
import MobileSAM
import SAMBatch
import SAMImage

/// The flags of `sambatch predict --everything`, named as the reference's
/// `SamAutomaticMaskGenerator` parameters; unset ones take its defaults.
struct EverythingOptions: ParsableArguments {
  @Flag(help: "Every object in the image, without prompts (the automatic mask generator).")
  var everything = false

  @Option(help: "Points along one side of the grid (default 32).")
  var pointsPerSide: Int?
  @Option(help: "Points decoded per batch (default 64; only memory depends on it).")
  var pointsPerBatch: Int?
  @Option(help: "Keep masks whose predicted IoU is above this (default 0.88; 0 keeps all).")
  var predIouThresh: Double?
  @Option(help: "Keep masks whose stability score is at least this (default 0.95; 0 keeps all).")
  var stabilityScoreThresh: Double?
  @Option(help: "Logit offset of the stability score (default 1.0).")
  var stabilityScoreOffset: Double?
  @Option(help: "Box IoU above which NMS drops a duplicate mask (default 0.7).")
  var boxNmsThresh: Double?
  @Option(help: "Crop layers; layer i has 4^i crops (default 0).")
  var cropNLayers: Int?
  @Option(help: "Box IoU above which NMS drops a duplicate from another crop (default 0.7).")
  var cropNmsThresh: Double?
  @Option(help: "Overlap of the first layer's crops, a fraction of the short side (default 512/1500).")
  var cropOverlapRatio: Double?
  @Option(help: "Points per side in layer i are divided by this to the power i (default 1).")
  var cropNPointsDownscaleFactor: Int?
  @Option(help: "Remove islands and fill holes smaller than this many pixels (default 0: off).")
  var minMaskRegionArea: Int?

  /// The parameters, or why they cannot be used (every flag out of range, named).
  func parameters() throws -> EverythingParameters {
    var p = EverythingParameters()
    p.pointsPerSide = pointsPerSide ?? p.pointsPerSide
    p.pointsPerBatch = pointsPerBatch ?? p.pointsPerBatch
    p.predIouThresh = predIouThresh ?? p.predIouThresh
    p.stabilityScoreThresh = stabilityScoreThresh ?? p.stabilityScoreThresh
    p.stabilityScoreOffset = stabilityScoreOffset ?? p.stabilityScoreOffset
    p.boxNmsThresh = boxNmsThresh ?? p.boxNmsThresh
    p.cropNLayers = cropNLayers ?? p.cropNLayers
    p.cropNmsThresh = cropNmsThresh ?? p.cropNmsThresh
    p.cropOverlapRatio = cropOverlapRatio ?? p.cropOverlapRatio
    p.cropNPointsDownscaleFactor = cropNPointsDownscaleFactor ?? p.cropNPointsDownscaleFactor
    p.minMaskRegionArea = minMaskRegionArea ?? p.minMaskRegionArea
    let problems = p.problems(naming: .flags)
    guard problems.isEmpty else { throw SAMBatchError.usage(problems.joined(separator: "; ")) }
    return p
  }

  /// The generator's flags given without --everything.
  var strayFlags: [String] {
    let given: [(String, Bool)] = [
      ("--points-per-side", pointsPerSide != nil), ("--points-per-batch", pointsPerBatch != nil),
      ("--pred-iou-thresh", predIouThresh != nil), ("--stability-score-thresh", stabilityScoreThresh != nil),
      ("--stability-score-offset", stabilityScoreOffset != nil), ("--box-nms-thresh", boxNmsThresh != nil),
      ("--crop-n-layers", cropNLayers != nil), ("--crop-nms-thresh", cropNmsThresh != nil),
      ("--crop-overlap-ratio", cropOverlapRatio != nil),
      ("--crop-n-points-downscale-factor", cropNPointsDownscaleFactor != nil),
      ("--min-mask-region-area", minMaskRegionArea != nil),
    ]
    return given.filter(\.1).map(\.0)
  }
}

extension PredictCommand {
  /// `predict --everything`: the automatic mask generator on one image, one JSON object on stdout
  /// (`EverythingOutput`). Bad parameters are refused before the model loads (exit 64).
  func runEverything() throws {
    let start = DispatchTime.now()
    let parameters: EverythingParameters
    do {
      let prompts = [
        ("--box", !boxes.isEmpty), ("--point", !points.isEmpty), ("--prompts", promptsFile != nil),
        ("--mask-input", maskInput != nil), ("--multimask", multimask), ("--logits", logits != nil),
      ].filter(\.1).map(\.0)
      guard prompts.isEmpty else {
        throw SAMBatchError.usage(
          "--everything makes its own prompts; it cannot be combined with \(prompts.joined(separator: ", "))")
      }
      parameters = try everythingOptions.parameters()
    } catch {
      throw everythingFailure(error.localizedDescription, status: .usage)
    }
    guard let modelPath = model ?? ProcessInfo.processInfo.environment["SAMBATCH_MODEL"], !modelPath.isEmpty
    else {
      throw everythingFailure("no model: give --model PATH or set SAMBATCH_MODEL", status: .usage)
    }
    for (path, what) in [(modelPath, "model"), (image, "image")] {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue
      else {
        throw everythingFailure("\(what) \(path): no such file", status: .failure)
      }
    }
    var timer = start
    func lap() -> Double {
      let now = DispatchTime.now()
      defer { timer = now }
      return Double(now.uptimeNanoseconds - timer.uptimeNanoseconds) / 1e6
    }
    let rgb: RGBImage
    let generator: AutomaticMaskGenerator
    do {
      rgb = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: image), applyEXIFOrientation: !noEXIF)
    } catch {
      throw everythingFailure("image \(error.localizedDescription)", status: .failure)
    }
    let decodeImage = lap()
    do {
      generator = try AutomaticMaskGenerator(
        model: try MobileSAMModel(checkpoint: URL(fileURLWithPath: modelPath)), parameters: parameters)
    } catch {
      throw everythingFailure(error.localizedDescription, status: .failure)
    }
    let loadModel = lap()
    let result: EverythingResult
    do {
      result = try generator.generate(rgb)
    } catch {
      throw everythingFailure("image \(image): \(error.localizedDescription)", status: .failure)
    }
    let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
    print(
      EverythingOutput.json(
        result,
        timings: [
          ("load_model", loadModel), ("decode_image", decodeImage), ("embed", result.timings.embed),
          ("decode", result.timings.decode), ("postprocess", result.timings.postprocess), ("total", total),
        ]))
  }
}

/// Prints `message` on stderr and returns the exit code to throw.
private func everythingFailure(_ message: String, status: ExitCode) -> ExitCode {
  FileHandle.standardError.write(Data("sambatch predict: error: \(message)\n".utf8))
  return status
}
