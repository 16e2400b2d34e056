import ArgumentParser
import Dispatch
import Foundation
import MobileSAM
import SAMBatch
import TorchCheckpoint

/// `sambatch bench-load` (hidden): how long loading a checkpoint takes beside reading its file
/// the way `cat` does, interleaved in one process, as JSON. For issue 8's target: loading a file
/// in the page cache costs no more than twice reading it.
struct BenchLoadCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "bench-load",
    abstract: "Times checkpoint loading against reading the file (JSON on stdout).",
    shouldDisplay: false)

  @Option(help: "The checkpoint. Default: $SAMBATCH_MODEL.")
  var model: String?

  @Option(help: "Timed rounds, each: read the file, load the checkpoint, load the model.")
  var runs = 5

  func run() throws {
    try reportingErrors("bench-load", benchmark)
  }

  private func benchmark() throws {
    let url = try ModelPath.resolve(option: model, job: nil, environment: ProcessInfo.processInfo.environment)
      .url
    var read: [Double] = []
    var checkpoint: [Double] = []
    var model: [Double] = []
    _ = try readLikeCat(url)  // warms the page cache
    for _ in 0..<max(1, runs) {
      read.append(try milliseconds { _ = try readLikeCat(url) })
      checkpoint.append(try milliseconds { _ = try Checkpoint.load(contentsOf: url) })
      model.append(try milliseconds { _ = try MobileSAMModel(checkpoint: url) })
    }
    let hash = try milliseconds { _ = try ModelDigests(directory: nil).sha256(of: url) }
    func summary(_ values: [Double]) -> [String: Any] {
      let sorted = values.sorted()
      return ["min": sorted[0], "median": sorted[sorted.count / 2], "all": values]
    }
    let result: [String: Any] = [
      "file_bytes": (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0,
      "read_ms": summary(read), "checkpoint_load_ms": summary(checkpoint), "model_load_ms": summary(model),
      "sha256_ms": hash,
      "checkpoint_over_read": checkpoint.min()! / read.min()!, "model_over_read": model.min()! / read.min()!,
    ]
    print(JSONWriter.write(JSONValue(native: result), sortedKeys: true))
  }

  /// Reads the whole file in 128 KiB `read` calls into one buffer, as `cat file > /dev/null` does.
  private func readLikeCat(_ url: URL) throws -> Int {
    let descriptor = open(url.path, O_RDONLY)
    guard descriptor >= 0 else { throw ValidationError("cannot open \(url.path)") }
    defer { close(descriptor) }
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 1 << 17, alignment: 4096)
    defer { buffer.deallocate() }
    var total = 0
    while true {
      let count = Foundation.read(descriptor, buffer, 1 << 17)
      if count <= 0 { break }
      total += count
    }
    return total
  }

  private func milliseconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
  }
}
