import Foundation
import SAMImage

/// Writes a store's masks out: a COCO instances file with RLE segmentations, or PNG files. Both
/// read the store one mask at a time.
public enum Exporter {
  /// The category of objects the manifests gave none: COCO tools need every annotation to have
  /// a declared category.
  public static let defaultCategory = "object"

  /// A COCO instances file: `images` (each image's source COCO id; images without one are
  /// numbered after the largest), `categories` (the manifests' ids; labels without an id, and
  /// "object" for objects without any category, get new ids after the largest one, in order of
  /// first appearance), and one annotation per stored mask with `segmentation` {size, counts}
  /// (COCO compressed RLE), `area`, `bbox`, `score` (predicted IoU), `iscrowd` 0, and our
  /// `source_id` (the manifest annotation's id: a number when it is one), `mask_index`,
  /// `stability_score` (null where undefined) and `detector_score`. The file is written as the
  /// masks are read (its memory does not grow with their number), to a temporary file renamed
  /// into place at the end. Returns the number of annotations.
  @discardableResult
  public static func coco(from database: URL, to output: URL) throws -> Int {
    try coco(from: database, to: output, polygons: false).annotations
  }

  /// `coco(from:to:)`; with `polygons`, each mask without a hole has `segmentation` as COCO
  /// polygons (one per part, along the pixel edges: pycocotools fills them back to exactly the
  /// mask) and a mask with a hole keeps its RLE (`keptAsRLE` counts them).
  public static func coco(from database: URL, to output: URL, polygons: Bool) throws -> (
    annotations: Int, keptAsRLE: Int
  ) {
    var keptAsRLE = 0
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: output.path, isDirectory: &isFolder), isFolder.boolValue {
      throw SAMBatchError.cannotWrite(
        path: output.path, cause: "it is a folder: --format coco writes one JSON file (give FILE.json)")
    }
    let store = try ResultStore(url: database, access: .readOnly)
    defer { store.close() }
    let images = try store.doneImages()
    let imageIds = cocoImageIds(images)
    let categories = try CategoryTable(store.categoriesInUse())

    let partial = output.deletingLastPathComponent().appendingPathComponent(
      ".\(output.lastPathComponent).partial")
    let writer = try StreamWriter(partial, final: output)
    var annotations = 0
    do {
      let info = exportJSON([
        "description": "sambatch \(SAMBatchVersion.current) export of \(database.lastPathComponent)"
      ])
      try writer.write("{\"info\": \(info),\n\"images\": [")
      for (i, image) in images.enumerated() {
        let entry: [String: Any] = [
          "id": imageIds[image.id] ?? -1, "file_name": image.path, "width": image.width,
          "height": image.height,
        ]
        try writer.write((i == 0 ? "\n" : ",\n") + exportJSON(entry))
      }
      try writer.write("],\n\"categories\": [")
      for (i, category) in categories.declared.enumerated() {
        try writer.write(
          (i == 0 ? "\n" : ",\n") + exportJSON(["id": category.id, "name": category.name]))
      }
      try writer.write("],\n\"annotations\": [")
      try store.forEachMask { row in
        let m = row.mask
        let p = row.prompt
        var a: [String: Any] = [
          "id": annotations + 1, "image_id": imageIds[row.imageId] ?? -1,
          "segmentation": ["size": [row.height, row.width], "counts": m.rle],
          "area": m.area, "bbox": m.bbox, "score": m.score, "iscrowd": 0, "mask_index": m.maskIndex,
          "prompt_index": m.promptIndex, "stability_score": m.stabilityScore ?? NSNull(),
          "category_id": categories.id(p.categoryId, p.category),
        ]
        if let source = p.sourceId { a["source_id"] = Int(source) ?? source }
        if let score = p.detectorScore { a["detector_score"] = score }
        // An everything mask's point and crop, named as the reference's generator names them.
        if let point = m.point { a["point_coords"] = [point] }
        if let crop = m.cropBox { a["crop_box"] = crop }
        if polygons {
          let mask = try MaskRLE.decode(m.rle, width: row.width, height: row.height)
          if let parts = COCOPolygons.polygons(of: mask) {
            a["segmentation"] = parts.map { $0.map { Int($0) } }  // pixel corners: integers
          } else if m.area > 0 {
            keptAsRLE += 1
          }
        }
        try writer.write((annotations == 0 ? "\n" : ",\n") + exportJSON(a))
        annotations += 1
      }
      try writer.write("]\n}\n")
      try writer.finish()
    } catch {
      writer.abandon()
      throw error
    }
    return (annotations, keptAsRLE)
  }

  /// COCO image ids: the source id where the manifest gave one (and no earlier image took it),
  /// else numbers after the largest source id, in job order.
  static func cocoImageIds(_ images: [ExportedImage]) -> [Int: Int] {
    var next = (images.compactMap(\.sourceImageId).max() ?? 0) + 1
    var used = Set<Int>()
    var ids: [Int: Int] = [:]
    for image in images {
      if let source = image.sourceImageId, used.insert(source).inserted {
        ids[image.id] = source
      }
    }
    for image in images where ids[image.id] == nil {
      ids[image.id] = next
      used.insert(next)
      next += 1
    }
    return ids
  }

  /// One 8-bit PNG (0 / 255) per stored mask, `<image id>-<image stem>/prompt<P>-mask<M>.png`
  /// under `folder` (one per prompt with `keep: best`), and `masks.csv` indexing them. Returns
  /// the number of PNG files written.
  @discardableResult
  public static func png(from database: URL, to folder: URL) throws -> Int {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), !isFolder.boolValue {
      throw SAMBatchError.cannotWrite(
        path: folder.path, cause: "it is a file: --format png writes a folder of PNG files and masks.csv")
    }
    let store = try ResultStore(url: database, access: .readOnly)
    defer { store.close() }
    do {
      try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
      throw SAMBatchError.cannotWrite(path: folder.path, cause: fileWriteCause(folder, error))
    }
    let csvURL = folder.appendingPathComponent("masks.csv")
    let csv = try StreamWriter(csvURL, final: nil)
    var written = 0
    do {
      try csv.write("file,image,source_id,category,mask_index,score,area\n")
      try store.forEachMask { row in
        let stem = ((row.imagePath as NSString).lastPathComponent as NSString).deletingPathExtension
        let relative = "\(row.imageId)-\(stem)/prompt\(row.mask.promptIndex)-mask\(row.mask.maskIndex).png"
        let url = folder.appendingPathComponent(relative)
        let mask = try MaskRLE.decode(row.mask.rle, width: row.width, height: row.height)
        let png = try encodeGrayPNG(
          pixels: mask.pixels.map { $0 == 0 ? UInt8(0) : 255 }, width: mask.width, height: mask.height)
        do {
          try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
          try png.write(to: url)
        } catch {
          throw SAMBatchError.cannotWrite(path: url.path, cause: fileWriteCause(url, error))
        }
        written += 1
        let category = row.prompt.category ?? row.prompt.categoryId.map(String.init) ?? ""
        let fields: [String] = [
          relative, row.imagePath, row.prompt.sourceId ?? "", category, String(row.mask.maskIndex),
          String(row.mask.score), String(row.mask.area),
        ]
        try csv.write(fields.map(csvField).joined(separator: ",") + "\n")
      }
      try csv.finish()
    } catch {
      csv.abandon()
      throw error
    }
    return written
  }

  /// RFC 4180 quoting. `isNewline`, not `== "\n"`: a CRLF or a lone CR in a file name (an everything
  /// job lists whatever the folder holds) is one Character that never equals "\n".
  static func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline })
      ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
  }
}

/// The export's categories: the manifests' ids keep their names; a label without an id shares
/// the id of a category of that name, or gets a new one after the largest; objects without any
/// category are `Exporter.defaultCategory`.
struct CategoryTable {
  private(set) var declared: [(id: Int, name: String)] = []
  private var idsByName: [String: Int] = [:]
  private var names: [Int: String] = [:]

  init(_ uses: [(id: Int?, name: String?)]) {
    var next = (uses.compactMap(\.id).max() ?? 0) + 1
    for use in uses {
      if let id = use.id, names[id] == nil {
        let name = use.name ?? String(id)
        names[id] = name
        if idsByName[name] == nil { idsByName[name] = id }
      }
    }
    for use in uses where use.id == nil {
      let label = use.name ?? Exporter.defaultCategory
      if idsByName[label] == nil {
        idsByName[label] = next
        names[next] = label
        next += 1
      }
    }
    declared = names.keys.sorted().map { ($0, names[$0] ?? "") }
  }

  func id(_ categoryId: Int?, _ label: String?) -> Int {
    if let categoryId { return categoryId }
    return idsByName[label ?? Exporter.defaultCategory] ?? -1
  }
}

/// Appends text to a file through a buffer; `finish` moves it to `final` (when given), so a
/// failed export leaves no half-written file behind.
final class StreamWriter {
  private let url: URL
  private let final: URL?
  private let handle: FileHandle
  private var buffer = Data()

  init(_ url: URL, final: URL?) throws {
    self.url = url
    self.final = final
    guard FileManager.default.createFile(atPath: url.path, contents: nil),
      let handle = FileHandle(forWritingAtPath: url.path)
    else {
      let target = final ?? url
      let cause = String(cString: strerror(errno))
      throw SAMBatchError.cannotWrite(path: target.path, cause: fileWriteCause(target, PlainError(cause)))
    }
    self.handle = handle
  }

  func write(_ text: String) throws {
    buffer.append(contentsOf: text.utf8)
    if buffer.count >= 1 << 20 { try flush() }
  }

  private func flush() throws {
    do { try handle.write(contentsOf: buffer) } catch {
      throw SAMBatchError.cannotWrite(path: (final ?? url).path, cause: readableCause(error))
    }
    buffer.removeAll(keepingCapacity: true)
  }

  func finish() throws {
    try flush()
    try? handle.close()
    guard let final else { return }
    do {
      if FileManager.default.fileExists(atPath: final.path) { try FileManager.default.removeItem(at: final) }
      try FileManager.default.moveItem(at: url, to: final)
    } catch {
      throw SAMBatchError.cannotWrite(path: final.path, cause: fileWriteCause(final, error))
    }
  }

  func abandon() {
    try? handle.close()
    if final != nil { try? FileManager.default.removeItem(at: url) }
  }
}

/// One JSON value of an export, as the module's one writer writes it (keys sorted, floats as
/// Python's repr, so pycocotools reads back what we wrote).
func exportJSON(_ value: Any) -> String {
  JSONWriter.write(JSONValue(native: value), style: .python, sortedKeys: true)
}
