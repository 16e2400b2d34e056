import ArgumentParser
import Foundation
import SAMBatch

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Runs a job: every prompt of every image of its manifests, results into its SQLite database.",
    discussion: """
      Resumable: stop it at any moment (even kill -9) and run the same command again; images not
      done are processed, the rest is kept. Exit status: 0 all went through, 2 the job finished but
      some images failed or prompts were rejected (see `sambatch status`), 1 the job could not run.
      SAMBATCH_MODEL, when set, overrides the job's model.
      """)

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "Process a deterministic 1/N of the images (I from 0 to N-1) into its own database.")
  var shard: String?
  @Flag(help: "Process the images that failed in earlier runs again.") var retryFailed = false
  @Option(help: "Write to this database instead of the job's (or the shard's default).") var database: String?
  @Option(
    help: ArgumentHelp(
      "Images between reading and writing (memory bound; 1 = no overlap).", visibility: .hidden))
  var inFlight = 3

  func run() throws {
    do {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      var options = RunOptions()
      if let shard { options.shard = try Shard(parsing: shard) }
      options.retryFailed = retryFailed
      guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
      options.inFlight = inFlight
      options.database = database.map { URL(fileURLWithPath: $0) }
      let reporter = ProgressReporter(terminal: isTerminal(STDERR_FILENO))
      let runner = JobRunner(job: jobFile, options: options, log: note, progress: reporter.update)
      let summary = try runner.run()
      reporter.finish()
      printSummary(summary)
      if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    } catch let error as SAMBatchError {
      note("error: \(error.localizedDescription)")
      throw ExitCode(1)
    }
  }

  private func printSummary(_ s: RunSummary) {
    let c = s.counts
    if s.nothingToDo {
      print(
        "Nothing to do: all \(c.total) images of this job are processed (\(c.done) done, \(c.failed) failed)."
      )
      if c.failed > 0 { print("Rerun with --retry-failed to try the failed ones again.") }
    } else {
      print(
        "Processed \(s.processed) images in \(String(format: "%.1f", s.seconds)) s"
          + " (\(String(format: "%.2f", Double(s.processed) / max(s.seconds, 1e-9))) images/s); \(s.failedThisRun) failed."
      )
    }
    print(
      "Job: \(c.done) done, \(c.failed) failed, \(c.pending) pending of \(c.total) images; \(c.prompts) prompts"
        + " (\(c.rejectedPrompts) rejected, \(c.clippedPrompts) clipped), \(c.masks) masks"
        + (c.manifestProblems > 0 ? "; \(c.manifestProblems) unreadable manifest entries" : "") + ".")
    print("Database: \(s.database.path)")
    print(
      "Try: sqlite3 \(shellQuote(s.database.path)) \"SELECT category, COUNT(*), AVG(score) FROM results GROUP BY category\""
    )
  }
}

func shellQuote(_ s: String) -> String {
  s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+".contains($0) }
    ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A progress bar with images/s, masks/s and ETA on a terminal; a log line every 10 s otherwise.
final class ProgressReporter: @unchecked Sendable {
  private let terminal: Bool
  private let lock = NSLock()
  private var lastPrint = Date.distantPast
  private var drewBar = false

  init(terminal: Bool) { self.terminal = terminal }

  func update(_ p: RunProgress) {
    lock.lock()
    defer { lock.unlock() }
    let now = Date()
    let interval: TimeInterval = terminal ? 0.2 : 10
    guard now.timeIntervalSince(lastPrint) >= interval || p.processed == p.toDo else { return }
    lastPrint = now
    let rate = Double(p.processed) / max(p.elapsed, 1e-9)
    let maskRate = Double(p.masks) / max(p.elapsed, 1e-9)
    let eta = rate > 0 ? Double(p.toDo - p.processed) / rate : 0
    let stats = String(
      format: "%d/%d images, %.2f images/s, %.1f masks/s, %d failed, ETA %@", p.processed, p.toDo, rate,
      maskRate,
      p.failed, formatDuration(eta))
    if terminal {
      let width = 30
      let filled = p.toDo > 0 ? width * p.processed / p.toDo : width
      let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
      FileHandle.standardError.write(Data("\r[\(bar)] \(stats)\u{1B}[K".utf8))
      drewBar = true
    } else {
      note("progress: \(stats)")
    }
  }

  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
  }
}

func formatDuration(_ seconds: Double) -> String {
  let s = Int(seconds.rounded())
  return s >= 3600
    ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
    : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
}
