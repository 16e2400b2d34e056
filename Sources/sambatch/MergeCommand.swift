import ArgumentParser
import Foundation
import SAMBatch

struct MergeCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "merge",
    abstract: "Combines the databases of a job's shards (run --shard I/N) into one new database.",
    discussion: """
      The shards must come from the same job (model, manifests, settings, shard count). The result
      is what one whole run would have written, and works with `status` and `export` through
      --database.
      """)

  @Argument(help: "The new, merged database.") var output: String
  @Argument(help: "The shard databases.") var shards: [String]

  func run() throws {
    do {
      let report = try ShardMerger.merge(
        into: URL(fileURLWithPath: output), shards: shards.map { URL(fileURLWithPath: $0) })
      let c = report.counts
      print(
        "Merged \(report.shards.count) shards into \(output): \(c.done) done, \(c.failed) failed, \(c.pending) pending"
          + " images; \(c.masks) masks.")
      if !report.missingShards.isEmpty {
        note("warning: shards \(report.missingShards.map(String.init).joined(separator: ", ")) are missing")
        throw ExitCode(2)
      }
      if c.pending > 0 {
        note("warning: \(c.pending) images are still pending: rerun those shards, then merge again")
        throw ExitCode(2)
      }
    } catch let error as SAMBatchError {
      note("error: \(error.localizedDescription)")
      throw ExitCode(1)
    }
  }
}
