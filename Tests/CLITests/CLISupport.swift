import Foundation
import GRDB
import TestSupport
import XCTest

/// The built `sambatch` binary, next to the test bundle in the build products folder.
func sambatchBinary(file: StaticString = #filePath, line: UInt = #line) throws -> URL {
  let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  for candidate in [products, products.deletingLastPathComponent()] {
    let url = candidate.appendingPathComponent("sambatch")
    if FileManager.default.isExecutableFile(atPath: url.path) { return url }
  }
  XCTFail("the sambatch binary is not in \(products.path): run `swift build` first", file: file, line: line)
  throw CocoaError(.fileNoSuchFile)
}

struct ProcessResult {
  var status: Int32
  var stdout: String
  var stderr: String
  var killed: Bool
}

/// Runs the binary; with `killAfter`, sends SIGKILL after that many seconds if it still runs;
/// with `killWhen`, sends it as soon as the condition (polled every 10 ms) holds.
func runSambatch(
  _ arguments: [String], environment: [String: String] = [:], killAfter: TimeInterval? = nil,
  killWhen: (() -> Bool)? = nil
) throws -> ProcessResult {
  let process = Process()
  process.executableURL = try sambatchBinary()
  process.arguments = arguments
  var env = ProcessInfo.processInfo.environment
  env.removeValue(forKey: "SAMBATCH_MODEL")
  env.removeValue(forKey: "SAMBATCH_FAKE_SEGMENTER")
  for (k, v) in environment { env[k] = v }
  process.environment = env
  let stdoutURL = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sambatch-out-\(UUID().uuidString)")
  let stderrURL = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sambatch-err-\(UUID().uuidString)")
  FileManager.default.createFile(atPath: stdoutURL.path, contents: nil)
  FileManager.default.createFile(atPath: stderrURL.path, contents: nil)
  defer {
    try? FileManager.default.removeItem(at: stdoutURL)
    try? FileManager.default.removeItem(at: stderrURL)
  }
  process.standardOutput = try FileHandle(forWritingTo: stdoutURL)
  process.standardError = try FileHandle(forWritingTo: stderrURL)
  try process.run()
  var killed = false
  if let killAfter {
    let deadline = Date().addingTimeInterval(killAfter)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      killed = true
    }
  } else if let killWhen {
    while process.isRunning && !killWhen() { usleep(10_000) }
    if process.isRunning {
      kill(process.processIdentifier, SIGKILL)
      killed = true
    }
  }
  process.waitUntilExit()
  return ProcessResult(
    status: process.terminationStatus,
    stdout: (try? String(contentsOf: stdoutURL, encoding: .utf8)) ?? "",
    stderr: (try? String(contentsOf: stderrURL, encoding: .utf8)) ?? "", killed: killed)
}

/// The rows that must be identical between runs (no timings, run ids or run rows).
func resultDump(_ url: URL) throws -> [String] {
  let db = try DatabaseQueue(path: url.path)
  defer { try? db.close() }
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

func query<T: DatabaseValueConvertible>(_ url: URL, _ sql: String) throws -> T? {
  let db = try DatabaseQueue(path: url.path)
  defer { try? db.close() }
  return try db.read { try T.fetchOne($0, sql: sql) }
}

/// A job over `count` images: the four sample photos under several names (symbolic links), each
/// with boxes, as a JSON Lines manifest, plus one missing image and one bad prompt.
func makeSampleJob(in dir: URL, count: Int, extra: String = "") throws -> URL {
  let images = dir.appendingPathComponent("images")
  try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
  let photos: [(String, [[Int]])] = [
    ("picture1.jpg", [[120, 265, 637, 513], [204, 75, 458, 265]]),
    ("picture2.jpg", [[338, 124, 402, 505]]),
    ("picture3.jpg", [[265, 710, 1500, 1200], [1920, 790, 2180, 1200]]),
    ("picture5.jpg", [[1126, 448, 1666, 1195], [666, 885, 1172, 1218]]),
  ]
  var lines: [String] = []
  for i in 0..<count {
    let (photo, boxes) = photos[i % photos.count]
    let name = "img\(i)-\(photo)"
    try FileManager.default.createSymbolicLink(
      at: images.appendingPathComponent(name), withDestinationURL: Fixtures.url("images/\(photo)"))
    let objects = boxes.enumerated().map { #"{"id": "\#(i)-\#($0)", "label": "obj\#($0)", "box": \#($1)}"# }
    lines.append(#"{"image": "\#(name)", "objects": [\#(objects.joined(separator: ", "))]}"#)
  }
  lines.append(#"{"image": "missing.jpg", "objects": [{"box": [1, 1, 9, 9]}]}"#)
  lines.append(#"{"image": "img0-picture1.jpg", "objects": [{"id": "bad", "box": [5, 5, 5, 9]}]}"#)
  try lines.joined(separator: "\n").write(
    to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
  let job = dir.appendingPathComponent("job.yaml")
  try """
  version: 1
  database: results.db
  images: images
  manifests:
    - path: m.jsonl
      format: jsonl
  prompts:
    multimask: true
    keep: all
  workers: 2
  \(extra)
  """.write(to: job, atomically: true, encoding: .utf8)
  return job
}

/// Equal dumps, reporting the first difference only (rows hold long RLE strings).
func assertSameRows(
  _ actual: [String], _ expected: [String], file: StaticString = #filePath, line: UInt = #line
) {
  XCTAssertEqual(actual.count, expected.count, "row count", file: file, line: line)
  if let i = zip(actual, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
    XCTFail(
      "row \(i) differs:\n  got      \(actual[i].prefix(300))\n  expected \(expected[i].prefix(300))",
      file: file, line: line)
  }
}
