import Foundation
import GRDB

/// The store's reads and writes for the labeling exports (overlays, YOLO-seg, review) and
/// `sambatch eval`.
extension ResultStore {
  /// Images, masks (with their prompt's category and box) and failures, for the exports.
  func labelingSnapshot() throws -> LabelingExporter.Snapshot {
    try wrap("reading the store for an export") {
      try queue.read { db in
        let images = try Row.fetchAll(db, sql: "SELECT * FROM images ORDER BY id").map { row in
          LabelingExporter.StoredImage(
            id: row["id"], path: row["path"], status: row["status"], error: row["error"],
            width: (row["width"] as Int?) ?? 0, height: (row["height"] as Int?) ?? 0,
            timings: [
              "read": (row["read_ms"] as Double?) ?? 0, "embed": (row["embed_ms"] as Double?) ?? 0,
              "predict": (row["predict_ms"] as Double?) ?? 0, "wait": (row["wait_ms"] as Double?) ?? 0,
            ])
        }
        let hasGT = try db.columns(in: "masks").contains { $0.name == "gt_iou" }
        let masks = try Row.fetchAll(
          db,
          sql: """
            SELECT m.image_id, m.prompt_index, m.mask_index, m.score, m.stability_score, m.rle,
              \(hasGT ? "m.gt_iou" : "NULL") AS gt_iou, p.category_id, p.category,
              p.box_x0, p.box_y0, p.box_x1, p.box_y1
            FROM masks m JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
            ORDER BY m.image_id, m.prompt_index, m.mask_index
            """
        ).map { row -> LabelingExporter.StoredMask in
          let categoryId: Int? = row["category_id"]
          let box: [Double?] = [row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]]
          return LabelingExporter.StoredMask(
            imageId: row["image_id"], promptIndex: row["prompt_index"], maskIndex: row["mask_index"],
            categoryId: categoryId,
            category: (row["category"] as String?) ?? categoryId.map(String.init)
              ?? Exporter.defaultCategory,
            score: row["score"], stability: row["stability_score"], gtIoU: row["gt_iou"], rle: row["rle"],
            box: box.contains(nil) ? nil : box.compactMap { $0 })
        }
        var failures: [ReviewData.Failure] = []
        for image in images where image.status == "failed" {
          failures.append(.init(kind: "image", place: image.path, reason: image.error ?? "failed"))
        }
        for row in try Row.fetchAll(
          db,
          sql: """
            SELECT i.path, p.prompt_index, p.source_id, p.error FROM prompts p JOIN images i ON i.id = p.image_id
            WHERE p.error IS NOT NULL ORDER BY p.image_id, p.prompt_index
            """)
        {
          let source = (row["source_id"] as String?).map { " (\($0))" } ?? ""
          failures.append(
            .init(
              kind: "prompt", place: "\(row["path"] as String) prompt \(row["prompt_index"] as Int)\(source)",
              reason: row["error"]))
        }
        for row in try Row.fetchAll(db, sql: "SELECT file, line, message FROM manifest_problems ORDER BY id")
        {
          let line = (row["line"] as Int?).map { ":\($0)" } ?? ""
          failures.append(
            .init(kind: "manifest", place: "\(row["file"] as String)\(line)", reason: row["message"]))
        }
        return LabelingExporter.Snapshot(
          images: images, masksByImage: Dictionary(grouping: masks, by: \.imageId), failures: failures)
      }
    }
  }

  /// The stored masks with what `sambatch eval` needs to match them with ground truth.
  func masksForEvaluation() throws -> [GroundTruthEvaluator.StoredMask] {
    try wrap("reading the masks for eval") {
      try queue.read { db in
        try Row.fetchAll(
          db,
          sql: """
            SELECT m.image_id, m.prompt_index, m.mask_index, m.score, m.rle, p.source_id,
              COALESCE(p.category, CAST(p.category_id AS TEXT)) AS category, i.path, i.width, i.height
            FROM masks m JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
            JOIN images i ON i.id = m.image_id ORDER BY m.image_id, m.prompt_index, m.mask_index
            """
        ).map { row in
          GroundTruthEvaluator.StoredMask(
            imageId: row["image_id"], promptIndex: row["prompt_index"], maskIndex: row["mask_index"],
            score: row["score"], rle: row["rle"], sourceId: row["source_id"],
            category: (row["category"] as String?) ?? Exporter.defaultCategory, path: row["path"],
            width: row["width"], height: row["height"])
        }
      }
    }
  }

  /// Replaces every mask's `gt_iou` (NULL where `values` has none), in one transaction.
  func storeGroundTruthIoU(_ values: [(imageId: Int, promptIndex: Int, maskIndex: Int, iou: Double)]) throws {
    try wrap("storing gt_iou") {
      try queue.write { db in
        try db.execute(sql: "UPDATE masks SET gt_iou = NULL")
        let statement = try db.makeStatement(
          sql: "UPDATE masks SET gt_iou = ? WHERE image_id = ? AND prompt_index = ? AND mask_index = ?")
        for v in values {
          try statement.execute(arguments: [v.iou, v.imageId, v.promptIndex, v.maskIndex])
        }
      }
    }
  }
}
