import Foundation
import GRDB
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
    var segmentation: Any?
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
      let object: Any
      do {
        object = try JSONSerialization.jsonObject(with: Data(contentsOf: spec.path))
      } catch {
        throw SAMBatchError.manifest(
          file: spec.path.path, line: nil, message: "cannot read it as JSON (\(error))")
      }
      guard let document = object as? [String: Any], let images = document["images"] as? [[String: Any]],
        let annotations = document["annotations"] as? [[String: Any]]
      else {
        throw SAMBatchError.manifest(
          file: spec.path.path, line: nil, message: "not a COCO instances file (images, annotations)")
      }
      var imageInfo: [Int: (name: String, width: Int, height: Int)] = [:]
      for image in images {
        guard let id = (image["id"] as? NSNumber)?.intValue, let name = image["file_name"] as? String else {
          continue
        }
        imageInfo[id] = (
          name, (image["width"] as? NSNumber)?.intValue ?? 0, (image["height"] as? NSNumber)?.intValue ?? 0
        )
      }
      for a in annotations {
        guard let id = (a["id"] as? NSNumber)?.intValue, let imageId = (a["image_id"] as? NSNumber)?.intValue,
          let image = imageInfo[imageId]
        else { continue }
        result[image.name, default: [:]][String(id)] = Annotation(
          segmentation: a["segmentation"], isCrowd: ((a["iscrowd"] as? NSNumber)?.intValue ?? 0) != 0,
          area: (a["area"] as? NSNumber)?.doubleValue, imageWidth: image.width, imageHeight: image.height)
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
    let store = try ResultStore(url: database, create: false)
    defer { store.close() }
    return try store.wrap("evaluating") {
      try store.queue.write { db in
        try db.execute(sql: "UPDATE masks SET gt_iou = NULL")
        let rows = try Row.fetchAll(
          db,
          sql: """
            SELECT m.image_id, m.prompt_index, m.mask_index, m.score, m.rle, p.source_id,
              COALESCE(p.category, CAST(p.category_id AS TEXT)) AS category, i.path, i.width, i.height
            FROM masks m JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
            JOIN images i ON i.id = m.image_id ORDER BY m.image_id, m.prompt_index, m.mask_index
            """)
        var summary = EvalSummary(
          prompts: 0, masks: 0, crowdPrompts: 0, withoutSegmentation: 0, overall: nil, perCategory: [],
          byArea: [],
          problems: [])
        var groundTruthMasks: [String: BinaryMask?] = [:]
        // Per prompt: (best score, its IoU, category, area bucket).
        var best: [String: (score: Double, iou: Double, category: String, area: Double, crowd: Bool)] = [:]
        var order: [String] = []
        var noSegmentation = Set<String>()
        for row in rows {
          let path: String = row["path"]
          guard let source = row["source_id"] as String?, let annotation = truth[path]?[source] else {
            continue
          }
          let key = "\(path)|\(source)"
          guard let segmentation = annotation.segmentation else {
            noSegmentation.insert(key)
            continue
          }
          let width: Int = row["width"]
          let height: Int = row["height"]
          if groundTruthMasks[key] == nil {
            do {
              let parsed = try GroundTruthSegmentation.parse(segmentation)
              let mask = try parsed.mask(
                imageWidth: annotation.imageWidth, imageHeight: annotation.imageHeight)
              guard mask.width == width, mask.height == height else {
                throw LabelingError.segmentation(
                  "\(mask.width)x\(mask.height), but the image decoded to \(width)x\(height) (EXIF orientation?)"
                )
              }
              groundTruthMasks[key] = mask
            } catch {
              summary.problems.append("\(path) annotation \(source): \(error.localizedDescription)")
              groundTruthMasks[key] = .some(nil)
            }
          }
          guard let gt = groundTruthMasks[key] ?? nil else { continue }
          let mask = try MaskRLE.decode(row["rle"], width: width, height: height)
          let iou = MaskIoU.iou(mask, gt, isCrowd: annotation.isCrowd)
          try db.execute(
            sql: "UPDATE masks SET gt_iou = ? WHERE image_id = ? AND prompt_index = ? AND mask_index = ?",
            arguments: [iou, row["image_id"] as Int, row["prompt_index"] as Int, row["mask_index"] as Int])
          summary.masks += 1
          let score: Double = row["score"]
          if best[key] == nil { order.append(key) }
          if best[key] == nil || score > best[key]!.score {
            best[key] = (
              score, iou, (row["category"] as String?) ?? LabelingExporter.defaultCategory,
              annotation.area ?? Double(MaskRLE.area(gt)), annotation.isCrowd
            )
          }
        }
        summary.withoutSegmentation = noSegmentation.count
        let counted = order.compactMap { best[$0] }.filter { !$0.crowd }
        summary.crowdPrompts = order.count - counted.count
        summary.prompts = counted.count
        func group(
          _ name: String, _ items: [(score: Double, iou: Double, category: String, area: Double, crowd: Bool)]
        )
          -> EvalSummary.Group?
        {
          guard !items.isEmpty else { return nil }
          return EvalSummary.Group(
            name: name, meanIoU: items.reduce(0) { $0 + $1.iou } / Double(items.count), count: items.count)
        }
        summary.overall = group("all", counted)
        summary.perCategory = Dictionary(grouping: counted, by: \.category).keys.sorted().compactMap { name in
          group(name, counted.filter { $0.category == name })
        }
        summary.byArea = [
          group("small", counted.filter { $0.area < 32 * 32 }),
          group("medium", counted.filter { $0.area >= 32 * 32 && $0.area < 96 * 96 }),
          group("large", counted.filter { $0.area >= 96 * 96 }),
        ].compactMap { $0 }
        return summary
      }
    }
  }
}
