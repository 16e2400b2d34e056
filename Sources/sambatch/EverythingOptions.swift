import ArgumentParser
import Foundation
import SAMBatch

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
  /// `predict --everything`: the automatic mask generator on one image, one JSON object on stdout.
  /// Bad parameters and prompt flags are refused before the model loads (exit 64).
  func runEverything() throws {
    var work: SingleImageEverything
    do {
      let prompts = [
        ("--box", !boxes.isEmpty), ("--point", !points.isEmpty), ("--prompts", promptsFile != nil),
        ("--mask-input", maskInput != nil), ("--multimask", multimask), ("--logits", logits != nil),
      ].filter(\.1).map(\.0)
      guard prompts.isEmpty else {
        throw SAMBatchError.usage(
          "--everything makes its own prompts; it cannot be combined with \(prompts.joined(separator: ", "))")
      }
      let parameters = try everythingOptions.parameters()
      let modelPath = try ModelPath.resolve(
        option: model, job: nil, environment: ProcessInfo.processInfo.environment)
      work = SingleImageEverything(
        image: URL(fileURLWithPath: image), model: modelPath.url, parameters: parameters)
    } catch {
      throw fail("predict", error.localizedDescription, status: .usage)
    }
    work.applyEXIF = !noEXIF
    do { print(try work.run()) } catch { throw fail("predict", error.localizedDescription) }
  }
}
