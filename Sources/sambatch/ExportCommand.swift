import ArgumentParser
import Foundation
import SAMBatch

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Exports a job's masks: COCO instances, one PNG per mask, a YOLO-seg dataset or overlay images."
  )

  enum Format: String, ExpressibleByArgument, CaseIterable {
    case coco, png, yolo, overlay
  }

  @Argument(help: "The job file (YAML).") var job: String
  @Option(
    help:
      "coco (a JSON file), png (a folder of masks plus masks.csv), yolo (an Ultralytics YOLO-seg dataset folder) or overlay (a folder of images with their masks drawn in)."
  ) var format: Format
  @Option(help: "The output: FILE.json for coco, a folder for png, yolo and overlay.") var out: String
  @Flag(help: "coco: segmentations as polygons (one per part); masks with holes keep their RLE.")
  var polygons = false
  @Option(help: "yolo: simplify polygons by Douglas-Peucker with this tolerance in pixels (default: exact).")
  var tolerance: Double = 0
  @Option(help: "yolo: how data.yaml's images folder reaches the images: link (symbolic links) or copy.")
  var images: String = "link"
  @Option(help: "overlay: the longest side of the overlay images, in pixels.") var maxSide: Int = 1024
  @Option(help: "overlay: jpg or png.") var imageFormat: String = "jpg"
  @Option(help: "Export this shard's database (I/N).") var shard: String?
  @Option(help: "Export this database instead of the job's.") var database: String?

  func run() throws {
    do {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let db =
        database.map { URL(fileURLWithPath: $0) } ?? JobRunner.shardDatabase(jobFile.database, shard: shard)
      let output = URL(fileURLWithPath: out)
      switch format {
      case .coco:
        let (data, keptAsRLE) = try Exporter.coco(from: db, polygons: polygons)
        do { try data.write(to: output) } catch {
          throw SAMBatchError.export("cannot write \(output.path): \(error.localizedDescription)")
        }
        print("Wrote \(output.path)")
        if keptAsRLE > 0 {
          note("warning: \(keptAsRLE) masks have holes, which COCO polygons cannot hold: they keep their RLE")
        }
      case .yolo:
        guard tolerance >= 0, tolerance.isFinite else {
          throw SAMBatchError.export("--tolerance must be a number of pixels >= 0")
        }
        guard let reference = YOLOSegDatasetWriter.ImageReference(rawValue: images) else {
          throw SAMBatchError.export("--images must be link or copy, not '\(images)'")
        }
        let summary: YOLOSegDatasetWriter.Summary
        do {
          summary = try LabelingExporter.yolo(
            from: db, imagesFolder: jobFile.images, to: output, reference: reference, tolerance: tolerance)
        } catch let error as LabelingError {
          throw SAMBatchError.export(error.localizedDescription)
        }
        print(
          "Wrote \(summary.images) images, \(summary.polygons) polygons to \(output.path) "
            + "(yolo train data=\(output.path)/data.yaml)")
        if summary.droppedParts > 0 {
          note(
            "note: \(summary.droppedParts) small parts were left out of their mask's polygon "
              + "(joining them would have covered more background than they hold)")
        }
      case .overlay:
        guard let imageFormat = LabelingExporter.OverlayFormat(rawValue: imageFormat) else {
          throw SAMBatchError.export("--image-format must be jpg or png, not '\(imageFormat)'")
        }
        let names = try LabelingExporter.overlays(
          from: db, imagesFolder: jobFile.images, exif: jobFile.exif, to: output, maxSide: maxSide,
          format: imageFormat)
        print("Wrote \(names.count) overlay images under \(output.path)")
      case .png:
        let n = try Exporter.png(from: db, to: output)
        print("Wrote \(n) PNG masks and masks.csv under \(output.path)")
      }
    } catch let error as SAMBatchError {
      note("error: \(error.localizedDescription)")
      throw ExitCode(1)
    }
  }
}
