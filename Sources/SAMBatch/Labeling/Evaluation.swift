import Foundation
import MobileSAM

/// Quality against ground truth: the box-prompt protocol of EfficientViT-SAM and EdgeSAM (each
/// ground-truth box is a prompt; the kept mask is compared with the annotation's segmentation).
public struct EvalSummary: Sendable {
  public struct Group: Sendable, Equatable {
    public var name: String
    public var meanIoU: Double
    public var count: Int
  }

  /// Prompts compared (crowd annotations excluded from the means).
  public var prompts: Int
  /// Masks whose `gt_iou` was stored (every stored mask of a prompt with ground truth).
  public var masks: Int
  public var crowdPrompts: Int
  /// Prompts from a COCO manifest whose annotation has no `segmentation`.
  public var withoutSegmentation: Int
  public var overall: Group?
  public var perCategory: [Group]
  /// COCO's small (< 32^2), medium (< 96^2) and large areas, by the annotation's `area`.
  public var byArea: [Group]
  /// Annotations that could not be compared, with the reason.
  public var problems: [String]
}

public enum GroundTruthEvaluator {
  struct Annotation {
    var segmentation: JSONValue?
    var isCrowd: Bool
    var area: Double?
    var imageWidth: Int
    var imageHeight: Int
  }

  /// Reads the ground truth of every `coco` manifest of the job: annotation by (image file name,
  /// annotation id as the store's `source_id`).
  static func groundTruth(_ job: JobFile) throws -> [String: [String: Annotation]] {
    var result: [String: [String: Annotation]] = [:]
    for spec in job.manifests where spec.format == .coco {
      let file = spec.path.path
      let document: JSONValue
      do {
        document = try JSONReader().parse(Data(contentsOf: spec.path))
      } catch let error as JSONSyntaxError {
        throw SAMBatchError.manifest(file: file, line: error.line, message: error.description)
      } catch {
        throw SAMBatchError.manifest(
          file: file, line: nil, message: "cannot read it (\(fileReadCause(spec.path, error)))")
      }
      guard let images = document.object?["images"]?.array,
        let annotations = document.object?["annotations"]?.array
      else {
        throw SAMBatchError.manifest(
          file: file, line: nil, message: "not a COCO instances file (images, annotations)")
      }
      var imageInfo: [Int: (name: String, width: Int, height: Int)] = [:]
      for image in images.compactMap(\.object) {
        guard let id = image["id"]?.integer, let name = image["file_name"]?.string else { continue }
        imageInfo[id] = (
          ImagePath.normalize(name) ?? name, image["width"]?.integer ?? 0, image["height"]?.integer ?? 0
        )
      }
      for a in annotations.compactMap(\.object) {
        guard let id = a["id"]?.integer, let imageId = a["image_id"]?.integer, let image = imageInfo[imageId]
        else { continue }
        let segmentation = a["segmentation"].flatMap { $0 == .null ? nil : $0 }
        result[image.name, default: [:]][String(id)] = Annotation(
          segmentation: segmentation, isCrowd: (a["iscrowd"]?.integer ?? 0) != 0, area: a["area"]?.number,
          imageWidth: image.width, imageHeight: image.height)
      }
    }
    return result
  }

  /// Computes and stores `gt_iou` for every mask of every prompt made from a ground-truth
  /// annotation with a segmentation (earlier values are replaced, in one transaction), and
  /// summarizes: per prompt, the stored mask with the highest predicted IoU counts (with
  /// `keep: best` the only one).
  public static func evaluate(job: JobFile, database: URL) throws -> EvalSummary {
    let truth = try groundTruth(job)
    let store = try ResultStore(url: database, access: .readWrite)
    defer { store.close() }
    var summary = EvalSummary(
      prompts: 0, masks: 0, crowdPrompts: 0, withoutSegmentation: 0, overall: nil, perCategory: [],
      byArea: [],
      problems: [])
    var groundTruthMasks: [String: BinaryMask?] = [:]
    var values: [(imageId: Int, promptIndex: Int, maskIndex: Int, iou: Double)] = []
    // Per prompt: the stored mask with the best predicted IoU, its gt IoU, category and gt area.
    var best: [String: Compared] = [:]
    var order: [String] = []
    var noSegmentation = Set<String>()
    for stored in try store.masksForEvaluation() {
      guard let source = stored.sourceId, let annotation = truth[stored.path]?[source] else { continue }
      let key = "\(stored.path)|\(source)"
      guard let segmentation = annotation.segmentation else {
        noSegmentation.insert(key)
        continue
      }
      if groundTruthMasks[key] == nil {
        do {
          let parsed = try GroundTruthSegmentation.parse(segmentation)
          let mask = try parsed.mask(imageWidth: annotation.imageWidth, imageHeight: annotation.imageHeight)
          guard mask.width == stored.width, mask.height == stored.height else {
            throw LabelingError.segmentation(
              "\(mask.width)x\(mask.height), but the image decoded to \(stored.width)x\(stored.height) (EXIF orientation?)"
            )
          }
          groundTruthMasks[key] = mask
        } catch {
          summary.problems.append("\(stored.path) annotation \(source): \(error.localizedDescription)")
          groundTruthMasks[key] = .some(nil)
        }
      }
      guard let gt = groundTruthMasks[key] ?? nil else { continue }
      let mask: BinaryMask
      do {
        mask = try MaskRLE.decode(stored.rle, width: stored.width, height: stored.height)
      } catch {
        throw SAMBatchError.store(
          database: database.path,
          message:
            "\(stored.path) prompt \(stored.promptIndex): stored RLE is damaged (\(error.localizedDescription))"
        )
      }
      let iou = MaskIoU.iou(mask, gt, isCrowd: annotation.isCrowd)
      values.append((stored.imageId, stored.promptIndex, stored.maskIndex, iou))
      if best[key] == nil { order.append(key) }
      if best[key] == nil || stored.score > best[key]!.score {
        best[key] = Compared(
          score: stored.score, iou: iou, category: stored.category,
          area: annotation.area ?? Double(MaskRLE.area(gt)), crowd: annotation.isCrowd)
      }
    }
    try store.storeGroundTruthIoU(values)
    summary.masks = values.count
    summary.withoutSegmentation = noSegmentation.count
    let counted = order.compactMap { best[$0] }.filter { !$0.crowd }
    summary.crowdPrompts = order.count - counted.count
    summary.prompts = counted.count
    summary.overall = group("all", counted)
    summary.perCategory = Set(counted.map(\.category)).sorted().compactMap { name in
      group(name, counted.filter { $0.category == name })
    }
    summary.byArea = [
      group("small", counted.filter { $0.area < 32 * 32 }),
      group("medium", counted.filter { $0.area >= 32 * 32 && $0.area < 96 * 96 }),
      group("large", counted.filter { $0.area >= 96 * 96 }),
    ].compactMap { $0 }
    return summary
  }

  struct Compared {
    var score: Double
    var iou: Double
    var category: String
    var area: Double
    var crowd: Bool
  }

  /// One stored mask as eval reads it.
  struct StoredMask {
    var imageId: Int
    var promptIndex: Int
    var maskIndex: Int
    var score: Double
    var rle: String
    var sourceId: String?
    var category: String
    var path: String
    var width: Int
    var height: Int
  }

  private static func group(_ name: String, _ items: [Compared]) -> EvalSummary.Group? {
    guard !items.isEmpty else { return nil }
    return EvalSummary.Group(
      name: name, meanIoU: items.reduce(0) { $0 + $1.iou } / Double(items.count), count: items.count)
  }
}
