import ArgumentParser
import Foundation
import SAMBatch

struct ReviewCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "review",
    abstract:
      "Writes a static HTML report of a job's masks (open OUT/index.html from disk, no server needed).")

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "The report's folder: index.html and overlays/.") var out: String
  @Option(help: "The longest side of the overlay images, in pixels.") var maxSide: Int = 1024
  @Option(help: "Review this shard's database (I/N).") var shard: String?
  @Option(help: "Review this database instead of the job's.") var database: String?

  func run() throws {
    try reportingErrors("review") {
      let jobURL = URL(fileURLWithPath: job)
      let jobFile = try JobFile.load(contentsOf: jobURL)
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let db =
        database.map { URL(fileURLWithPath: $0) } ?? shard.database(for: jobFile.database)
      let page = try LabelingExporter.review(
        from: db, title: "sambatch review: \(jobURL.lastPathComponent)", imagesFolder: jobFile.images,
        exif: jobFile.exif, to: URL(fileURLWithPath: out), maxSide: maxSide)
      print("Wrote \(page.path)")
    }
  }
}
