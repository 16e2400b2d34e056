import ArgumentParser
import Foundation
import SAMBatch

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Combines the databases of a job's shards (run --shard I/N) into one new database.",
    discussion: """
      The shards must come from the same job (model, manifests, settings, shard count). The result \
      is what one whole run would have written, and works with `status` and `export` through \
      --database.
      """)

  @Argument(help: "The new, merged database.") var output: String
  @Argument(help: "The shard databases.") var shards: [String]

  func run() throws {
    try reportingErrors("merge") {
      let report = try ShardMerger.merge(
        into: URL(fileURLWithPath: output), shards: shards.map { URL(fileURLWithPath: $0) })
      let c = report.counts
      print(
        "Merged \(count(report.shards.count, "shard")) into \(output): \(c.done) done, \(c.failed) failed,"
          + " \(c.pending) pending images; \(count(c.masks, "mask")).")
      let missing = report.missingShards
      if !missing.isEmpty {
        let list = missing.map(String.init).joined(separator: ", ")
        note("warning: \(missing.count == 1 ? "shard \(list) is" : "shards \(list) are") missing")
        throw ExitCode(2)
      }
      if c.pending > 0 {
        note(
          "warning: \(count(c.pending, "image is", plural: "images are")) still pending: rerun those shards, then merge again"
        )
        throw ExitCode(2)
      }
    }
  }
}
