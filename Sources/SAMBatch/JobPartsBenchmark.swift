import Dispatch
import Foundation
import MobileSAM
import SAMImage

/// The parts of a job's work on one image that the model benchmark leaves out, each timed alone
/// (medians after warm-up runs): reading the file, one mask to RLE, one image's rows into SQLite.
/// With the model's embed and box times they give the rate a job's parts allow,
/// 1 / (read + embed + boxes x (box + RLE) + write), which a job's images/s is measured against.
public struct JobPartsBenchmark: Sendable {
  public var warmup = 1
  public var runs = 5
  /// Masks per image in the write, as many as boxes (multimask off, one mask kept per box).
  public var boxes = 8

  public init() {}

  /// `read_ms`, `rle_ms` (one mask: runs, area, bbox, compressed counts), `write_ms` (one image's
  /// prompts and `boxes` masks committed in one transaction to a new database in a temporary
  /// folder, each run a different image as in a job). `mask` is the one RLE-encoded and written.
  public func run(imageFile: URL, mask: BinaryMask) throws -> Timings {
    let read = try median { _ = try ImageDecoder.decode(contentsOf: imageFile) }
    let rle = try median { _ = MaskRLE.summarize(mask) }
    let encoded = MaskRLE.summarize(mask)
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "sambatch-bench-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let store = try ResultStore(url: folder.appendingPathComponent("bench.db"))
    defer { store.close() }
    let images = warmup + max(1, runs)
    try store.writePlan(
      job: JobRecord(
        jobFile: "bench", modelPath: "bench", modelSHA256: "bench", modelKind: "vit_t", manifestSHA256: "",
        settings: "{}", shard: .whole, imageCount: images),
      images: (0..<images).map {
        ImagePlan(
          id: $0, path: "\($0).jpg", sourceImageId: nil, promptCount: boxes, belowMinScore: 0,
          promptsSHA256: "")
      }, problems: [], replace: false)
    let runId = try store.startRun(
      host: "bench", pid: 0, version: SAMBatchVersion.current, workers: 1, modelPath: "bench"
    )
    .id
    var next = 0
    let write = try median {
      var rows = ImageResult(imageId: next, exifApplied: true)
      next += 1
      rows.width = mask.width
      rows.height = mask.height
      for p in 0..<boxes {
        rows.prompts.append(
          PromptRecord(
            promptIndex: p, sourceId: "\(p)", categoryId: 1, category: nil, detectorScore: nil,
            box: [0, 0, Double(mask.width), Double(mask.height)], points: nil, warning: nil, error: nil))
        rows.masks.append(
          MaskRecord(
            promptIndex: p, maskIndex: 0, score: 0.9, stabilityScore: 0.95, area: encoded.area,
            bbox: encoded.bbox,
            rle: encoded.counts))
      }
      try store.commit(rows, runId: runId)
    }
    return Timings(read: read, rle: rle, write: write)
  }

  /// Medians in milliseconds.
  public struct Timings: Sendable {
    public var read: Double
    public var rle: Double
    public var write: Double

    /// As `sambatch bench` prints them.
    public var fields: [String: Double] { ["read_ms": read, "rle_ms": rle, "write_ms": write] }
  }

  /// Images per second the parts allow: 1000 / (read + embed + boxes x (box + RLE) + write), times
  /// in milliseconds.
  public static func imagesPerSecond(
    readMs: Double, embedMs: Double, boxMs: Double, rleMs: Double, writeMs: Double, boxes: Int
  ) -> Double {
    1000 / (readMs + embedMs + Double(boxes) * (boxMs + rleMs) + writeMs)
  }

  private func median(_ body: () throws -> Void) throws -> Double {
    for _ in 0..<warmup { try body() }
    var times: [Double] = []
    for _ in 0..<max(1, runs) {
      let start = DispatchTime.now()
      try body()
      times.append(milliseconds(since: start))
    }
    times.sort()
    return times.count % 2 == 1
      ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
  }
}
