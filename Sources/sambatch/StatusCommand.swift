import ArgumentParser
import Foundation
import SAMBatch

struct StatusCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "status",
    abstract: "Prints what is done, failed and left of a job, and what the next run will do.",
    discussion: "Reads the database without writing to it: works on a read-only copy.")

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "Look at this shard's database (I/N).") var shard: String?
  @Option(help: "Look at this database instead of the job's.") var database: String?
  @Option(help: "List at most this many failed images and rejected prompts.") var failures = 20

  func run() throws {
    try reportingErrors("status") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let model = try? modelSource(for: jobFile, log: { _ in })
      let status = try JobStatus.read(
        job: jobFile, shard: shard, database: database.map { URL(fileURLWithPath: $0) }, model: model,
        listLimit: failures)
      let c = status.counts
      print("\(status.database.path):")
      print("  images: \(c.total) (\(c.done) done, \(c.failed) failed, \(c.pending) left)")
      switch status.nextRun {
      case .upToDate: break
      case .extends(let added, _) where jobFile.everything != nil:
        print(
          "  the images changed since the last run: \(count(added, "new image")) (`sambatch run` adds them, keeping the rest)"
        )
      case .extends(let added, let redo):
        print(
          "  the manifests changed since the last run: \(count(added, "new image")), \(count(redo, "image"))"
            + " with other prompts (`sambatch run` adds them and redoes those, keeping the rest)")
      case .replaces(let changes):
        print(
          "  the job changed (\(changes.joined(separator: "; "))); nothing is done yet, so `sambatch run`"
            + " starts it afresh")
      case .refuses(let changes):
        print(
          "  the job changed since this database was written: \(changes.joined(separator: "; ")). `sambatch run`"
            + " refuses it: delete the database (or point 'database:' elsewhere) to start afresh")
      case .unknown(let reason):
        print("  cannot compare with the job's manifests now: \(reason)")
      }
      if jobFile.everything != nil {
        print("  masks: \(c.masks)")  // one prompt per image: the generator's grid, never rejected
      } else {
        print(
          "  prompts: \(c.prompts) (\(c.rejectedPrompts) rejected, \(c.clippedPrompts) clipped); masks: \(c.masks)"
        )
      }
      if c.noDetections > 0 {
        print("  images with no detections (done, no prompts): \(c.noDetections)")
      }
      if c.belowMinScore > 0 {
        print("  detections below min_score, left out: \(c.belowMinScore) (images.below_min_score per image)")
      }
      if let t = status.timings {
        print(
          String(
            format:
              "  mean per image: read %.0f ms, encode %.0f ms, decode %.0f ms, waiting for the model %.0f ms,"
              + " total %.0f ms", t.read, t.embed, t.predict, t.wait, t.total))
      }
      for run in status.openRuns {
        print(
          "  run \(run.id) has not ended: pid \(run.pid.map(String.init) ?? "?") on \(run.host), started"
            + " \(run.startedAt), last wrote \(run.heartbeatAt ?? run.startedAt)")
      }
      for (path, error) in status.failedImages { print("  failed: \(path): \(error)") }
      for (path, index, error) in status.rejectedPrompts {
        print("  rejected: \(path) prompt \(index): \(error)")
      }
      if c.manifestProblems > 0 {
        print(
          "  \(jobFile.imageList != nil ? "image list problems" : "unreadable manifest entries"): \(c.manifestProblems)"
        )
        for p in status.problems {
          print("    \(p.file)\(p.line.map { ":\($0)" } ?? ""): \(quoted(p.message))")
        }
        if c.manifestProblems > status.problems.count {
          print(
            "    ... all of them: sqlite3 \(shellQuote(status.database.path)) \"SELECT file, line, message FROM manifest_problems\""
          )
        }
      }
      if status.isComplete { print("  complete") }
    }
  }
}
