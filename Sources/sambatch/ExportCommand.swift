import ArgumentParser
import Foundation
import SAMBatch

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract:
      "Exports a job's masks: COCO instances, one PNG per mask, an Ultralytics YOLO-seg dataset or overlay images."
  )

  enum Format: String, ExpressibleByArgument, CaseIterable {
    case coco, png, yolo, overlay
  }

  @Argument(help: "The job file (YAML).") var job: String
  @Option(
    help:
      "coco (a JSON file), png (a folder of masks plus masks.csv), yolo (a YOLO-seg dataset folder) or overlay (a folder of images with their masks drawn in)."
  ) var format: Format
  @Option(help: "The output: FILE.json for coco, a folder for png, yolo and overlay.") var out: String
  @Option(help: "Export this shard's database (I/N).") var shard: String?
  @Option(help: "Export this database instead of the job's.") var database: String?
  @Flag(help: "coco: segmentations as polygons (one per part); masks with holes keep their RLE.")
  var polygons = false
  @Option(help: "yolo: simplify polygons by Douglas-Peucker with this tolerance in pixels (default: exact).")
  var tolerance: Double = 0
  @Option(help: "yolo: how the dataset's images/ folder reaches the images: link (symbolic links) or copy.")
  var images: String = "link"
  @Option(help: "overlay: the longest side of the overlay images, in pixels.") var maxSide: Int = 1024
  @Option(help: "overlay: jpg or png.") var imageFormat: String = "jpg"

  func run() throws {
    try reportingErrors("export") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let db = database.map { URL(fileURLWithPath: $0) } ?? shard.database(for: jobFile.database)
      let output = URL(fileURLWithPath: out)
      switch format {
      case .coco:
        let (n, keptAsRLE) = try Exporter.coco(from: db, to: output, polygons: polygons)
        print("Wrote \(output.path) (\(count(n, "annotation")))")
        if keptAsRLE > 0 {
          note(
            "warning: \(count(keptAsRLE, "mask")) with holes, which COCO polygons cannot hold, keep their RLE"
          )
        }
      case .png:
        let n = try Exporter.png(from: db, to: output)
        print("Wrote \(count(n, "PNG mask")) and masks.csv under \(output.path)")
      case .yolo:
        guard tolerance >= 0, tolerance.isFinite else {
          throw ValidationError("--tolerance must be a number of pixels >= 0, not \(tolerance)")
        }
        guard let reference = YOLOSegDatasetWriter.ImageReference(rawValue: images) else {
          throw ValidationError("--images must be link or copy, not '\(images)'")
        }
        let summary = try LabelingExporter.yolo(
          from: db, imagesFolder: jobFile.images, to: output, reference: reference, tolerance: tolerance)
        print(
          "Wrote \(count(summary.images, "image")) and \(count(summary.polygons, "polygon")) to \(output.path) "
            + "(yolo train data=\(output.path)/data.yaml)")
        if summary.droppedParts > 0 {
          note(
            "note: \(count(summary.droppedParts, "small part")) left out of their mask's polygon "
              + "(joining them would have covered more background than they hold)")
        }
      case .overlay:
        guard let imageFormat = LabelingExporter.OverlayFormat(rawValue: imageFormat) else {
          throw ValidationError("--image-format must be jpg or png, not '\(imageFormat)'")
        }
        guard maxSide > 0 else { throw ValidationError("--max-side must be a positive number of pixels") }
        let names = try LabelingExporter.overlays(
          from: db, imagesFolder: jobFile.images, exif: jobFile.exif, to: output, maxSide: maxSide,
          format: imageFormat)
        print("Wrote \(count(names.count, "overlay image")) under \(output.path)")
      }
    }
  }
}
