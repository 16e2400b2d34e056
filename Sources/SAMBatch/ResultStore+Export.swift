import Foundation
import GRDB

/// What exports read from the store.
extension ResultStore {
  /// The done images, in job order.
  public func doneImages() throws -> [ExportedImage] {
    try wrap("listing the done images") {
      try queue.read { db in
        try Row.fetchAll(
          db,
          sql: "SELECT id, path, source_image_id, width, height FROM images WHERE status = 'done' ORDER BY id"
        ).map {
          ExportedImage(
            id: $0["id"], path: $0["path"], sourceImageId: $0["source_image_id"], width: $0["width"],
            height: $0["height"])
        }
      }
    }
  }

  /// The distinct (category id, category name) pairs of the accepted prompts, in order of first
  /// appearance.
  public func categoriesInUse() throws -> [(id: Int?, name: String?)] {
    try wrap("listing the categories") {
      try queue.read { db in
        try Row.fetchAll(
          db,
          sql: """
            SELECT category_id, category, MIN(image_id * 1000000 + prompt_index) AS first FROM prompts
            WHERE error IS NULL GROUP BY category_id, category ORDER BY first
            """
        ).map { (id: $0["category_id"] as Int?, name: $0["category"] as String?) }
      }
    }
  }

  /// Calls `body` with every stored mask in order (image, prompt, mask), one at a time: an export
  /// of a million masks holds one of them in memory, not all.
  public func forEachMask(_ body: (ExportedMask) throws -> Void) throws {
    try wrap("reading the masks") {
      try queue.read { db in
        let cursor = try Row.fetchCursor(
          db,
          sql: """
            SELECT m.*, p.source_id, p.category_id, p.category, p.detector_score, p.box_x0, p.box_y0, p.box_x1,
              p.box_y1, p.points, p.warning, i.path, i.width, i.height
            FROM masks m JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
            JOIN images i ON i.id = m.image_id ORDER BY m.image_id, m.prompt_index, m.mask_index
            """)
        while let row = try cursor.next() {
          let box: [Double]? = (row["box_x0"] as Double?).map {
            [$0, row["box_y0"] as Double? ?? 0, row["box_x1"] as Double? ?? 0, row["box_y1"] as Double? ?? 0]
          }
          let prompt = PromptRecord(
            promptIndex: row["prompt_index"], sourceId: row["source_id"], categoryId: row["category_id"],
            category: row["category"], detectorScore: row["detector_score"], box: box, points: row["points"],
            warning: row["warning"], error: nil)
          let mask = MaskRecord(
            promptIndex: row["prompt_index"], maskIndex: row["mask_index"], score: row["score"],
            stabilityScore: row["stability_score"], area: row["area"],
            bbox: [row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]], rle: row["rle"],
            point: (row["point_x"] as Double?).map { [$0, row["point_y"] as Double? ?? 0] },
            cropBox: (row["crop_x"] as Int?).map {
              [$0, row["crop_y"] as Int? ?? 0, row["crop_w"] as Int? ?? 0, row["crop_h"] as Int? ?? 0]
            })
          try body(
            ExportedMask(
              imageId: row["image_id"], imagePath: row["path"], width: row["width"], height: row["height"],
              prompt: prompt, mask: mask))
        }
      }
    }
  }
}
