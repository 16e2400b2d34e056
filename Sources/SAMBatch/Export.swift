import Foundation
import GRDB
import MobileSAM
import SAMImage

/// Writes a store's masks out: a COCO instances file with RLE segmentations, or PNG files.
public enum Exporter {
  /// A COCO instances file: `images` (the source COCO ids when every image has one, else the
  /// store's ids + 1), `categories` (the manifests' ids; labels without an id get new ids after
  /// the largest one, in order of first appearance), and one annotation per stored mask with
  /// `segmentation` {size, counts} (COCO compressed RLE), `area`, `bbox`, `score` (predicted IoU),
  /// `iscrowd` 0, and our `source_id` (the manifest annotation's id: a number when it is one),
  /// `mask_index`, `stability_score` (null where undefined) and `detector_score`.
  public static func coco(from database: URL) throws -> Data {
    try coco(from: database, polygons: false).data
  }

  /// `coco(from:)`; with `polygons`, each mask without a hole has `segmentation` as COCO polygons
  /// (one per part, along the pixel edges: pycocotools fills them back to exactly the mask) and a
  /// mask with a hole keeps its RLE (`keptAsRLE` counts them).
  public static func coco(from database: URL, polygons: Bool) throws -> (data: Data, keptAsRLE: Int) {
    var keptAsRLE = 0
    let store = try ResultStore(url: database, create: false)
    defer { store.close() }
    return try store.wrap("exporting COCO") {
      try store.queue.read { db in
        let images = try Row.fetchAll(
          db,
          sql: "SELECT id, path, source_image_id, width, height FROM images WHERE status = 'done' ORDER BY id"
        )
        let useSourceIds = !images.isEmpty && images.allSatisfy { ($0["source_image_id"] as Int?) != nil }
        var imageIds: [Int: Int] = [:]
        var imageList: [[String: Any]] = []
        for row in images {
          let id: Int = row["id"]
          let cocoId = useSourceIds ? row["source_image_id"] as Int : id + 1
          imageIds[id] = cocoId
          imageList.append([
            "id": cocoId, "file_name": row["path"] as String, "width": row["width"] as Int,
            "height": row["height"] as Int,
          ])
        }
        // Categories: ids from the manifests; named-only labels get fresh ids.
        let categoryRows = try Row.fetchAll(
          db,
          sql: """
            SELECT category_id, category, MIN(image_id * 1000000 + prompt_index) AS first FROM prompts
            WHERE error IS NULL GROUP BY category_id, category ORDER BY first
            """)
        var names: [Int: String] = [:]
        var labelIds: [String: Int] = [:]
        var nextId = (categoryRows.compactMap { $0["category_id"] as Int? }.max() ?? 0) + 1
        for row in categoryRows {
          if let id = row["category_id"] as Int? {
            if names[id] == nil { names[id] = (row["category"] as String?) ?? String(id) }
          } else if let label = row["category"] as String?, labelIds[label] == nil {
            // A label that names a category with an id shares it.
            if let id = names.first(where: { $0.value == label })?.key {
              labelIds[label] = id
              continue
            }
            labelIds[label] = nextId
            names[nextId] = label
            nextId += 1
          }
        }
        let categories: [[String: Any]] = names.keys.sorted().map { ["id": $0, "name": names[$0]!] }

        var annotations: [[String: Any]] = []
        let masks = try Row.fetchAll(
          db,
          sql: """
            SELECT m.*, p.source_id, p.category_id, p.category, p.detector_score, i.width, i.height
            FROM masks m JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
            JOIN images i ON i.id = m.image_id ORDER BY m.image_id, m.prompt_index, m.mask_index
            """)
        for row in masks {
          var a: [String: Any] = [
            "id": annotations.count + 1, "image_id": imageIds[row["image_id"] as Int] ?? -1,
            "segmentation": [
              "size": [row["height"] as Int, row["width"] as Int], "counts": row["rle"] as String,
            ],
            "area": row["area"] as Int,
            "bbox": [
              row["bbox_x"] as Double, row["bbox_y"] as Double, row["bbox_w"] as Double,
              row["bbox_h"] as Double,
            ],
            "score": row["score"] as Double, "iscrowd": 0, "mask_index": row["mask_index"] as Int,
            "prompt_index": row["prompt_index"] as Int,
            "stability_score": (row["stability_score"] as Double?) ?? NSNull(),
          ]
          if polygons {
            let mask = try MaskRLE.decode(row["rle"], width: row["width"], height: row["height"])
            if let parts = COCOPolygons.polygons(of: mask) {
              a["segmentation"] = parts.map { $0.map { Int($0) } }  // pixel corners: integers
            } else if MaskRLE.area(mask) > 0 {
              keptAsRLE += 1
            }
          }
          if let categoryId = row["category_id"] as Int? {
            a["category_id"] = categoryId
          } else if let label = row["category"] as String?, let id = labelIds[label] {
            a["category_id"] = id
          }
          if let source = row["source_id"] as String? { a["source_id"] = Int(source) ?? source }
          if let score = row["detector_score"] as Double? { a["detector_score"] = score }
          annotations.append(a)
        }
        let document: [String: Any] = [
          "info": [
            "description": "sambatch \(SAMBatchVersion.current) export of \(database.lastPathComponent)"
          ],
          "images": imageList, "annotations": annotations, "categories": categories,
        ]
        return (Data(JSONWriter.write(document).utf8), keptAsRLE)
      }
    }
  }

  /// One 8-bit PNG (0 / 255) per stored mask, `<image id>-<image stem>/prompt<P>-mask<M>.png`
  /// under `folder` (one per prompt with `keep: best`), and `masks.csv` indexing them. Returns
  /// the number of PNG files written.
  @discardableResult
  public static func png(from database: URL, to folder: URL) throws -> Int {
    let store = try ResultStore(url: database, create: false)
    defer { store.close() }
    let rows = try store.wrap("reading masks") {
      try store.queue.read { db in
        try Row.fetchAll(db, sql: "SELECT * FROM results ORDER BY image_id, prompt_index, mask_index")
      }
    }
    var csv = "file,image,source_id,category,mask_index,score,area\n"
    var written = 0
    for row in rows {
      let path: String = row["image"]
      let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
      let relative =
        "\(row["image_id"] as Int)-\(stem)/prompt\(row["prompt_index"] as Int)-mask\(row["mask_index"] as Int).png"
      let url = folder.appendingPathComponent(relative)
      do {
        let mask = try MaskRLE.decode(row["rle"], width: row["width"], height: row["height"])
        let pixels = mask.pixels.map { $0 == 0 ? UInt8(0) : 255 }
        let png = try encodeGrayPNG(pixels: pixels, width: mask.width, height: mask.height)
        try FileManager.default.createDirectory(
          at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try png.write(to: url)
      } catch {
        throw SAMBatchError.export("cannot write \(url.path): \(error.localizedDescription)")
      }
      written += 1
      let fields: [String] = [
        relative, path, (row["source_id"] as String?) ?? "", (row["category"] as String?) ?? "",
        String(row["mask_index"] as Int), String(row["score"] as Double), String(row["area"] as Int),
      ]
      csv += fields.map(csvField).joined(separator: ",") + "\n"
    }
    do {
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
      try Data(csv.utf8).write(to: folder.appendingPathComponent("masks.csv"))
    } catch {
      throw SAMBatchError.export("cannot write \(folder.appendingPathComponent("masks.csv").path): \(error)")
    }
    return written
  }

  static func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
      ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
  }
}

/// A small JSON writer: keys sorted, doubles in Swift's shortest round-trip form (Foundation's
/// JSONSerialization on Linux prints doubles that do not read back to the same value).
enum JSONWriter {
  static func write(_ value: Any) -> String {
    var out = ""
    append(value, to: &out)
    return out
  }

  private static func append(_ value: Any, to out: inout String) {
    switch value {
    case let s as String: out += jsonString(s)
    case let b as Bool: out += b ? "true" : "false"
    case let i as Int: out += String(i)
    case let d as Double:
      out += d.isFinite ? (d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) + ".0" : "\(d)") : "null"
    case let list as [Any]:
      out += "["
      for (i, item) in list.enumerated() {
        if i > 0 { out += ", " }
        append(item, to: &out)
      }
      out += "]"
    case let object as [String: Any]:
      out += "{"
      for (i, key) in object.keys.sorted().enumerated() {
        if i > 0 { out += ", " }
        out += jsonString(key)
        out += ": "
        append(object[key]!, to: &out)
      }
      out += "}"
    default: out += "null"
    }
  }
}
