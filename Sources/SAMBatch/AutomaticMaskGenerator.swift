// Port of mobile_sam/automatic_mask_generator.py (`SamAutomaticMaskGenerator`, output_mode
// "coco_rle"), the same code as segment_anything's.
import Foundation
import MobileSAM
import SAMImage
import SAMTensor

/// One mask of the automatic mask generator, with what the reference reports for it.
public struct GeneratedMask: Sendable, Equatable {
  /// The mask at the image size as uncompressed COCO runs (column-major, starting with 0s).
  public var runs: [Int]
  /// Inclusive corners in image pixels (`batched_mask_to_box`, then uncropped).
  public var box: PixelBox
  public var predictedIou: Float
  /// nil where the reference's is NaN (no pixel above threshold - offset; kept only when the
  /// stability threshold is 0).
  public var stabilityScore: Float?
  /// The prompt point in image pixels.
  public var pointX: Double
  public var pointY: Double
  /// The crop the mask was found in, [x0, x1) x [y0, y1) in image pixels.
  public var cropBox: PixelBox

  public init(
    runs: [Int], box: PixelBox, predictedIou: Float, stabilityScore: Float?, pointX: Double, pointY: Double,
    cropBox: PixelBox
  ) {
    self.runs = runs
    self.box = box
    self.predictedIou = predictedIou
    self.stabilityScore = stabilityScore
    self.pointX = pointX
    self.pointY = pointY
    self.cropBox = cropBox
  }

  public var area: Int { MaskRLE.area(runs: runs) }
  /// The compressed COCO counts string, as `pycocotools` writes it.
  public var counts: String { MaskRLE.compress(runs) }
}

/// Milliseconds spent in each stage of one `generate` call.
public struct EverythingTimings: Sendable, Equatable {
  /// Image encoder, all crops.
  public var embed = 0.0
  /// Mask decoder, all points.
  public var decode = 0.0
  /// Upsampling, filters, RLE, NMS and small-region removal.
  public var postprocess = 0.0

  public init(embed: Double = 0, decode: Double = 0, postprocess: Double = 0) {
    self.embed = embed
    self.decode = decode
    self.postprocess = postprocess
  }
}

public struct EverythingResult: Sendable {
  public var width: Int
  public var height: Int
  /// In the reference's order (the order its last NMS keeps them in).
  public var masks: [GeneratedMask]
  public var timings: EverythingTimings
  /// How many of `masks` were made a second time, their runs having been forgotten before NMS to
  /// stay within the generator's memory budget (0 unless many large or noisy masks passed).
  public var decodedAgain: Int

  public init(
    width: Int, height: Int, masks: [GeneratedMask], timings: EverythingTimings, decodedAgain: Int = 0
  ) {
    self.width = width
    self.height = height
    self.masks = masks
    self.timings = timings
    self.decodedAgain = decodedAgain
  }
}

/// Every object in an image without a prompt: a grid of single-point prompts over the image and
/// over zoomed crops, weak, unstable and duplicate masks dropped, small regions cleaned. The
/// results are those of `SamAutomaticMaskGenerator.generate`; only the order of work differs where
/// it cannot change a result: a mask is upsampled only after its predicted IoU passed, its
/// stability and binary mask come from one pass, and only the masks that pass are kept, as RLE.
///
/// Memory stays bounded whatever passes the filters: the box NMS (within a crop and between crops)
/// reads only boxes and scores, and a point's decoding never depends on its batch-mates. So once
/// the passing masks' runs fill `keptRunsBudget`, the next ones keep only their record (box,
/// scores, point, crop, which of the point's three masks), and the masks of those that survive
/// every NMS are made again from their point alone: the same logits, so the same mask.
public struct AutomaticMaskGenerator: Sendable {
  public let model: MobileSAMModel
  public let parameters: EverythingParameters
  /// Bytes of runs the passing masks may hold before NMS (the last mask admitted may pass it by
  /// its own size). Random weights with both thresholds at 0 filled 3.7 GB on a 2048x1365 photo;
  /// smooth masks of real weights take a few KB each. Tests set it to 0 to make every mask again.
  var keptRunsBudget = 256 << 20

  /// Throws `SAMBatchError.usage` naming every parameter out of range (as command-line flags).
  public init(model: MobileSAMModel, parameters: EverythingParameters) throws {
    let problems = parameters.problems(naming: .flags)
    guard problems.isEmpty else { throw SAMBatchError.usage(problems.joined(separator: "; ")) }
    self.model = model
    self.parameters = parameters
  }

  public func generate(_ image: RGBImage) throws -> EverythingResult {
    var timings = EverythingTimings()
    let crops = EverythingGeometry.cropBoxes(
      width: image.width, height: image.height, layers: parameters.cropNLayers,
      overlapRatio: parameters.cropOverlapRatio)
    let grids = parameters.pointsPerSideByLayer.map(EverythingGeometry.pointGrid)
    var candidates: [Candidate] = []
    // The embeddings of the crops with a survivor to make again, by crop box.
    var embeddings: [PixelBox: ImageEmbedding] = [:]
    for (crop, layer) in crops {
      let keptBytes = candidates.reduce(0) { $0 + $1.runBytes }
      let (survivors, embedding) = try processCrop(
        image, crop: crop, grid: grids[layer], keptBytes: keptBytes, timings: &timings)
      candidates += survivors
      if survivors.contains(where: \.runsForgotten) { embeddings[crop] = embedding }
    }
    var start = DispatchTime.now()
    if crops.count > 1 {
      // Duplicates between crops: the smaller crop wins (score 1 / crop area, in float32).
      let scores = candidates.map { candidate -> Float in
        let crop = candidate.mask.cropBox
        return 1 / Float((crop.x1 - crop.x0) * (crop.y1 - crop.y0))
      }
      let keep = EverythingGeometry.nonMaximumSuppression(
        boxes: candidates.map(\.mask.box), scores: scores, threshold: parameters.cropNmsThresh)
      candidates = keep.map { candidates[$0] }
    }
    timings.postprocess += milliseconds(since: start)
    let decodedAgain = candidates.filter(\.runsForgotten).count
    try makeAgain(
      &candidates, embeddings: embeddings, width: image.width, height: image.height, timings: &timings)
    embeddings = [:]
    var masks = candidates.map(\.mask)
    candidates = []
    start = DispatchTime.now()
    if parameters.minMaskRegionArea > 0 {
      masks = removeSmallRegions(
        masks, width: image.width, height: image.height,
        threshold: max(parameters.boxNmsThresh, parameters.cropNmsThresh))
    }
    timings.postprocess += milliseconds(since: start)
    return EverythingResult(
      width: image.width, height: image.height, masks: masks, timings: timings, decodedAgain: decodedAgain)
  }

  /// `_process_crop` and `_process_batch`: the masks of one crop that pass the filters, after the
  /// crop's box NMS, in image coordinates, and the crop's embedding. Their runs are kept while
  /// these and `keptBytes` (earlier crops' survivors) stay within `keptRunsBudget`.
  private func processCrop(
    _ image: RGBImage, crop: PixelBox, grid: [(x: Double, y: Double)], keptBytes: Int,
    timings: inout EverythingTimings
  ) throws -> (survivors: [Candidate], embedding: ImageEmbedding) {
    var start = DispatchTime.now()
    let cropped = crop == PixelBox(x0: 0, y0: 0, x1: image.width, y1: image.height) ? image : cut(image, crop)
    let embedding = try model.embed(cropped)
    timings.embed += milliseconds(since: start)
    let (width, height) = (cropped.width, cropped.height)
    let points = grid.map { (x: $0.x * Double(width), y: $0.y * Double(height)) }
    let iouThreshold = Float(parameters.predIouThresh)
    let stabilityThreshold = Float(parameters.stabilityScoreThresh)
    var candidates: [Candidate] = []
    var bytes = keptBytes
    var batchStart = 0
    while batchStart < points.count {
      let batch = Array(points[batchStart..<min(batchStart + parameters.pointsPerBatch, points.count)])
      start = DispatchTime.now()
      // Points whose three masks all fail the predicted-IoU filter are not upscaled.
      let decoded = model.decodePoints(
        embedding, points: batch, scoreAbove: parameters.predIouThresh > 0 ? iouThreshold : nil,
        coverage: .masksOnly)
      timings.decode += milliseconds(since: start)
      start = DispatchTime.now()
      let scored = (0..<(batch.count * 3)).filter {
        !(parameters.predIouThresh > 0 && !(decoded.scores[$0] > iouThreshold))
      }
      // A few masks per thread at a time, side by side (the same bits as one at a time), then
      // admitted in order: the runs budget is counted exactly as if made one by one. A mask holds
      // its crop's pixels and the photo's (uncropped); huge photos' masks take turns.
      let window = 4 * ComputeThreads.count
      let maskBytes = max(1, width * height + image.width * image.height)
      for first in stride(from: 0, to: scored.count, by: window) {
        let indices = Array(scored[first..<min(first + window, scored.count)])
        let withRuns = bytes < keptRunsBudget
        let passing = sideBySideMap(indices.count, atMost: sideBySideMaskBytes / maskBytes) {
          k -> (box: PixelBox, stability: Float?, runs: [Int])? in
          let (plane, stability) = upscaledMask(decoded, indices[k], embedding: embedding)
          if parameters.stabilityScoreThresh > 0 && !((stability ?? .nan) >= stabilityThreshold) {
            return nil
          }
          let box = plane.mask.withUnsafeBufferPointer {
            EverythingGeometry.maskBox($0, width: width, height: height)
          }
          if EverythingGeometry.isNearCropEdge(box, crop: crop, width: image.width, height: image.height) {
            return nil
          }
          let runs =
            withRuns
            ? MaskRLE.runs(of: uncrop(plane.mask, crop: crop, width: image.width, height: image.height)) : []
          return (box, stability, runs)
        }
        for (index, made) in zip(indices, passing) {
          guard let made else { continue }
          let point = batch[index / 3]
          // bytes only grows, so a mask kept here had its runs made above (withRuns).
          let keepRuns = bytes < keptRunsBudget
          let candidate = Candidate(
            mask: GeneratedMask(
              runs: keepRuns ? made.runs : [], box: made.box, predictedIou: decoded.scores[index],
              stabilityScore: made.stability, pointX: point.x, pointY: point.y, cropBox: crop),
            localPoint: point, maskIndex: index % 3, runsForgotten: !keepRuns)
          bytes += candidate.runBytes
          candidates.append(candidate)
        }
      }
      timings.postprocess += milliseconds(since: start)
      batchStart += batch.count
    }
    start = DispatchTime.now()
    let keep = EverythingGeometry.nonMaximumSuppression(
      boxes: candidates.map(\.mask.box), scores: candidates.map(\.mask.predictedIou),
      threshold: parameters.boxNmsThresh)
    let survivors = keep.map { index -> Candidate in
      var candidate = candidates[index]
      candidate.mask.box = candidate.mask.box.offset(by: crop)
      candidate.mask.pointX += Double(crop.x0)
      candidate.mask.pointY += Double(crop.y0)
      return candidate
    }
    timings.postprocess += milliseconds(since: start)
    return (survivors, embedding)
  }

  /// Mask `index` of a decoded batch at the embedded image's size, and its stability score (nil
  /// where the reference's is NaN: no pixel above threshold - offset).
  private func upscaledMask(_ decoded: PointDecodings, _ index: Int, embedding: ImageEmbedding) -> (
    plane: ThresholdedPlane, stability: Float?
  ) {
    let plane = MaskUpscaling.planes(
      lowResPlane(decoded.lowResLogits, index), embedding: embedding, threshold: 0,
      offset: Float(parameters.stabilityScoreOffset))[0]
    let stability: Float? =
      plane.countAboveLow > 0 ? Float(plane.countAboveHigh) / Float(plane.countAboveLow) : nil
    return (plane, stability)
  }

  /// The runs of the survivors that were over the budget, made again: each point decoded alone
  /// against its crop's embedding, as in `processCrop`. Checks that the decoder gave the same
  /// predicted IoU, stability score and box as the first time: a decoder whose results depended on
  /// a point's batch-mates would make another mask, and that is an error, not a silent difference.
  private func makeAgain(
    _ candidates: inout [Candidate], embeddings: [PixelBox: ImageEmbedding], width: Int, height: Int,
    timings: inout EverythingTimings
  ) throws {
    // The forgotten masks by crop and point, so a point whose masks both survived is decoded once.
    let byPoint = Dictionary(grouping: candidates.indices.filter { candidates[$0].runsForgotten }) {
      PointKey(
        crop: candidates[$0].mask.cropBox, x: candidates[$0].localPoint.x.bitPattern,
        y: candidates[$0].localPoint.y.bitPattern)
    }
    for (key, indices) in byPoint.sorted(by: { $0.value[0] < $1.value[0] }) {
      guard let embedding = embeddings[key.crop] else {
        throw SAMBatchError.prediction(
          "the automatic mask generator lost the embedding of crop \(key.crop.xywh)")
      }
      var start = DispatchTime.now()
      let decoded = model.decodePoints(
        embedding, points: [candidates[indices[0]].localPoint], coverage: .masksOnly)
      timings.decode += milliseconds(since: start)
      start = DispatchTime.now()
      for i in indices {
        let crop = key.crop
        let (plane, stability) = upscaledMask(decoded, candidates[i].maskIndex, embedding: embedding)
        let box = plane.mask.withUnsafeBufferPointer {
          EverythingGeometry.maskBox($0, width: crop.x1 - crop.x0, height: crop.y1 - crop.y0)
        }
        let first = candidates[i].mask
        guard decoded.scores[candidates[i].maskIndex].bitPattern == first.predictedIou.bitPattern,
          stability?.bitPattern == first.stabilityScore?.bitPattern, box.offset(by: crop) == first.box
        else {
          throw SAMBatchError.prediction(
            "the automatic mask generator decoded point (\(first.pointX), \(first.pointY)) again and got"
              + " another mask: the decoder's results depend on the point's batch-mates")
        }
        candidates[i].mask.runs = MaskRLE.runs(
          of: uncrop(plane.mask, crop: crop, width: width, height: height))
        candidates[i].runsForgotten = false
      }
      timings.postprocess += milliseconds(since: start)
    }
  }

  /// `postprocess_small_regions`: holes then islands below `min_mask_region_area` removed from
  /// every mask, then NMS again with the unchanged masks preferred (score 1, changed ones 0).
  private func removeSmallRegions(_ masks: [GeneratedMask], width: Int, height: Int, threshold: Double)
    -> [GeneratedMask]
  {
    guard !masks.isEmpty else { return masks }
    let area = parameters.minMaskRegionArea
    var cleaned = [(runs: [Int]?, box: PixelBox)](
      repeating: (nil, PixelBox(x0: 0, y0: 0, x1: 0, y1: 0)), count: masks.count)
    cleaned.withUnsafeMutableBufferPointer { out in
      let shared = SendablePointer(out.baseAddress!)
      parallelFor(masks.count) { i in
        // The runs come from our own encoder and always fit the image.
        guard let mask = try? MaskRLE.mask(fromRuns: masks[i].runs, width: width, height: height) else {
          return
        }
        let (filled, holesChanged) = MaskRegions.removeSmall(
          mask.pixels, width: width, height: height, area: area, mode: .holes)
        let (result, islandsChanged) = MaskRegions.removeSmall(
          filled, width: width, height: height, area: area, mode: .islands)
        let box = result.withUnsafeBufferPointer {
          EverythingGeometry.maskBox($0, width: width, height: height)
        }
        let changed = holesChanged || islandsChanged
        shared.pointer[i] = (
          changed ? MaskRLE.runs(of: BinaryMask(width: width, height: height, pixels: result)) : nil, box
        )
      }
    }
    let keep = EverythingGeometry.nonMaximumSuppression(
      boxes: cleaned.map(\.box), scores: cleaned.map { $0.runs == nil ? 1 : 0 }, threshold: threshold)
    return keep.map { i in
      var mask = masks[i]
      if let runs = cleaned[i].runs {
        mask.runs = runs
        mask.box = cleaned[i].box
      }
      return mask
    }
  }
}

/// A mask that passed the filters of its crop, before NMS. `mask.runs` is empty when the runs were
/// forgotten (over the budget); the point and which of its three masks this is are what making it
/// again takes, with the crop's embedding.
private struct Candidate {
  var mask: GeneratedMask
  /// The prompt in crop pixels, exactly as it was decoded (`mask.pointX` moves to image pixels).
  let localPoint: (x: Double, y: Double)
  let maskIndex: Int
  var runsForgotten: Bool

  var runBytes: Int { mask.runs.capacity * MemoryLayout<Int>.stride }
}

/// A point of a crop (two layers may share a crop box with other grids, so the point itself).
private struct PointKey: Hashable {
  let crop: PixelBox
  let x: UInt64
  let y: UInt64
}

/// One plane [1, 256, 256] of low-res logits [N, 256, 256].
private func lowResPlane(_ logits: Tensor, _ index: Int) -> Tensor {
  let size = 256 * 256
  return Tensor(shape: [1, 256, 256], data: Array(logits.data[(index * size)..<((index + 1) * size)]))
}

/// `image[y0:y1, x0:x1]`.
private func cut(_ image: RGBImage, _ crop: PixelBox) -> RGBImage {
  let width = crop.x1 - crop.x0
  var pixels = [UInt8]()
  pixels.reserveCapacity(width * (crop.y1 - crop.y0) * 3)
  for y in crop.y0..<crop.y1 {
    let start = (y * image.width + crop.x0) * 3
    pixels += image.pixels[start..<(start + width * 3)]
  }
  return RGBImage(width: width, height: crop.y1 - crop.y0, pixels: pixels)
}

/// `uncrop_masks`: a crop's mask placed in an image-size mask of zeros.
private func uncrop(_ mask: [UInt8], crop: PixelBox, width: Int, height: Int) -> BinaryMask {
  let cropWidth = crop.x1 - crop.x0
  if crop == PixelBox(x0: 0, y0: 0, x1: width, y1: height) {
    return BinaryMask(width: width, height: height, pixels: mask)
  }
  var pixels = [UInt8](repeating: 0, count: width * height)
  for y in 0..<(crop.y1 - crop.y0) {
    let target = (y + crop.y0) * width + crop.x0
    pixels.replaceSubrange(target..<(target + cropWidth), with: mask[(y * cropWidth)..<((y + 1) * cropWidth)])
  }
  return BinaryMask(width: width, height: height, pixels: pixels)
}

private struct SendablePointer<T>: @unchecked Sendable {
  let pointer: UnsafeMutablePointer<T>
  init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}
