import Crypto
import Foundation
import MobileSAM

/// One object of a manifest: a box and/or points, as written (the box in the manifest's
/// convention; converted once the image's decoded size is known).
public struct ManifestObject: Sendable, Equatable {
  public var sourceId: String?
  public var categoryId: Int?
  public var category: String?
  public var detectorScore: Double?
  /// Four numbers in `boxConvention`, or nil.
  public var box: [Double]?
  public var boxConvention: BoxConvention
  public var points: [PromptPoint]
  /// Why this object cannot become a prompt (a malformed entry); recorded, never thrown.
  public var error: String?

  public init(
    sourceId: String? = nil, categoryId: Int? = nil, category: String? = nil, detectorScore: Double? = nil,
    box: [Double]? = nil, boxConvention: BoxConvention = .xyxy, points: [PromptPoint] = [],
    error: String? = nil
  ) {
    self.sourceId = sourceId
    self.categoryId = categoryId
    self.category = category
    self.detectorScore = detectorScore
    self.box = box
    self.boxConvention = boxConvention
    self.points = points
    self.error = error
  }
}

/// One image of the job and its objects in manifest order.
public struct ManifestImage: Sendable, Equatable {
  /// The path as written in the manifest (relative to the job's image root unless absolute).
  public var path: String
  public var objects: [ManifestObject]
  /// The image's id in a COCO manifest (kept for exports), nil for JSON Lines.
  public var sourceImageId: Int? = nil

  public init(path: String, objects: [ManifestObject], sourceImageId: Int? = nil) {
    self.path = path
    self.objects = objects
    self.sourceImageId = sourceImageId
  }
}

/// A manifest entry that could not be read (a malformed JSON Lines line, a COCO annotation for an
/// image the file does not list); the rest of the job goes on.
public struct ManifestProblem: Sendable, Equatable {
  public var file: String
  public var line: Int?
  public var message: String
}

/// All manifests of a job, merged: images in order of first appearance.
public struct LoadedManifests: Sendable {
  public var images: [ManifestImage]
  public var problems: [ManifestProblem]
  /// Objects left out because their detector score is below `prompts.min_score`.
  public var belowMinScore: Int
  /// SHA-256 over every manifest's format, box convention and bytes (and paired images files).
  public var sha256: String

  /// Reads every manifest of the job. Throws only when a whole manifest cannot be used.
  public static func load(_ job: JobFile) throws -> LoadedManifests {
    var order: [String] = []
    var byPath: [String: [ManifestObject]] = [:]
    var sourceIds: [String: Int] = [:]
    var problems: [ManifestProblem] = []
    var hasher = SHA256()
    var below = 0
    for spec in job.manifests {
      if spec.format == .yolo {
        // A folder, not a file: its reader hashes the names file and every label file it reads.
        hasher.update(data: Data("\(spec.format.rawValue)|\(spec.box.rawValue)|".utf8))
        let images = try YOLOManifest.read(
          spec, imagesFolder: job.images, hasher: &hasher, problems: &problems)
        for image in images where byPath[image.path] == nil {
          order.append(image.path)
          byPath[image.path] = []
        }
        for image in images {
          for object in image.objects {
            if let minScore = job.prompts.minScore, let score = object.detectorScore, score < minScore {
              below += 1
              continue
            }
            byPath[image.path]?.append(object)
          }
        }
        continue
      }
      let data = try readManifest(spec.path)
      hasher.update(data: Data("\(spec.format.rawValue)|\(spec.box.rawValue)|\(data.count)|".utf8))
      hasher.update(data: data)
      let images: [ManifestImage]
      switch spec.format {
      case .yolo: continue  // read above
      case .coco:
        images = try ManifestReader.coco(data: data, file: spec.path.path, box: spec.box, problems: &problems)
      case .cocoResults:
        guard let imagesURL = spec.images else {
          throw SAMBatchError.manifest(
            file: spec.path.path, line: nil, message: "coco-results needs an images file")
        }
        let imagesData = try readManifest(imagesURL)
        hasher.update(data: Data("|images|\(imagesData.count)|".utf8))
        hasher.update(data: imagesData)
        images = try ManifestReader.cocoResults(
          data: data, file: spec.path.path, imagesData: imagesData, imagesFile: imagesURL.path, box: spec.box,
          problems: &problems)
      case .jsonl:
        images = ManifestReader.jsonLines(
          data: data, file: spec.path.path, box: spec.box, problems: &problems)
      }
      for image in images {
        if byPath[image.path] == nil {
          order.append(image.path)
          byPath[image.path] = []
        }
        if sourceIds[image.path] == nil { sourceIds[image.path] = image.sourceImageId }
        for object in image.objects {
          if let minScore = job.prompts.minScore, let score = object.detectorScore, score < minScore {
            below += 1
            continue
          }
          byPath[image.path]?.append(object)
        }
      }
    }
    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    return LoadedManifests(
      images: order.map { ManifestImage(path: $0, objects: byPath[$0] ?? [], sourceImageId: sourceIds[$0]) },
      problems: problems,
      belowMinScore: below, sha256: digest)
  }

  private static func readManifest(_ url: URL) throws -> Data {
    do {
      return try Data(contentsOf: url)
    } catch {
      throw SAMBatchError.manifest(
        file: url.path, line: nil, message: "cannot read the manifest (\(fileReadCause(url, error)))")
    }
  }
}

/// Parsers for the manifest formats documented in Schemas/manifests.md.
public enum ManifestReader {
  /// JSON Lines: one image per line, `{"image": "a.jpg", "objects": [{"box": [...], "points":
  /// [[x, y, label], ...], "label": "car", "score": 0.9, "id": "7"}]}`. Blank lines are skipped;
  /// a malformed line is recorded as a problem and the rest is read.
  public static func jsonLines(
    data: Data, file: String, box: BoxConvention, problems: inout [ManifestProblem]
  )
    -> [ManifestImage]
  {
    var result: [ManifestImage] = []
    let text = String(decoding: data, as: UTF8.self)
    for (i, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
      let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
      if line.isEmpty { continue }
      func problem(_ message: String) {
        problems.append(ManifestProblem(file: file, line: i + 1, message: message))
      }
      let parsed: Any
      do { parsed = try parseJSON(Data(line.utf8)) } catch {
        problem("not valid JSON: \(parseFailure(error))")
        continue
      }
      guard let object = parsed as? [String: Any] else {
        problem("not a JSON object")
        continue
      }
      if let unknown = object.keys.sorted().first(where: { !["image", "objects"].contains($0) }) {
        problem("unknown key '\(unknown)' (a line has 'image' and 'objects')")
        continue
      }
      guard let path = object["image"] as? String, !path.isEmpty else {
        problem("no 'image' path")
        continue
      }
      guard let objects = (object["objects"] ?? [Any]()) as? [Any] else {
        problem("'objects' must be a list")
        continue
      }
      result.append(
        ManifestImage(
          path: path, objects: objects.enumerated().map { jsonLinesObject($1, index: $0, box: box) }))
    }
    return result
  }

  private static let jsonLinesObjectKeys = ["box", "points", "label", "category_id", "score", "id"]

  private static func jsonLinesObject(_ item: Any, index: Int, box: BoxConvention) -> ManifestObject {
    var object = ManifestObject(boxConvention: box)
    guard let o = item as? [String: Any] else {
      object.error = "object \(index) is not a JSON object"
      return object
    }
    if let unknown = o.keys.sorted().first(where: { !jsonLinesObjectKeys.contains($0) }) {
      object.error =
        "object \(index): unknown key '\(unknown)' (allowed: \(jsonLinesObjectKeys.joined(separator: ", ")))"
      return object
    }
    // A field of the wrong type rejects the object, naming the field: dropping it would lose the
    // id, or let a score like "high" slip past min_score. null counts as absent.
    func wrongType(_ key: String, _ expected: String) -> ManifestObject {
      object.error = "object \(index): '\(key)' must be \(expected), got \(jsonText(o[key] ?? NSNull()))"
      return object
    }
    if let id = present(o["id"]) {
      if let s = id as? String, !isNonFinitePlaceholder(s) {
        object.sourceId = s
      } else if let n = integer(id) {
        object.sourceId = String(n)
      } else {
        return wrongType("id", "a string or an integer")
      }
    }
    if let label = present(o["label"]) {
      guard let s = label as? String, !isNonFinitePlaceholder(s) else {
        return wrongType("label", "a string")
      }
      object.category = s
    }
    if let categoryId = present(o["category_id"]) {
      guard let n = integer(categoryId) else { return wrongType("category_id", "an integer") }
      object.categoryId = n
    }
    if let score = present(o["score"]) {
      guard let d = number(score), d.isFinite else { return wrongType("score", "a finite number") }
      object.detectorScore = d
    }
    if let b = o["box"] {
      guard let values = numbers(b), values.count == 4 else {
        object.error = "object \(index): 'box' must be a list of 4 numbers"
        return object
      }
      object.box = values
    }
    if let p = o["points"] {
      guard let list = p as? [Any] else {
        object.error = "object \(index): 'points' must be a list of [x, y, label]"
        return object
      }
      for (j, entry) in list.enumerated() {
        guard let v = numbers(entry), v.count == 3, let label = Int(exactly: v[2]) else {
          object.error = "object \(index): point \(j) must be [x, y, label] with label 1 or 0"
          return object
        }
        object.points.append(PromptPoint(x: Float(v[0]), y: Float(v[1]), label: label))
      }
    }
    return object
  }

  /// nil for an absent key or JSON null.
  static func present(_ value: Any?) -> Any? {
    guard let value, !(value is NSNull) else { return nil }
    return value
  }

  static func isNonFinitePlaceholder(_ s: String) -> Bool { nonFinite[s] != nil }

  /// A value as it reads in the manifest, for messages.
  static func jsonText(_ value: Any) -> String {
    if let s = value as? String, let d = nonFinite[s] {
      return d.isNaN ? "NaN" : d > 0 ? "Infinity" : "-Infinity"
    }
    if value is NSNull { return "null" }
    if let s = value as? String { return jsonString(s) }
    if let n = number(value) { return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : "\(n)" }
    if value is [Any] { return "a list" }
    if value is [String: Any] { return "an object" }
    return "\(value)"
  }

  /// Why JSONSerialization refused a text, in its own words where it gives them.
  static func parseFailure(_ error: Error) -> String {
    let ns = error as NSError
    if let detail = ns.userInfo[NSDebugDescriptionErrorKey] as? String, !detail.isEmpty { return detail }
    return error.localizedDescription
  }

  /// Placeholders `parseJSON` puts where the text had Python's non-standard NaN / Infinity.
  static let nonFinite: [String: Double] = [
    "\u{1}NaN": .nan, "\u{1}Infinity": .infinity, "\u{1}-Infinity": -.infinity,
  ]

  static func number(_ value: Any) -> Double? {
    if let s = value as? String { return nonFinite[s] }
    // Foundation hands JSON true/false over as NSNumber too, and on Linux `is Bool` holds for 1.
    guard let n = value as? NSNumber, String(describing: type(of: n)) != "__NSCFBoolean" else { return nil }
    return n.doubleValue
  }

  /// JSONSerialization, after turning Python's `NaN`, `Infinity` and `-Infinity` tokens (which
  /// `json.dumps` writes for non-finite floats) into placeholder strings, so that a detector's NaN
  /// box is recorded against its prompt instead of making the whole entry unreadable.
  static func parseJSON(_ data: Data) throws -> Any {
    try JSONSerialization.jsonObject(with: replaceNonFiniteTokens(data))
  }

  static func replaceNonFiniteTokens(_ data: Data) -> Data {
    let bytes = [UInt8](data)
    guard bytes.contains(UInt8(ascii: "N")) || bytes.contains(UInt8(ascii: "I")) else { return data }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count + 16)
    var inString = false
    var i = 0
    while i < bytes.count {
      let b = bytes[i]
      if inString {
        out.append(b)
        if b == UInt8(ascii: "\\"), i + 1 < bytes.count {
          out.append(bytes[i + 1])
          i += 2
          continue
        }
        if b == UInt8(ascii: "\"") { inString = false }
        i += 1
        continue
      }
      if b == UInt8(ascii: "\"") { inString = true }
      var replaced = false
      for token in ["-Infinity", "Infinity", "NaN"] {
        let t = Array(token.utf8)
        if i + t.count <= bytes.count, Array(bytes[i..<i + t.count]) == t {
          out.append(contentsOf: Array("\"\\u0001\(token)\"".utf8))
          i += t.count
          replaced = true
          break
        }
      }
      if !replaced {
        out.append(b)
        i += 1
      }
    }
    return Data(out)
  }

  static func integer(_ value: Any?) -> Int? {
    guard let value, let d = number(value), d == d.rounded(), abs(d) < 1e15 else { return nil }
    return Int(d)
  }

  static func numbers(_ value: Any) -> [Double]? {
    guard let list = value as? [Any] else { return nil }
    var result: [Double] = []
    for v in list {
      // JSON has no NaN; `null` stands for a missing value and makes the entry malformed.
      guard let d = number(v) else { return nil }
      result.append(d)
    }
    return result
  }
}
