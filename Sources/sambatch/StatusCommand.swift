import ArgumentParser
import Foundation
import SAMBatch

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status", abstract: "Prints what is done, failed and left of a job.")

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "Look at this shard's database (I/N).") var shard: String?
  @Option(help: "Look at this database instead of the job's.") var database: String?
  @Option(help: "List at most this many failed images and rejected prompts.") var failures = 20

  func run() throws {
    do {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let url =
        database.map { URL(fileURLWithPath: $0) } ?? JobRunner.shardDatabase(jobFile.database, shard: shard)
      let store = try ResultStore(url: url, create: false)
      var c = try store.counts()
      var options = RunOptions()
      options.shard = shard
      // Images of the job the database lacks (a merge of only some shards) are still to do.
      // A status must show even when the manifests are gone, so an unreadable manifest counts none.
      let missing =
        (try? JobRunner(job: jobFile, options: options, log: note).imagesMissing(from: store)) ?? 0
      c.pending += missing
      print("\(url.path):")
      print("  images: \(c.total) (\(c.done) done, \(c.failed) failed, \(c.pending) left)")
      if missing > 0 { print("  not yet in the database: \(missing) (`sambatch run` adds them)") }
      print(
        "  prompts: \(c.prompts) (\(c.rejectedPrompts) rejected, \(c.clippedPrompts) clipped); masks: \(c.masks)"
      )
      if c.manifestProblems > 0 { print("  unreadable manifest entries: \(c.manifestProblems)") }
      if let t = try store.meanTimings() {
        print(
          String(
            format: "  mean per image: read %.0f ms, encode %.0f ms, decode %.0f ms, total %.0f ms", t.read,
            t.embed, t.predict, t.total))
      }
      let f = try store.failures(limit: failures)
      for (path, error) in f.images { print("  failed: \(path): \(error)") }
      for (path, index, error) in f.prompts { print("  rejected: \(path) prompt \(index): \(error)") }
      if c.pending == 0 && c.failed == 0 { print("  complete") }
    } catch let error as SAMBatchError {
      note("error: \(error.localizedDescription)")
      throw ExitCode(1)
    }
  }
}
