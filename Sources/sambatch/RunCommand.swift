import ArgumentParser
import Foundation
import SAMBatch

struct RunCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "run",
    abstract: "Runs a job: every prompt of every image of its manifests, results into its SQLite database.",
    discussion: """
      Resumable: stop it at any moment (even kill -9) and run the same command again; images not \
      done are processed, the rest is kept. Exit status: 0 all went through, 2 the job finished but \
      some images failed or prompts were rejected (see `sambatch status`), 1 the job could not run, \
      64 a parameter of the job's `everything:` section is out of range. A job with `everything:` \
      segments every object of every image without prompts (README, "everything: jobs"). \
      SAMBATCH_MODEL, when set, overrides the job's model.
      """)

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "Process a deterministic 1/N of the images (I from 0 to N-1) into its own database.")
  var shard: String?
  @Flag(help: "Process the images that failed in earlier runs again.") var retryFailed = false
  @Option(help: "Write to this database instead of the job's (or the shard's default).") var database: String?
  @Option(
    help: ArgumentHelp(
      "With --thread-plan turns: images between reading and writing (memory bound; 1 = no overlap).",
      visibility: .hidden))
  var inFlight = 3
  @Option(
    help: ArgumentHelp(
      "side-by-side (each worker whole images on one thread, the last images on all; the default) "
        + "or turns (the model's calls one at a time on all threads; the default for everything jobs)."))
  var threadPlan: String?

  func run() throws {
    try reportingErrors("run") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      var options = RunOptions()
      if let shard { options.shard = try Shard(parsing: shard) }
      options.retryFailed = retryFailed
      guard inFlight >= 1 else { throw ValidationError("--in-flight must be at least 1") }
      options.inFlight = inFlight
      if let threadPlan {
        guard let plan = ThreadPlan(rawValue: threadPlan) else {
          throw ValidationError("--thread-plan \(threadPlan): expected turns or side-by-side")
        }
        options.threadPlan = plan
      }
      options.database = database.map { URL(fileURLWithPath: $0) }
      let reporter = ProgressReporter(terminal: isTerminal(STDERR_FILENO))
      let signals = SignalHandlers(stop: options.stop, reporter: reporter)
      defer { signals.cancel() }
      let runner = JobRunner(
        job: jobFile, model: try modelSource(for: jobFile, log: note), options: options, log: note,
        progress: reporter.update)
      let summary = try runner.run()
      reporter.finish()
      printSummary(summary, everything: jobFile.everything != nil, imageList: jobFile.imageList != nil)
      if let signal = summary.interrupted {
        note(
          "Interrupted by \(signal): \(count(summary.processed, "image")) processed in this run. Run the same command"
            + " again to continue with the \(count(summary.counts.pending, "image")) left.")
        throw ExitCode(SignalHandlers.exitStatus(signal))
      }
      if summary.exitStatus != 0 { throw ExitCode(summary.exitStatus) }
    }
  }

  /// An everything job's images are one prompt each, without category: its summary counts masks,
  /// not prompts, and its query groups by image.
  private func printSummary(_ s: RunSummary, everything: Bool, imageList: Bool) {
    let c = s.counts
    if s.nothingToDo {
      if c.total == 0 {
        print("Nothing to do: this shard has no images (the job has \(count(s.jobImages, "image"))).")
        return
      }
      print(
        "Nothing to do: all \(count(c.total, "image")) of this job are processed (\(c.done) done, \(c.failed) failed)."
      )
      if c.failed > 0 { print("Rerun with --retry-failed to try the failed ones again.") }
    } else {
      print(
        "Processed \(count(s.processed, "image")) in \(String(format: "%.1f", s.seconds)) s"
          + " (\(String(format: "%.2f", Double(s.processed) / max(s.seconds, 1e-9))) images/s); \(s.failedThisRun) failed."
      )
    }
    let prompts =
      everything
      ? "" : "\(count(c.prompts, "prompt")) (\(c.rejectedPrompts) rejected, \(c.clippedPrompts) clipped), "
    print(
      "Job: \(c.done) done, \(c.failed) failed, \(c.pending) pending of \(count(c.total, "image")); \(prompts)"
        + count(c.masks, "mask")
        + (c.belowMinScore > 0 ? "; \(count(c.belowMinScore, "detection")) below min_score left out" : "")
        + (c.manifestProblems > 0
          ? "; "
            + (imageList
              ? count(c.manifestProblems, "image list problem")
              : count(c.manifestProblems, "unreadable manifest entry", plural: "unreadable manifest entries"))
          : "")
        + ".")
    if !s.problems.isEmpty {
      print("\(imageList ? "Image list problems" : "Unreadable manifest entries") (\(c.manifestProblems)):")
      for p in s.problems { print("  \(p.file)\(p.line.map { ":\($0)" } ?? ""): \(quoted(p.message))") }
      if c.manifestProblems > s.problems.count {
        print(
          "  ... all of them: sqlite3 \(shellQuote(s.database.path)) \"SELECT file, line, message FROM manifest_problems\""
        )
      }
    }
    if c.manifestProblems > 0 || c.failed > 0 || c.rejectedPrompts > 0 {
      print("Details: sambatch status \(shellQuote(job))")
    }
    print("Database: \(s.database.path)")
    let query =
      everything
      ? "SELECT image, COUNT(*), AVG(score) FROM results GROUP BY image ORDER BY COUNT(*) DESC LIMIT 20"
      : "SELECT category, COUNT(*), AVG(score) FROM results GROUP BY category"
    print("Try: sqlite3 \(shellQuote(s.database.path)) \"\(query)\"")
  }
}

/// SIGINT, SIGTERM and SIGHUP ask the run to stop: it reads no new image, finishes the ones in
/// flight, records its end and prints how to resume. A second signal stops at once.
final class SignalHandlers: @unchecked Sendable {
  private var sources: [DispatchSourceSignal] = []
  private static let names: [Int32: String] = [SIGINT: "SIGINT", SIGTERM: "SIGTERM", SIGHUP: "SIGHUP"]

  init(stop: StopRequest, reporter: ProgressReporter) {
    for (number, name) in Self.names {
      signal(number, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
      source.setEventHandler {
        reporter.finish()
        if stop.stop(reason: name) {
          note("\(name): stopping after the images in flight (send it again to stop at once)")
        } else {
          note("\(name) again: stopping now; the images in flight are left pending")
          exit(Self.exitStatus(name))
        }
      }
      source.resume()
      sources.append(source)
    }
  }

  func cancel() {
    for source in sources { source.cancel() }
  }

  /// 128 + the signal's number, as shells report a process ended by it.
  static func exitStatus(_ name: String) -> Int32 {
    128 + (names.first { $0.value == name }?.key ?? SIGINT)
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

  /// Ends the progress line (once), so what follows starts on a line of its own.
  func finish() {
    lock.lock()
    defer { lock.unlock() }
    if drewBar { FileHandle.standardError.write(Data("\n".utf8)) }
    drewBar = false
  }
}

func formatDuration(_ seconds: Double) -> String {
  let s = Int(seconds.rounded())
  return s >= 3600
    ? "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m"
    : s >= 60 ? "\(s / 60)m\(String(format: "%02d", s % 60))s" : "\(s)s"
}
