import Foundation

/// The parameters of the automatic mask generator ("everything" mode), named and defaulted as
/// `SamAutomaticMaskGenerator.__init__` of mobile_sam/automatic_mask_generator.py has them.
public struct EverythingParameters: Sendable, Equatable, Codable {
  public var pointsPerSide = 32
  public var pointsPerBatch = 64
  public var predIouThresh = 0.88
  public var stabilityScoreThresh = 0.95
  public var stabilityScoreOffset = 1.0
  public var boxNmsThresh = 0.7
  public var cropNLayers = 0
  public var cropNmsThresh = 0.7
  public var cropOverlapRatio = 512.0 / 1500.0
  public var cropNPointsDownscaleFactor = 1
  public var minMaskRegionArea = 0

  public init() {}

  enum CodingKeys: String, CodingKey, CaseIterable {
    case pointsPerSide = "points_per_side"
    case pointsPerBatch = "points_per_batch"
    case predIouThresh = "pred_iou_thresh"
    case stabilityScoreThresh = "stability_score_thresh"
    case stabilityScoreOffset = "stability_score_offset"
    case boxNmsThresh = "box_nms_thresh"
    case cropNLayers = "crop_n_layers"
    case cropNmsThresh = "crop_nms_thresh"
    case cropOverlapRatio = "crop_overlap_ratio"
    case cropNPointsDownscaleFactor = "crop_n_points_downscale_factor"
    case minMaskRegionArea = "min_mask_region_area"
  }

  /// Largest accepted values: beyond them a run would take days or the crops would be smaller
  /// than the points they hold.
  public static let maxPointsPerSide = 512
  public static let maxCropLayers = 4

  /// How the user named the parameters: command-line flags (`--points-per-side`) or job-file
  /// keys (`points_per_side`, as the reference names them).
  public enum Naming: Sendable {
    case flags
    case keys

    func name(_ key: CodingKeys) -> String {
      switch self {
      case .keys: return key.rawValue
      case .flags: return "--" + key.rawValue.replacingOccurrences(of: "_", with: "-")
      }
    }
  }

  /// Every parameter that is out of range, one message each naming the flag or key, the value and
  /// the accepted range. Empty when the parameters can be used.
  public func problems(naming: Naming) -> [String] {
    var out: [String] = []
    func check(_ ok: Bool, _ key: CodingKeys, _ value: CustomStringConvertible, _ range: String) {
      if !ok { out.append("\(naming.name(key)) \(value): must be \(range)") }
    }
    func unit(_ value: Double, _ key: CodingKeys) {
      check(value.isFinite && value >= 0 && value <= 1, key, value, "a number from 0 to 1")
    }
    check(
      (1...EverythingParameters.maxPointsPerSide).contains(pointsPerSide), .pointsPerSide, pointsPerSide,
      "an integer from 1 to \(EverythingParameters.maxPointsPerSide)")
    check(
      pointsPerBatch >= 1 && pointsPerBatch <= 1 << 20, .pointsPerBatch, pointsPerBatch, "a positive integer")
    unit(predIouThresh, .predIouThresh)
    unit(stabilityScoreThresh, .stabilityScoreThresh)
    check(
      stabilityScoreOffset.isFinite && stabilityScoreOffset >= 0, .stabilityScoreOffset, stabilityScoreOffset,
      "a finite number >= 0")
    unit(boxNmsThresh, .boxNmsThresh)
    check(
      (0...EverythingParameters.maxCropLayers).contains(cropNLayers), .cropNLayers, cropNLayers,
      "an integer from 0 to \(EverythingParameters.maxCropLayers)")
    unit(cropNmsThresh, .cropNmsThresh)
    check(
      cropOverlapRatio.isFinite && cropOverlapRatio >= 0 && cropOverlapRatio < 1, .cropOverlapRatio,
      cropOverlapRatio, "a number from 0 to 1 (1 excluded)")
    check(
      cropNPointsDownscaleFactor >= 1 && cropNPointsDownscaleFactor <= 1 << 20, .cropNPointsDownscaleFactor,
      cropNPointsDownscaleFactor, "a positive integer")
    check(minMaskRegionArea >= 0, .minMaskRegionArea, minMaskRegionArea, "an integer >= 0")
    if out.isEmpty, let layer = pointsPerSideByLayer.firstIndex(of: 0) {
      out.append(
        "\(naming.name(.cropNPointsDownscaleFactor)) \(cropNPointsDownscaleFactor): leaves no point in crop"
          + " layer \(layer) (\(naming.name(.pointsPerSide)) \(pointsPerSide) divided by"
          + " \(cropNPointsDownscaleFactor)^\(layer) is below 1)")
    }
    return out
  }

  /// Points per side of the grid of each crop layer: `int(points_per_side / factor**i)` as
  /// `build_all_layer_point_grids` computes it.
  public var pointsPerSideByLayer: [Int] {
    (0...max(0, cropNLayers)).map { layer in
      var divisor = 1.0
      for _ in 0..<layer { divisor *= Double(cropNPointsDownscaleFactor) }
      return Int(Double(pointsPerSide) / divisor)
    }
  }
}
