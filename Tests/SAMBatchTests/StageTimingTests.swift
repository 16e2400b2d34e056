import Foundation
import GRDB
import MobileSAM
import SAMImage
import TestSupport
import XCTest

@testable import SAMBatch
@testable import SAMBatchFakes

/// The fake, with an encoder and a decoder that each take 0.3 s per call.
struct SlowSegmenter: Segmenter {
  let inner = FakeSegmenter()
  var modelKind: String { "slow" }
  func embed(_ image: RGBImage) throws -> FakeSegmenter.Embedding {
    Thread.sleep(forTimeInterval: 0.3)
    return try inner.embed(image)
  }
  func predict(_ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool) throws
    -> [Prediction]
  {
    Thread.sleep(forTimeInterval: 0.3)
    return try inner.predict(embedding, prompts: prompts, multimask: multimask)
  }
}

struct SlowSource: SegmenterSource {
  func identify() throws -> ModelIdentity { ModelIdentity(path: "slow", sha256: "slow") }
  func load() throws -> any Segmenter { SlowSegmenter() }
}

final class StageTimingTests: XCTestCase {
  /// With several images in flight, one image's decoding and the next one's encoding take turns
  /// on the model (`--thread-plan turns`): the turn one waits is wait_ms, not part of embed_ms or
  /// predict_ms (issue 6, defect 4). Each call takes 0.3 s: a stage time past 0.45 s would hold
  /// someone else's call.
  func testStageTimesAreTheirOwnWorkAndTheWaitIsRecordedApart() throws {
    let lines = [1, 2, 3, 5].map { i in
      #"{"image": "picture\#(i).jpg", "objects": [{"box": [\#(10 + i), 20, 60, 70]}]}"#
    }
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    _ = try job.run(inFlight: 3, plan: .takeTurns, model: SlowSource())
    let rows = try DatabaseQueue(path: job.database.path).read {
      try Row.fetchAll($0, sql: "SELECT embed_ms, predict_ms, wait_ms, total_ms FROM images ORDER BY id")
    }
    XCTAssertEqual(rows.count, 4)
    var waited = 0.0
    for row in rows {
      let embed: Double = row["embed_ms"]
      let predict: Double = row["predict_ms"]
      let wait: Double = row["wait_ms"]
      XCTAssertGreaterThanOrEqual(embed, 290, "the encoder's own time")
      XCTAssertLessThan(embed, 450, "encoding must not include another image's decoding")
      XCTAssertLessThan(predict, 450, "decoding must not include another image's encoding")
      XCTAssertLessThanOrEqual(embed + predict + wait, row["total_ms"] as Double + 1e-6)
      waited += wait
    }
    XCTAssertGreaterThanOrEqual(waited, 200, "images in flight wait for each other's model calls")
  }

  /// Side by side (the default plan) each worker has the model to itself: no image waits for
  /// another's calls, and each stage's time is its own call's.
  func testSideBySideStagesNeverWait() throws {
    let lines = [1, 2, 3, 5].map { i in
      #"{"image": "picture\#(i).jpg", "objects": [{"box": [\#(10 + i), 20, 60, 70]}]}"#
    }
    let job = try TestJob(manifests: [("m.jsonl", "jsonl", lines.joined(separator: "\n"))])
    _ = try job.run(model: SlowSource())
    let rows = try DatabaseQueue(path: job.database.path).read {
      try Row.fetchAll($0, sql: "SELECT embed_ms, predict_ms, wait_ms FROM images ORDER BY id")
    }
    XCTAssertEqual(rows.count, 4)
    for row in rows {
      XCTAssertEqual(row["wait_ms"] as Double, 0)
      XCTAssertGreaterThanOrEqual(row["embed_ms"] as Double, 290)
      XCTAssertLessThan(row["embed_ms"] as Double, 450)
      XCTAssertLessThan(row["predict_ms"] as Double, 450)
    }
  }
}

final class ExportIdTests: XCTestCase {
  /// Source COCO ids are kept whatever else the job holds; images without one are numbered after
  /// the largest; objects without a category go under a declared "object" (issue 6, defect 6).
  func testSourceIdsSurviveAJSONLinesManifestAndEveryAnnotationHasACategory() throws {
    let job = try TestJob(manifests: [
      ("i.json", "coco", cocoManifest),
      (
        "m.jsonl", "jsonl",
        #"{"image": "picture2.jpg", "objects": [{"box": [338, 124, 402, 505]}, {"box": [10, 10, 90, 90], "label": "tower"}]}"#
      ),
    ])
    _ = try job.run()
    let out = job.dir.appendingPathComponent("export.json")
    XCTAssertEqual(try Exporter.coco(from: job.database, to: out), 5)
    let document = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any]
    let images = document?["images"] as? [[String: Any]] ?? []
    XCTAssertEqual(
      images.map { $0["file_name"] as? String }, ["picture1.jpg", "picture3.jpg", "picture2.jpg"])
    XCTAssertEqual(images.map { $0["id"] as? Int }, [1, 3, 4])
    let categories = document?["categories"] as? [[String: Any]] ?? []
    let names = Dictionary(
      uniqueKeysWithValues: categories.map { ($0["id"] as? Int ?? -1, $0["name"] as? String ?? "") })
    let annotations = document?["annotations"] as? [[String: Any]] ?? []
    XCTAssertEqual(annotations.count, 5)
    for a in annotations {
      guard let id = a["category_id"] as? Int else { return XCTFail("an annotation without category: \(a)") }
      XCTAssertNotNil(names[id], "category \(id) is declared")
    }
    XCTAssertEqual(
      annotations.compactMap { names[$0["category_id"] as? Int ?? -1] }.suffix(2), ["object", "tower"])
    XCTAssertFalse(
      FileManager.default.fileExists(atPath: job.dir.appendingPathComponent(".export.json.partial").path))
  }

  func testAnExportOverAFileOrAFolderSaysSoPlainly() throws {
    let job = try TestJob(manifests: [("i.json", "coco", cocoManifest)])
    _ = try job.run()
    let file = job.dir.appendingPathComponent("taken")
    try Data("x".utf8).write(to: file)
    XCTAssertThrowsError(try Exporter.png(from: job.database, to: file)) {
      XCTAssertTrue($0.localizedDescription.contains("it is a file"), $0.localizedDescription)
      XCTAssertFalse($0.localizedDescription.contains("NSCocoaErrorDomain"), $0.localizedDescription)
    }
    XCTAssertThrowsError(try Exporter.png(from: job.database, to: file.appendingPathComponent("sub"))) {
      XCTAssertTrue($0.localizedDescription.contains("is a file, not a folder"), $0.localizedDescription)
    }
    XCTAssertThrowsError(try Exporter.coco(from: job.database, to: job.dir)) {
      XCTAssertTrue($0.localizedDescription.contains("it is a folder"), $0.localizedDescription)
    }
  }

  /// 20,000 distinct labels export in one pass (the old lookup was quadratic: issue 7, item 7).
  func testManyLabelsGetDistinctIds() throws {
    let uses: [(id: Int?, name: String?)] =
      (0..<20_000).map { (nil, "label\($0)") } + [(7, "seven"), (nil, "seven")]
    let table = CategoryTable(uses)
    XCTAssertEqual(table.declared.count, 20_001)
    XCTAssertEqual(table.id(nil, "seven"), 7, "a label naming a category with an id shares it")
    XCTAssertEqual(table.id(nil, "label0"), 8)
    XCTAssertEqual(Set((0..<20_000).map { table.id(nil, "label\($0)") }).count, 20_000)
  }
}

/// The fake, which moves the images folder away during its first encoding.
final class FolderMovingSource: SegmenterSource, @unchecked Sendable {
  let folder: URL
  init(folder: URL) { self.folder = folder }
  func identify() throws -> ModelIdentity {
    ModelIdentity(path: "mover", sha256: FakeSegmenterSource.defaultSHA256)
  }
  func load() throws -> any Segmenter { FolderMovingSegmenter(folder: folder) }
}

struct FolderMovingSegmenter: Segmenter {
  let folder: URL
  let inner = FakeSegmenter()
  var modelKind: String { "fake" }
  func embed(_ image: RGBImage) throws -> FakeSegmenter.Embedding {
    // Two workers may both find the folder there: the second move fails, which is no error here.
    if FileManager.default.fileExists(atPath: folder.path) {
      try? FileManager.default.moveItem(at: folder, to: folder.appendingPathExtension("moved"))
    }
    return try inner.embed(image)
  }
  func predict(_ embedding: FakeSegmenter.Embedding, prompts: [Prompt], multimask: Bool) throws
    -> [Prediction]
  {
    try inner.predict(embedding, prompts: prompts, multimask: multimask)
  }
}

final class VanishedFolderTests: XCTestCase {
  /// Issue 7, item 9: the images folder disappearing mid-run stops the run, with the images not
  /// processed left pending (not marked failed); with the folder back, the run continues. Taking
  /// turns with one image in flight, exactly the first image is done. Side by side, the image whose
  /// encoding moved the folder is done even when the other worker finds the folder gone first, and
  /// the other's image too when it was read before the move.
  func testAVanishedImagesFolderStopsTheRunAndLeavesImagesPending() throws {
    try vanishingFolderRun(plan: .takeTurns, done: 1...1)
    try vanishingFolderRun(plan: .sideBySide, done: 1...2)
  }

  private func vanishingFolderRun(plan: ThreadPlan, done: ClosedRange<Int>) throws {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.copyItem(at: Fixtures.url("images"), to: images)
    let lines = [1, 2, 3, 5].map {
      #"{"image": "picture\#($0).jpg", "objects": [{"box": [10, 20, 60, 70]}]}"#
    }
    try lines.joined(separator: "\n").write(
      to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    let jobURL = dir.appendingPathComponent("job.yaml")
    try "version: 1\nimages: images\nmanifests: [{path: m.jsonl, format: jsonl}]\nworkers: 2\n".write(
      to: jobURL, atomically: true, encoding: .utf8)
    var options = RunOptions()
    options.inFlight = 1
    options.threadPlan = plan
    let runner = JobRunner(
      job: try JobFile.load(contentsOf: jobURL), model: FolderMovingSource(folder: images), options: options,
      log: { _ in })
    XCTAssertThrowsError(try runner.run()) {
      XCTAssertTrue($0.localizedDescription.contains("disappeared during the run"), $0.localizedDescription)
    }
    let store = try ResultStore(url: dir.appendingPathComponent("results.db"), access: .readOnly)
    let counts = try store.counts()
    XCTAssertTrue(done.contains(counts.done), "\(plan): \(counts)")
    XCTAssertEqual(
      counts,
      StatusCounts(pending: 4 - counts.done, done: counts.done, prompts: counts.done, masks: counts.done),
      "\(plan)")
    XCTAssertEqual(try store.runs().first?.imagesDone, counts.done)
    XCTAssertTrue(try store.runs().first?.endReason?.contains("disappeared") ?? false)
    store.close()
    try FileManager.default.moveItem(at: images.appendingPathExtension("moved"), to: images)
    let resumed = try JobRunner(
      job: try JobFile.load(contentsOf: jobURL), model: FakeSegmenterSource(), options: options, log: { _ in }
    ).run()
    XCTAssertEqual(resumed.counts.done, 4)
  }
}
