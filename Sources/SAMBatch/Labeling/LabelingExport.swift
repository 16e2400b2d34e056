import Foundation
import MobileSAM
import SAMImage

/// The labeling exports of a store: a YOLO-seg dataset, overlay images and the review report.
public enum LabelingExporter {
  // MARK: - Reading the store

  struct StoredImage {
    var id: Int
    var path: String
    var status: String
    var error: String?
    var width: Int
    var height: Int
    var timings: [String: Double]
  }

  struct StoredMask {
    var imageId: Int
    var promptIndex: Int
    var maskIndex: Int
    var categoryId: Int?
    var category: String
    var score: Double
    var stability: Double?
    var gtIoU: Double?
    var rle: String
    var box: [Double]?
  }

  struct Snapshot {
    var images: [StoredImage]
    var masksByImage: [Int: [StoredMask]]
    var failures: [ReviewData.Failure]
  }

  static func snapshot(_ database: URL) throws -> Snapshot {
    let store = try ResultStore(url: database, access: .readOnly)
    defer { store.close() }
    return try store.labelingSnapshot()
  }

  // MARK: - YOLO-seg

  /// Class indices for the categories of the stored masks: categories with a manifest id first,
  /// in id order, then the others by name (YOLO classes are 0...n-1, so COCO's ids with gaps are
  /// renumbered; data.yaml says which name each index has).
  static func classIndices(_ masks: [StoredMask]) -> [String: Int] {
    var ids: [String: Int] = [:]
    for m in masks {
      if let id = m.categoryId { ids[m.category] = min(ids[m.category] ?? id, id) }
    }
    let names = Set(masks.map(\.category))
    let ordered = names.sorted { a, b in
      switch (ids[a], ids[b]) {
      case (let x?, let y?): return x != y ? x < y : a < b
      case (.some, nil): return true
      case (nil, .some): return false
      case (nil, nil): return a < b
      }
    }
    return Dictionary(uniqueKeysWithValues: ordered.enumerated().map { ($1, $0) })
  }

  /// Writes the done images of the store as a YOLO-seg dataset (see `YOLOSegDatasetWriter`); an
  /// image without masks gets an empty label file. `imagesFolder` is the job's images folder.
  public static func yolo(
    from database: URL, imagesFolder: URL, to directory: URL, reference: YOLOSegDatasetWriter.ImageReference,
    tolerance: Double
  ) throws -> YOLOSegDatasetWriter.Summary {
    let snapshot = try snapshot(database)
    let classes = classIndices(snapshot.masksByImage.values.flatMap { $0 })
    let writer = try YOLOSegDatasetWriter(directory: directory, reference: reference, tolerance: tolerance)
    for image in snapshot.images where image.status == "done" {
      var masks: [(classIndex: Int, mask: BinaryMask)] = []
      for stored in snapshot.masksByImage[image.id] ?? [] {
        let mask = try decode(stored, image)
        masks.append((classes[stored.category] ?? 0, mask))
      }
      // Images outside the images folder get a flat name of their own in the dataset.
      let outside = image.path.hasPrefix("/") || image.path.split(separator: "/").contains("..")
      let relative = outside ? "\(image.id)-\((image.path as NSString).lastPathComponent)" : image.path
      try writer.add(
        relativePath: relative, source: URL(fileURLWithPath: ImagePath.resolve(image.path, in: imagesFolder)),
        width: image.width,
        height: image.height, masks: masks)
    }
    try writer.finish(names: Dictionary(uniqueKeysWithValues: classes.map { ($1, $0) }))
    return writer.summary
  }

  private static func decode(_ stored: StoredMask, _ image: StoredImage) throws -> BinaryMask {
    do {
      return try MaskRLE.decode(stored.rle, width: image.width, height: image.height)
    } catch {
      throw SAMBatchError.export(
        "\(image.path) prompt \(stored.promptIndex) mask \(stored.maskIndex): stored RLE is damaged (\(error.localizedDescription))"
      )
    }
  }

  // MARK: - Overlays and the review report

  public enum OverlayFormat: String, Sendable, CaseIterable {
    case jpg, png
  }

  /// One overlay per done image (`<image id>-<stem>.<format>` in `directory`); returns the file
  /// name of each image id's overlay.
  @discardableResult
  public static func overlays(
    from database: URL, imagesFolder: URL, exif: Bool, to directory: URL, maxSide: Int, format: OverlayFormat
  ) throws -> [Int: String] {
    try overlays(
      snapshot(database), imagesFolder: imagesFolder, exif: exif, to: directory, maxSide: maxSide,
      format: format)
  }

  static func overlays(
    _ snapshot: Snapshot, imagesFolder: URL, exif: Bool, to directory: URL, maxSide: Int,
    format: OverlayFormat
  ) throws -> [Int: String] {
    guard maxSide > 0 else { throw SAMBatchError.export("--max-side must be a positive number of pixels") }
    do {
      try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    } catch {
      throw SAMBatchError.export("cannot create \(directory.path): \(readableCause(error))")
    }
    var names: [Int: String] = [:]
    for image in snapshot.images where image.status == "done" {
      let source = URL(fileURLWithPath: ImagePath.resolve(image.path, in: imagesFolder))
      let pixels: RGBImage
      do {
        pixels = try ImageDecoder.decode(contentsOf: source, applyEXIFOrientation: exif, maxPixels: .max)
      } catch {
        throw SAMBatchError.export(
          "cannot read \(source.path) for its overlay: \(error.localizedDescription)")
      }
      guard pixels.width == image.width, pixels.height == image.height else {
        throw SAMBatchError.export(
          "\(source.path) is \(pixels.width)x\(pixels.height) now but was \(image.width)x\(image.height) when it ran"
        )
      }
      let masks = try (snapshot.masksByImage[image.id] ?? []).map { stored in
        OverlayMask(mask: try decode(stored, image), category: stored.category, box: stored.box)
      }
      let overlay = try OverlayRenderer.render(image: pixels, masks: masks, maxSide: maxSide)
      let stem = ((image.path as NSString).lastPathComponent as NSString).deletingPathExtension
      let name = "\(image.id)-\(stem).\(format.rawValue)"
      do {
        let data = format == .png ? try encodePNG(overlay) : try encodeJPEG(overlay, quality: 90)
        try data.write(to: directory.appendingPathComponent(name))
      } catch {
        throw SAMBatchError.export(
          "cannot write \(directory.appendingPathComponent(name).path): \(error.localizedDescription)")
      }
      names[image.id] = name
    }
    return names
  }

  /// The review report: `index.html` and `overlays/` in `directory`. Returns the page.
  @discardableResult
  public static func review(
    from database: URL, title: String, imagesFolder: URL, exif: Bool, to directory: URL, maxSide: Int = 1024
  ) throws -> URL {
    let snapshot = try snapshot(database)
    let names = try overlays(
      snapshot, imagesFolder: imagesFolder, exif: exif, to: directory.appendingPathComponent("overlays"),
      maxSide: maxSide, format: .jpg)
    let done = snapshot.images.filter { $0.status == "done" }
    let images = done.map { image in
      ReviewData.Image(
        path: image.path, overlay: "overlays/" + (names[image.id] ?? ""),
        masks: (snapshot.masksByImage[image.id] ?? []).map {
          ReviewData.Mask(category: $0.category, score: $0.score, stability: $0.stability, gtIoU: $0.gtIoU)
        })
    }
    // Waiting for the model while other images used it is shown beside the image's own work.
    let stages = ["read", "embed", "predict", "wait"].map { stage in
      (stage: stage, milliseconds: done.reduce(0) { $0 + ($1.timings[stage] ?? 0) })
    }
    let data = ReviewData(
      title: title, images: images, failures: snapshot.failures, stageMilliseconds: stages)
    do {
      return try ReviewReport.write(data, to: directory)
    } catch {
      throw SAMBatchError.export(error.localizedDescription)
    }
  }
}
