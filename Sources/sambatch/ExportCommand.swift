import ArgumentParser
import Foundation
import SAMBatch

struct ExportCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "export",
    abstract: "Exports a job's masks: a COCO instances file with RLE segmentations, or one PNG per mask.")

  enum Format: String, ExpressibleByArgument, CaseIterable {
    case coco, png
  }

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "coco (a JSON file) or png (a folder of masks plus masks.csv).") var format: Format
  @Option(help: "The output: FILE.json for coco, a folder for png.") var out: String
  @Option(help: "Export this shard's database (I/N).") var shard: String?
  @Option(help: "Export this database instead of the job's.") var database: String?

  func run() throws {
    try reportingErrors("export") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let db = database.map { URL(fileURLWithPath: $0) } ?? shard.database(for: jobFile.database)
      let output = URL(fileURLWithPath: out)
      switch format {
      case .coco:
        let n = try Exporter.coco(from: db, to: output)
        print("Wrote \(output.path) (\(count(n, "annotation")))")
      case .png:
        let n = try Exporter.png(from: db, to: output)
        print("Wrote \(count(n, "PNG mask")) and masks.csv under \(output.path)")
      }
    }
  }
}
