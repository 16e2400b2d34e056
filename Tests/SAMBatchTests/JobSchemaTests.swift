import Foundation
import SAMBatch
import TestSupport
import XCTest
import Yams

/// Holds the job decoder against Schemas/job.schema.json, and the example jobs against both.
final class JobSchemaTests: XCTestCase {
  func schema() throws -> [String: Any] {
    let data = try Data(contentsOf: Fixtures.repository.appendingPathComponent("Schemas/job.schema.json"))
    return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
  }

  /// Dotted key paths of every property the schema declares (`[]` for array items).
  func keyPaths(_ node: [String: Any], prefix: String) -> [String] {
    var result: [String] = []
    if let properties = node["properties"] as? [String: Any] {
      for (key, value) in properties {
        let path = prefix.isEmpty ? key : "\(prefix).\(key)"
        result.append(path)
        if let child = value as? [String: Any] { result += keyPaths(child, prefix: path) }
      }
    }
    if let items = node["items"] as? [String: Any] { result += keyPaths(items, prefix: prefix + "[]") }
    return result
  }

  func testDecoderKeysEqualSchemaKeys() throws {
    let schemaKeys = Set(keyPaths(try schema(), prefix: ""))
    let decoderKeys = Set(JobFile.acceptedKeys)
    XCTAssertEqual(schemaKeys.subtracting(decoderKeys), [], "in the schema but not accepted by the decoder")
    XCTAssertEqual(decoderKeys.subtracting(schemaKeys), [], "accepted by the decoder but not in the schema")
  }

  /// Every key in acceptedKeys really is accepted by the decoder, and a sibling typo is not.
  func testAcceptedKeysAreReallyAccepted() throws {
    let yaml = """
      version: 1
      model: m.pt
      database: r.db
      images: img
      exif: false
      workers: 3
      manifests:
        - {path: d.json, format: coco-results, images: i.json, box: xyxy}
        - {path: labels, format: yolo, names: data.yaml}
      prompts: {multimask: true, keep: all, min_score: 0.5}
      """
    let job = try JobFile.parse(yaml: yaml, jobURL: URL(fileURLWithPath: "/j/job.yaml"))
    XCTAssertEqual(job.manifests[1].names?.path, "/j/data.yaml")
    XCTAssertEqual(job.manifests[1].box, .cxcywhNormalized)
    XCTAssertEqual(job.exif, false)
    XCTAssertEqual(job.workers, 3)
    XCTAssertEqual(job.prompts, PromptOptions(multimask: true, keep: .all, minScore: 0.5))
  }

  func testExampleJobsValidateAgainstSchemaAndDecoder() throws {
    let schema = try schema()
    let jobs = try FileManager.default.contentsOfDirectory(
      atPath: Fixtures.repository.appendingPathComponent("Jobs").path
    )
    .filter { $0.hasSuffix(".yaml") }
    XCTAssertGreaterThanOrEqual(jobs.count, 2)
    for name in jobs {
      let url = Fixtures.repository.appendingPathComponent("Jobs/\(name)")
      let value = try XCTUnwrap(Yams.load(yaml: try String(contentsOf: url, encoding: .utf8)))
      XCTAssertEqual(MiniSchema.errors(value, schema, path: name), [], name)
      let job = try JobFile.load(contentsOf: url)
      for m in job.manifests {
        XCTAssertTrue(FileManager.default.fileExists(atPath: m.path.path), "\(name): \(m.path.path)")
      }
    }
  }

  func testExampleJSONLinesValidateAgainstTheLineSchema() throws {
    let data = try Data(
      contentsOf: Fixtures.repository.appendingPathComponent("Schemas/jsonl-line.schema.json"))
    let schema = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    let text = try String(
      contentsOf: Fixtures.repository.appendingPathComponent("Jobs/example.jsonl"), encoding: .utf8)
    let lines = text.split(separator: "\n")
    XCTAssertFalse(lines.isEmpty)
    for line in lines {
      let value = try JSONSerialization.jsonObject(with: Data(line.utf8))
      XCTAssertEqual(MiniSchema.errors(value, schema, path: "line"), [])
    }
    let bad = try JSONSerialization.jsonObject(
      with: Data(#"{"image": "a.jpg", "objects": [{"bbox": [1, 2, 3, 4]}]}"#.utf8))
    XCTAssertFalse(MiniSchema.errors(bad, schema, path: "line").isEmpty, "unknown object key")
    // The reader agrees: the same object is rejected.
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(#"{"image": "a.jpg", "objects": [{"bbox": [1, 2, 3, 4]}]}"#.utf8), file: "m", box: .xyxy,
      problems: &problems)
    XCTAssertEqual(images.first?.objects, [])
    XCTAssertEqual(problems.map(\.message).first?.contains("unknown key 'bbox'"), true)
  }

  func testMiniValidatorRejectsWhatItShould() throws {
    let schema = try schema()
    XCTAssertFalse(
      MiniSchema.errors(
        ["version": 1, "manifests": [["path": "a", "format": "coco"]], "x": 1], schema, path: ""
      ).isEmpty)
    XCTAssertFalse(
      MiniSchema.errors(["version": 1, "manifests": [["path": "a", "format": "tsv"]]], schema, path: "")
        .isEmpty)
    XCTAssertFalse(
      MiniSchema.errors(
        ["version": 1, "manifests": [["path": "a", "format": "coco"]], "workers": 0], schema, path: ""
      ).isEmpty)
    XCTAssertFalse(MiniSchema.errors(["version": 1], schema, path: "").isEmpty)
    XCTAssertEqual(MiniSchema.errors(["version": 1, "everything": [String: Any]()], schema, path: ""), [])
    XCTAssertFalse(
      MiniSchema.errors(["version": 1, "everything": ["points_per_sides": 4]], schema, path: "").isEmpty)
    XCTAssertEqual(
      MiniSchema.errors(["version": 1, "manifests": [["path": "a", "format": "coco"]]], schema, path: ""), [])
  }
}

/// The JSON Schema keywords our schemas use: type, const, enum, required, anyOf (of required
/// lists), properties, additionalProperties: false, items, minItems, minimum, minLength.
enum MiniSchema {
  static func errors(_ value: Any, _ schema: [String: Any], path: String) -> [String] {
    var errors: [String] = []
    if let type = schema["type"] as? String, !matches(value, type) { errors.append("\(path): not a \(type)") }
    if let c = schema["const"], "\(c)" != "\(value)" { errors.append("\(path): must be \(c)") }
    if let options = schema["enum"] as? [Any], !options.contains(where: { "\($0)" == "\(value)" }) {
      errors.append("\(path): \(value) not in \(options)")
    }
    if let minimum = schema["minimum"] as? Double, let n = value as? Int, Double(n) < minimum {
      errors.append("\(path): below \(minimum)")
    }
    if let minLength = schema["minLength"] as? Int, let s = value as? String, s.count < minLength {
      errors.append("\(path): too short")
    }
    if let object = value as? [String: Any] {
      let properties = schema["properties"] as? [String: Any] ?? [:]
      for key in schema["required"] as? [String] ?? [] where object[key] == nil {
        errors.append("\(path): \(key) missing")
      }
      if let options = schema["anyOf"] as? [[String: Any]],
        !options.contains(where: { Self.errors(object, $0, path: path).isEmpty })
      {
        errors.append("\(path): matches none of \(options)")
      }
      for (key, child) in object {
        if let sub = properties[key] as? [String: Any] {
          errors += self.errors(child, sub, path: "\(path).\(key)")
        } else if schema["additionalProperties"] as? Bool == false {
          errors.append("\(path): unknown key \(key)")
        }
      }
    }
    if let list = value as? [Any] {
      if let minItems = schema["minItems"] as? Int, list.count < minItems {
        errors.append("\(path): too few items")
      }
      if let items = schema["items"] as? [String: Any] {
        for (i, item) in list.enumerated() { errors += self.errors(item, items, path: "\(path)[\(i)]") }
      }
    }
    return errors
  }

  static func matches(_ value: Any, _ type: String) -> Bool {
    switch type {
    case "object": return value is [String: Any]
    case "array": return value is [Any]
    case "string": return value is String
    case "boolean": return value is Bool
    case "integer": return value is Int
    case "number": return value is Int || value is Double
    default: return true
    }
  }
}
