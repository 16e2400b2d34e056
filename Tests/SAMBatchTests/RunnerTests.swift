import Foundation
import GRDB
import MobileSAM
import SAMImage
import SAMTensor
import TestSupport
import XCTest

@testable import SAMBatch
@testable import SAMBatchFakes

/// A job in a temporary folder over the committed sample photos.
struct TestJob {
  let dir: URL
  let jobURL: URL

  init(manifests: [(name: String, format: String, content: String)], extra: String = "") throws {
    dir = try temporaryDirectory()
    var yaml = """
      version: 1
      database: results.db
      images: \(Fixtures.url("images").path)
      workers: 2
      manifests:

      """
    for m in manifests {
      try m.content.write(to: dir.appendingPathComponent(m.name), atomically: true, encoding: .utf8)
      yaml += "  - {path: \(m.name), format: \(m.format)}\n"
    }
    yaml += extra
    jobURL = dir.appendingPathComponent("job.yaml")
    try yaml.write(to: jobURL, atomically: true, encoding: .utf8)
  }

  var database: URL { dir.appendingPathComponent("results.db") }

  func run(
    inFlight: Int = 3, plan: ThreadPlan? = nil, retryFailed: Bool = false,
    model: any SegmenterSource = FakeSegmenterSource(), log: @escaping @Sendable (String) -> Void = { _ in }
  ) throws -> RunSummary {
    var options = RunOptions()
    options.inFlight = inFlight
    options.threadPlan = plan
    options.retryFailed = retryFailed
    return try JobRunner(job: try JobFile.load(contentsOf: jobURL), model: model, options: options, log: log)
      .run()
  }

  func status() throws -> JobStatus {
    try JobStatus.read(job: try JobFile.load(contentsOf: jobURL), model: FakeSegmenterSource())
  }
}

/// The rows that must be identical between runs: prompts, masks, the results view, image status
/// and sizes (not timings, run ids or run rows).
func resultDump(_ url: URL) throws -> [String] {
  let db = try DatabaseQueue(path: url.path)
  return try db.read { db in
    var lines: [String] = []
    for (name, sql) in [
      (
        "image",
        "SELECT id, path, status, error, prompt_count, width, height, exif_applied FROM images ORDER BY id"
      ),
      ("prompt", "SELECT * FROM prompts ORDER BY image_id, prompt_index"),
      ("mask", "SELECT * FROM masks ORDER BY image_id, prompt_index, mask_index"),
      ("result", "SELECT * FROM results ORDER BY image_id, prompt_index, mask_index"),
      ("problem", "SELECT file, line, message FROM manifest_problems ORDER BY id"),
    ] {
      for row in try Row.fetchAll(db, sql: sql) { lines.append("\(name) \(row)") }
    }
    return lines
  }
}

let cocoManifest = """
  {"images": [{"id": 1, "file_name": "picture1.jpg"}, {"id": 3, "file_name": "picture3.jpg"}],
   "annotations": [
     {"id": 11, "image_id": 1, "bbox": [120, 265, 517, 248], "category_id": 3},
     {"id": 31, "image_id": 3, "bbox": [265, 710, 1235, 490], "category_id": 1},
     {"id": 32, "image_id": 3, "bbox": [1920, 790, 260, 410], "category_id": 7}],
   "categories": [{"id": 1, "name": "car"}, {"id": 3, "name": "sign"}]}
  """

final class RunnerTests: XCTestCase {
  func testCOCOJobThroughTheResultsView() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    let summary = try job.run()
    XCTAssertEqual(summary.processed, 2)
    XCTAssertEqual(summary.exitStatus, 0)
    XCTAssertEqual(summary.counts, StatusCounts(done: 2, prompts: 3, masks: 3))
    let db = try DatabaseQueue(path: job.database.path)
    let rows = try db.read { try Row.fetchAll($0, sql: "SELECT * FROM results ORDER BY image, source_id") }
    XCTAssertEqual(rows.map { $0["image"] as String }, ["picture1.jpg", "picture3.jpg", "picture3.jpg"])
    XCTAssertEqual(rows.map { $0["source_id"] as String }, ["11", "31", "32"])
    XCTAssertEqual(
      rows.map { $0["category"] as String }, ["sign", "car", "7"], "a category without a name shows its id")
    XCTAssertEqual(rows.map { $0["width"] as Int }, [769, 2241, 2241])
    XCTAssertEqual(rows.map { $0["height"] as Int }, [770, 1500, 1500])
    for row in rows {
      let mask = try MaskRLE.decode(row["rle"], width: row["width"], height: row["height"])
      XCTAssertEqual(MaskRLE.area(mask), row["area"])
      XCTAssertEqual(MaskRLE.bbox(mask), [row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]])
      XCTAssertEqual(row["mask_index"] as Int, 0)
      XCTAssertNotNil(row["score"] as Double?)
    }
    let timings = try db.read {
      try Row.fetchAll($0, sql: "SELECT read_ms, embed_ms, predict_ms, total_ms FROM images ORDER BY id")
    }
    for row in timings {
      let (read, embed, predict, total) =
        (
          row["read_ms"] as Double, row["embed_ms"] as Double, row["predict_ms"] as Double,
          row["total_ms"] as Double
        )
      XCTAssertGreaterThanOrEqual(total, read + embed + predict - 1e-6, "total covers the stages")
    }
    // The fake segmenter fills the box: the car's mask covers exactly its box.
    XCTAssertEqual(rows[1]["bbox_x"] as Double, 265)
    XCTAssertEqual(rows[1]["bbox_w"] as Double, 1235)
  }

  func testJSONLinesJobWithBadInputsGoesOn() throws {
    let dir = try temporaryDirectory()
    try Data("this is not a JPEG".utf8).write(to: dir.appendingPathComponent("corrupt.jpg"))
    let lines = [
      #"{"image": "picture2.jpg", "objects": [{"id": "a", "label": "tower", "box": [338, 124, 402, 505]}, {"id": "nan", "box": [NaN, 1, 2, 3]}, {"id": "flat", "box": [10, 10, 10, 50]}, {"id": "out", "box": [700, 700, 900, 900], "score": 0.7}, {"id": "p", "points": [[258, 700, 1]]}]}"#,
      #"{"image": "missing.jpg", "objects": [{"box": [1, 1, 5, 5]}]}"#,
      #"{"image": "\#(dir.path)/corrupt.jpg", "objects": [{"box": [1, 1, 5, 5]}]}"#,
      "{broken",
      #"{"image": "picture1.jpg", "objects": []}"#,
    ]
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    let summary = try job.run()
    XCTAssertEqual(summary.exitStatus, 2)
    let c = summary.counts
    XCTAssertEqual([c.done, c.failed, c.pending], [2, 2, 0])
    XCTAssertEqual(c.rejectedPrompts, 2)
    XCTAssertEqual(c.clippedPrompts, 1)
    XCTAssertEqual(c.manifestProblems, 1)
    XCTAssertEqual(c.masks, 3)
    let db = try DatabaseQueue(path: job.database.path)
    try db.read { db in
      let errors = try Row.fetchAll(db, sql: "SELECT path, status, error FROM images ORDER BY id")
      XCTAssertEqual(errors.map { $0["status"] as String }, ["done", "failed", "failed", "done"])
      XCTAssertTrue((errors[1]["error"] as String).contains("missing.jpg"))
      let prompts = try Row.fetchAll(
        db, sql: "SELECT source_id, error, warning, box_x1 FROM prompts ORDER BY prompt_index")
      XCTAssertTrue((prompts[1]["error"] as String).contains("non-finite"))
      XCTAssertTrue((prompts[2]["error"] as String).contains("zero or negative area"))
      XCTAssertTrue((prompts[3]["warning"] as String).contains("clipped"))
      XCTAssertEqual(prompts[3]["box_x1"] as Double, 769)
      let problem = try Row.fetchOne(db, sql: "SELECT line FROM manifest_problems")
      XCTAssertEqual(problem?["line"] as Int?, 4)
    }
  }

  func testRerunOfAFinishedJobDoesNothingAndKeepsRows() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run()
    let before = try resultDump(job.database)
    let again = try job.run()
    XCTAssertTrue(again.nothingToDo)
    XCTAssertEqual(again.processed, 0)
    XCTAssertEqual(try resultDump(job.database), before)
  }

  func testResultsDoNotDependOnInterleaving() throws {
    let a = try TestJob(
      manifests: [("i.json", "coco", cocoManifest)], extra: "prompts: {multimask: true, keep: all}\n")
    let b = try TestJob(
      manifests: [("i.json", "coco", cocoManifest)], extra: "prompts: {multimask: true, keep: all}\n")
    _ = try a.run(inFlight: 1)
    _ = try b.run(inFlight: 8)
    let dump = try resultDump(a.database)
    XCTAssertEqual(dump, try resultDump(b.database))
    XCTAssertEqual(dump.filter { $0.hasPrefix("mask ") }.count, 9, "3 prompts x 3 masks with keep: all")
  }

  func testKeepBestKeepsTheHighestScoringMaskWithItsIndex() throws {
    let all = try TestJob(
      manifests: [("i.json", "coco", cocoManifest)], extra: "prompts: {multimask: true, keep: all}\n")
    let best = try TestJob(
      manifests: [("i.json", "coco", cocoManifest)], extra: "prompts: {multimask: true, keep: best}\n")
    _ = try all.run()
    _ = try best.run()
    let query = """
      SELECT m.image_id, m.prompt_index, m.mask_index FROM masks m
      WHERE m.score = (SELECT MAX(score) FROM masks n WHERE n.image_id = m.image_id AND n.prompt_index = m.prompt_index)
      ORDER BY 1, 2
      """
    let expected = try DatabaseQueue(path: all.database.path).read { try Row.fetchAll($0, sql: query) }
    let kept = try DatabaseQueue(path: best.database.path).read {
      try Row.fetchAll($0, sql: "SELECT image_id, prompt_index, mask_index FROM masks ORDER BY 1, 2")
    }
    XCTAssertEqual(kept, expected)
    XCTAssertEqual(kept.count, 3)
  }

  func testChangedSettingsAreRefusedWithWhatChangedAndAChangedBoxRedoesItsImage() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run()
    let yaml = try String(contentsOf: job.jobURL, encoding: .utf8)
    try (yaml + "prompts: {multimask: true}\n").write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue($0.localizedDescription.contains("settings changed"), $0.localizedDescription)
      XCTAssertTrue($0.localizedDescription.contains("start afresh"))
    }
    try yaml.write(to: job.jobURL, atomically: true, encoding: .utf8)
    // A changed box is not refused: its image is redone, the others kept.
    try cocoManifest.replacingOccurrences(of: "1235", with: "1234")
      .write(to: job.dir.appendingPathComponent("i.json"), atomically: true, encoding: .utf8)
    XCTAssertEqual(try job.run().processed, 1)
  }

  func testImagesFolderOrEXIFChangeIsRefusedWithWhatChanged() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run()
    // The same file names in another folder are other images.
    let copy = job.dir.appendingPathComponent("copy")
    try FileManager.default.copyItem(at: Fixtures.url("images"), to: copy)
    let yaml = try String(contentsOf: job.jobURL, encoding: .utf8)
    try yaml.replacingOccurrences(of: "images: \(Fixtures.url("images").path)", with: "images: copy")
      .write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run()) {
      let message = $0.localizedDescription
      XCTAssertTrue(message.contains("settings changed (images: "), message)
      // Below the job file, the folder is recorded relative to it.
      XCTAssertTrue(message.contains("then, copy now"), message)
    }
    try (yaml + "exif: false\n").write(to: job.jobURL, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try job.run()) {
      XCTAssertTrue($0.localizedDescription.contains("exif: true then, false now"), $0.localizedDescription)
    }
  }

  func testChangedModelIsRefusedOnceResultsExist() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run(model: FakeSegmenterSource(sha256: "first"))
    XCTAssertThrowsError(try job.run(model: FakeSegmenterSource(sha256: "second"))) {
      XCTAssertTrue($0.localizedDescription.contains("the model changed"), $0.localizedDescription)
    }
  }

  func testFailedImagesAreRetriedOnlyWithRetryFailed() throws {
    let dir = try temporaryDirectory()
    let image = dir.appendingPathComponent("late.jpg")
    let job = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "\#(image.path)", "objects": [{"box": [1, 1, 50, 50]}]}"#)
    ])
    XCTAssertEqual(try job.run().counts.failed, 1)
    try FileManager.default.copyItem(at: Fixtures.url("images/picture1.jpg"), to: image)
    let again = try job.run()
    XCTAssertTrue(again.nothingToDo)
    XCTAssertEqual(again.counts.failed, 1)
    let retried = try job.run(retryFailed: true)
    XCTAssertEqual(retried.processed, 1)
    XCTAssertEqual(retried.counts, StatusCounts(done: 1, prompts: 1, masks: 1))
    XCTAssertEqual(retried.exitStatus, 0)
  }

  func testFakeSegmenterIsAFunctionOfItsInputs() throws {
    let s = FakeSegmenter()
    let a = try s.embed(RGBImageFixture.gradient(seed: 1))
    let b = try s.embed(RGBImageFixture.gradient(seed: 2))
    let prompt = [MobileSAMPrompt.box(10, 10, 40, 30)]
    let pa = try s.predict(a, prompts: prompt, multimask: false)[0]
    let pb = try s.predict(b, prompts: prompt, multimask: false)[0]
    XCTAssertEqual(pa.masks, pb.masks, "masks follow the box")
    XCTAssertNotEqual(pa.scores, pb.scores, "scores follow the pixels")
    XCTAssertEqual(try s.predict(a, prompts: prompt, multimask: false)[0].scores, pa.scores)
    XCTAssertEqual(pa.masks[0].pixels.reduce(0) { $0 + Int($1) }, 30 * 20)
  }
}

final class ExportTests: XCTestCase {
  func testPNGMasksDecodeToTheStoredMasks() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run()
    let out = job.dir.appendingPathComponent("png")
    XCTAssertEqual(try Exporter.png(from: job.database, to: out), 3)
    let rows = try DatabaseQueue(path: job.database.path).read {
      try Row.fetchAll(
        $0, sql: "SELECT image_id, prompt_index, mask_index, image, rle, width, height FROM results")
    }
    for row in rows {
      let stem = ((row["image"] as String) as NSString).deletingPathExtension
      let file = out.appendingPathComponent(
        "\(row["image_id"] as Int)-\(stem)/prompt\(row["prompt_index"] as Int)-mask\(row["mask_index"] as Int).png"
      )
      let image = try ImageDecoder.decode(contentsOf: file)
      let mask = try MaskRLE.decode(row["rle"], width: row["width"], height: row["height"])
      XCTAssertEqual([image.width, image.height], [mask.width, mask.height])
      // Gray decodes to RGB by replication: every third byte is the mask as 0 / 255.
      let gray = stride(from: 0, to: image.pixels.count, by: 3).map { image.pixels[$0] }
      XCTAssertEqual(gray, mask.pixels.map { $0 == 0 ? 0 : 255 })
    }
  }
}

/// Refuses prompts whose box starts at x = 7 and records the size of every call.
final class RefusingSegmenter: Segmenter, @unchecked Sendable {
  let inner = FakeSegmenter()
  var modelKind: String { "refusing" }
  private let lock = NSLock()
  private(set) var callSizes: [Int] = []

  func embed(_ image: RGBImage) throws -> FakeSegmenter.Embedding { try inner.embed(image) }

  func predict(_ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool) throws
    -> [Prediction]
  {
    lock.lock()
    callSizes.append(prompts.count)
    lock.unlock()
    if let i = prompts.firstIndex(where: { $0.box?.x0 == 7 }) {
      throw MobileSAMError.invalidPrompt(index: i, reason: "x0 is unlucky")
    }
    return try inner.predict(embedding, prompts: prompts, multimask: multimask)
  }
}

/// Makes masks only through `predictMasks`, one at a time, and counts them; `predict` (every
/// mask of a call at once) fails the image.
final class OneMaskAtATimeSegmenter: Segmenter, @unchecked Sendable {
  let inner = FakeSegmenter()
  var modelKind: String { "fake" }
  private let lock = NSLock()
  private(set) var masksMade = 0

  func embed(_ image: RGBImage) throws -> FakeSegmenter.Embedding { try inner.embed(image) }

  func predict(_ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool) throws
    -> [Prediction]
  {
    throw MobileSAMError.imageTooThin(width: 0, height: 0)
  }

  func predictMasks<Encoded: Sendable>(
    _ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool, wanted: ([Float]) -> [Int],
    encode: @Sendable (MadeMask) -> Encoded
  ) throws -> [Encoded] {
    try inner.predict(embedding, prompts: prompts, multimask: multimask).enumerated().flatMap {
      p, prediction in
      wanted(prediction.scores).map { i in
        lock.withLock { masksMade += 1 }
        return encode(
          MadeMask(
            promptIndex: p, maskIndex: i, mask: prediction.masks[i], score: prediction.scores[i],
            stabilityScore: prediction.stabilityScores[i]))
      }
    }
  }
}

/// A model source that hands out one given segmenter.
struct FixedSegmenterSource: SegmenterSource {
  let segmenter: any Segmenter
  func identify() throws -> ModelIdentity { ModelIdentity(path: "fixed", sha256: "fixed") }
  func load() throws -> any Segmenter { segmenter }
}

final class PipelineTests: XCTestCase {
  /// Issue 7: masks go to RLE as they are made, and keep: best makes only the kept mask; the rows
  /// are those of the same job through `predict`.
  func testMasksAreMadeOneAtATimeAndOnlyTheKeptOnes() throws {
    let settings = "prompts: {multimask: true, keep: best}\n"
    let streamed = try TestJob(manifests: [("i.json", "coco", cocoManifest)], extra: settings)
    let whole = try TestJob(manifests: [("i.json", "coco", cocoManifest)], extra: settings)
    let segmenter = OneMaskAtATimeSegmenter()
    let summary = try streamed.run(model: FixedSegmenterSource(segmenter: segmenter))
    _ = try whole.run()
    XCTAssertEqual(summary.counts.failed, 0)
    XCTAssertEqual(segmenter.masksMade, 3, "3 prompts, the best of 3 masks each")
    XCTAssertEqual(
      try resultDump(streamed.database).filter { $0.hasPrefix("mask ") },
      try resultDump(whole.database).filter { $0.hasPrefix("mask ") })
  }

  func testManyPromptsGoInBoundedCallsAndARefusedPromptIsRecorded() throws {
    let objects = (0..<40).map { i in #"{"id": "\#(i)", "box": [\#(i == 25 ? 7 : 10 + i), 20, 300, 400]}"# }
    let job = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "picture1.jpg", "objects": [\#(objects.joined(separator: ", "))]}"#)
    ])
    let jobFile = try JobFile.load(contentsOf: job.jobURL)
    let manifests = try LoadedManifests.load(jobFile)
    let store = try ResultStore(url: job.database)
    defer { store.close() }
    try store.writePlan(
      job: testRecord(manifests, imageCount: 1), images: [plan(0, "picture1.jpg", 40)], problems: [],
      replace: false)
    let segmenter = RefusingSegmenter()
    let runner = JobRunner(job: jobFile, model: FakeSegmenterSource(), options: RunOptions(), log: { _ in })
    let runId = try store.startRun(host: "h", pid: 1, version: "v", workers: 1, modelPath: "m").id
    let result = try Pipeline(
      runner: runner, segmenter: segmenter,
      images: Dictionary(uniqueKeysWithValues: manifests.images.enumerated().map { ($0, $1) }), store: store,
      runId: runId
    )
    .run([0])
    XCTAssertEqual(result.processed, 1)
    XCTAssertLessThanOrEqual(segmenter.callSizes.max() ?? 0, 16)
    XCTAssertEqual(segmenter.callSizes.filter { $0 > 0 }.count, 4, "16 + 16 (refused, then 15) + 8")
    let counts = try store.counts()
    XCTAssertEqual(counts.masks, 39)
    XCTAssertEqual(counts.rejectedPrompts, 1)
    let error = try store.queue.read {
      try String.fetchOne($0, sql: "SELECT error FROM prompts WHERE source_id = '25'")
    }
    XCTAssertTrue(error?.contains("x0 is unlucky") ?? false)
  }
}

/// Counts the segmenter calls running at once; each call sleeps so that any overlap shows.
final class OverlapCountingSegmenter: Segmenter, @unchecked Sendable {
  let inner = FakeSegmenter()
  var modelKind: String { "overlap-counting" }
  private let lock = NSLock()
  private var active = 0
  private(set) var maxActive = 0
  /// ComputeThreads.count seen by the calls.
  private(set) var threadCounts: Set<Int> = []
  /// ComputeThreads.runLoopsInline seen by calls that began while another was running, and by
  /// those that began alone.
  private(set) var inlineWhenOverlapping: Set<Bool> = []
  private(set) var inlineAlone: Set<Bool> = []

  private func during<T>(_ body: () throws -> T) rethrows -> T {
    lock.lock()
    active += 1
    maxActive = max(maxActive, active)
    threadCounts.insert(ComputeThreads.count)
    let inline = ComputeThreads.runLoopsInline
    if active > 1 { inlineWhenOverlapping.insert(inline) } else { inlineAlone.insert(inline) }
    lock.unlock()
    defer {
      lock.lock()
      active -= 1
      lock.unlock()
    }
    Thread.sleep(forTimeInterval: 0.03)
    return try body()
  }

  func embed(_ image: RGBImage) throws -> FakeSegmenter.Embedding { try during { try inner.embed(image) } }

  func predict(_ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool) throws
    -> [Prediction]
  {
    try during { try inner.predict(embedding, prompts: prompts, multimask: multimask) }
  }
}

final class PipelineComputeTests: XCTestCase {
  /// The model's calls use all the job's compute threads: two at once would use twice `workers`.
  func testSegmenterCallsNeverOverlap() throws {
    let lines = (0..<6).map { i in
      #"{"image": "picture\#(i % 3 + 1).jpg", "objects": [{"box": [\#(10 + i), 20, 300, 400]}]}"#
    }
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    let jobFile = try JobFile.load(contentsOf: job.jobURL)
    let manifests = try LoadedManifests.load(jobFile)
    let store = try ResultStore(url: job.database)
    defer { store.close() }
    let ids = Array(manifests.images.indices)
    try store.writePlan(
      job: testRecord(manifests, imageCount: ids.count),
      images: ids.map { plan($0, manifests.images[$0].path, manifests.images[$0].objects.count) },
      problems: [],
      replace: false)
    let segmenter = OverlapCountingSegmenter()
    var options = RunOptions()
    options.inFlight = 4
    options.threadPlan = .takeTurns
    let runner = JobRunner(job: jobFile, model: FakeSegmenterSource(), options: options, log: { _ in })
    let runId = try store.startRun(host: "h", pid: 1, version: "v", workers: 2, modelPath: "m").id
    let result = try Pipeline(
      runner: runner, segmenter: segmenter,
      images: Dictionary(uniqueKeysWithValues: manifests.images.enumerated().map { ($0, $1) }), store: store,
      runId: runId
    )
    .run(ids)
    XCTAssertEqual(result.processed, ids.count)
    XCTAssertEqual(result.failed, 0)
    XCTAssertEqual(segmenter.maxActive, 1, "embed and predict calls must run one at a time")
    XCTAssertEqual(segmenter.threadCounts, [2], "each call on all the workers' threads")
  }

  /// Side by side (the default plan), the two workers' calls overlap, each running its loops
  /// inline on its own thread while the other is busy too, and the rows are those of the plan that
  /// takes turns.
  func testSideBySideWorkersRunInlineAndGiveTheSameRows() throws {
    let lines = (0..<6).map { i in
      #"{"image": "picture\#(i % 3 + 1).jpg", "objects": [{"box": [\#(10 + i), 20, 300, 400]}]}"#
    }
    var dumps: [[String]] = []
    for plan in [nil, ThreadPlan.takeTurns] {
      let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
      let segmenter = OverlapCountingSegmenter()
      var options = RunOptions()
      options.threadPlan = plan
      let logged = LogLines()
      let summary = try JobRunner(
        job: try JobFile.load(contentsOf: job.jobURL), model: FixedSegmenterSource(segmenter: segmenter),
        options: options, log: logged.append
      ).run()
      XCTAssertEqual(summary.processed, 3, "3 photos, 2 boxes each")
      let said = plan == nil ? ", 2 workers side by side," : ", 2 workers taking turns,"
      XCTAssertTrue(logged.lines.contains { $0.contains(said) }, "\(logged.lines)")
      XCTAssertEqual(segmenter.threadCounts, [2], "the job's 2 threads split every loop")
      if plan == nil {
        XCTAssertEqual(segmenter.maxActive, 2, "two workers, one image each at a time")
        XCTAssertEqual(segmenter.inlineWhenOverlapping, [true], "loops inline while both workers are busy")
      } else {
        XCTAssertEqual(segmenter.inlineWhenOverlapping, [])
        XCTAssertEqual(segmenter.inlineAlone, [false])
      }
      XCTAssertFalse(ComputeThreads.runLoopsInline)
      dumps.append(try resultDump(job.database))
    }
    XCTAssertEqual(dumps[0], dumps[1])
  }

  /// One image and two workers side by side: the worker with nothing to take lends its thread, so
  /// the image's loops split over both threads instead of running inline on one.
  func testAWorkerWithNothingToTakeLendsItsThread() throws {
    let job = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "picture1.jpg", "objects": [{"box": [10, 20, 300, 400]}]}"#)
    ])
    let segmenter = OverlapCountingSegmenter()
    let summary = try JobRunner(
      job: try JobFile.load(contentsOf: job.jobURL), model: FixedSegmenterSource(segmenter: segmenter),
      options: RunOptions(), log: { _ in }
    ).run()
    XCTAssertEqual(summary.processed, 1)
    XCTAssertEqual(segmenter.maxActive, 1)
    XCTAssertEqual(segmenter.inlineAlone, [false], "the image's loops split over both threads")
  }
}

func testRecord(_ manifests: LoadedManifests, imageCount: Int) -> JobRecord {
  JobRecord(
    jobFile: "j", modelPath: "m", modelSHA256: "x", modelKind: "fake", manifestSHA256: manifests.sha256,
    settings: "{}", shard: .whole, imageCount: imageCount)
}

func plan(_ id: Int, _ path: String, _ prompts: Int) -> ImagePlan {
  ImagePlan(id: id, path: path, sourceImageId: nil, promptCount: prompts, belowMinScore: 0, promptsSHA256: "")
}
