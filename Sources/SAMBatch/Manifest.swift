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
  /// The line of the manifest the object starts on, for messages (nil when built in code).
  public var line: Int?

  public init(
    sourceId: String? = nil, categoryId: Int? = nil, category: String? = nil, detectorScore: Double? = nil,
    box: [Double]? = nil, boxConvention: BoxConvention = .xyxy, points: [PromptPoint] = [], line: Int? = nil
  ) {
    self.sourceId = sourceId
    self.categoryId = categoryId
    self.category = category
    self.detectorScore = detectorScore
    self.box = box
    self.boxConvention = boxConvention
    self.points = points
    self.line = line
  }
}

/// One image of the job and its objects in manifest order.
public struct ManifestImage: Sendable, Equatable {
  /// The path as written in the manifest, normalized (`ImagePath.normalize`): relative to the
  /// job's image folder unless absolute.
  public var path: String
  public var objects: [ManifestObject]
  /// The image's id in a COCO manifest (kept for exports), nil for JSON Lines.
  public var sourceImageId: Int? = nil
  /// The line of the manifest that names the image, for messages.
  public var line: Int? = nil

  public init(path: String, objects: [ManifestObject], sourceImageId: Int? = nil, line: Int? = nil) {
    self.path = path
    self.objects = objects
    self.sourceImageId = sourceImageId
    self.line = line
  }
}

/// A manifest entry that was left out of the job (a malformed JSON Lines line, an object with a
/// field of the wrong type, a COCO annotation for an image the file does not list, a duplicate),
/// or a conflict resolved as the message says; the rest of the job goes on.
public struct ManifestProblem: Sendable, Equatable {
  public var file: String
  public var line: Int?
  public var message: String

  public init(file: String, line: Int?, message: String) {
    self.file = file
    self.line = line
    self.message = message
  }
}

/// Image paths as manifests write them, made comparable: `z.jpg`, `./z.jpg` and `a/../z.jpg` are
/// one image. Purely textual (no file system access, symbolic links are not followed); a relative
/// path may lead out of the images folder (`../other/z.jpg`), as an absolute path may.
public enum ImagePath {
  /// Drops `.` and empty components and resolves `..` against the component before it; nil when
  /// nothing is left to name a file (`""`, `.`, `a/..`, `/`).
  public static func normalize(_ path: String) -> String? {
    let absolute = path.hasPrefix("/")
    var parts: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
      switch part {
      case ".": continue
      case "..":
        if let last = parts.last, last != ".." {
          parts.removeLast()
        } else if !absolute {
          parts.append(part)  // above the images folder: kept, like any relative path
        }
      default: parts.append(part)
      }
    }
    guard let last = parts.last, last != ".." else { return nil }
    return (absolute ? "/" : "") + parts.joined(separator: "/")
  }

  /// The file a normalized manifest path names: absolute paths as they are, others under `folder`.
  public static func resolve(_ normalized: String, in folder: URL) -> String {
    if normalized.hasPrefix("/") { return normalized }
    return normalize(folder.standardizedFileURL.path + "/" + normalized) ?? normalized
  }
}

/// All manifests of a job, merged: images in order of first appearance.
public struct LoadedManifests: Sendable {
  public var images: [ManifestImage]
  public var problems: [ManifestProblem]
  /// Objects left out because their detector score is below `prompts.min_score`.
  public var belowMinScore: Int
  /// SHA-256 over every manifest's format, box convention and bytes (and paired images files).
  public var sha256: String
  /// What a run should tell the user about how the images were found (an everything job's files
  /// of other types left out), without being a problem of any image.
  public var notes: [String] = []

  /// Reads every manifest of the job. Throws only when a whole manifest cannot be used.
  ///
  /// Images are one image when their paths name the same file (`ImagePath`); an image named in
  /// several manifests gets all their objects. Within one manifest, an image listed twice with
  /// two ids (COCO) is a problem and the second entry is left out with its objects; two objects
  /// of one image with the same id are a problem and the second is left out. An image that has
  /// different ids in two manifests keeps the first and the conflict is reported.
  ///
  /// An everything job without manifests lists its images instead (`ImageListing`); with
  /// manifests, it takes their images and leaves their objects: it has no prompts.
  public static func load(_ job: JobFile) throws -> LoadedManifests {
    if job.everything != nil {
      if job.manifests.isEmpty { return try ImageListing.load(job) }
      var loaded = try load(prompted: job)
      for i in loaded.images.indices { loaded.images[i].objects = [] }
      return loaded
    }
    return try load(prompted: job)
  }

  private static func load(prompted job: JobFile) throws -> LoadedManifests {
    var order: [String] = []
    var merged: [String: ManifestImage] = [:]
    var firstFile: [String: String] = [:]
    var problems: [ManifestProblem] = []
    var hasher = SHA256()
    for spec in job.manifests {
      let file = spec.path.path
      let images = try read(spec, imagesFolder: job.images, hasher: &hasher, problems: &problems)
      // Image entries of a results list come from its images file.
      let imagesFile = spec.format == .cocoResults ? spec.images?.path ?? file : file
      // Per manifest: the entry that first named each file, and the ids of its objects.
      var entryOf: [String: ManifestImage] = [:]
      var objectIds: [String: [String: Int?]] = [:]
      for image in images {
        let key = ImagePath.resolve(image.path, in: job.images)
        if let earlier = entryOf[key], let id = image.sourceImageId, let earlierId = earlier.sourceImageId {
          problems.append(
            ManifestProblem(
              file: imagesFile, line: image.line,
              message:
                "image id \(id) names \(image.path), as image id \(earlierId)\(lineText(earlier.line)) does: "
                + "left out, with its \(plural(image.objects.count, "object"))"))
          continue
        }
        if entryOf[key] == nil { entryOf[key] = image }
        var kept: [ManifestObject] = []
        for object in image.objects {
          if let id = object.sourceId {
            if let earlier = objectIds[key]?[id] {
              problems.append(
                ManifestProblem(
                  file: file, line: object.line,
                  message:
                    "object id \(JSONWriter.string(id)) of \(image.path) appears twice\(earlier.map { " (first on line \($0))" } ?? ""): the second is left out"
                ))
              continue
            }
            objectIds[key, default: [:]][id] = object.line
          }
          kept.append(object)
        }
        if var existing = merged[key] {
          if let id = image.sourceImageId, let existingId = existing.sourceImageId, id != existingId {
            problems.append(
              ManifestProblem(
                file: imagesFile, line: image.line,
                message:
                  "\(image.path) is image id \(id) here but image id \(existingId) in \(firstFile[key] ?? "an earlier manifest"): it keeps id \(existingId)"
              ))
          }
          existing.sourceImageId = existing.sourceImageId ?? image.sourceImageId
          existing.objects += kept
          merged[key] = existing
        } else {
          order.append(key)
          firstFile[key] = imagesFile
          merged[key] = ManifestImage(
            path: image.path, objects: kept, sourceImageId: image.sourceImageId, line: image.line)
        }
      }
    }
    var below = 0
    var result: [ManifestImage] = []
    result.reserveCapacity(order.count)
    for key in order {
      guard var image = merged[key] else { continue }
      if let minScore = job.prompts.minScore {
        let count = image.objects.count
        image.objects.removeAll { ($0.detectorScore.map { $0 < minScore }) ?? false }
        below += count - image.objects.count
      }
      result.append(image)
    }
    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    return LoadedManifests(images: result, problems: problems, belowMinScore: below, sha256: digest)
  }

  /// One manifest's images as its reader gives them; its bytes (and those of a results list's
  /// images file, and a JSON Lines key mapping) go into the job's manifests hash.
  private static func read(
    _ spec: ManifestSpec, imagesFolder: URL, hasher: inout SHA256, problems: inout [ManifestProblem]
  ) throws -> [ManifestImage] {
    let file = spec.path.path
    // A yolo manifest is a folder: its reader hashes the names file and every label file it reads.
    let data = spec.format == .yolo ? Data() : try readManifest(spec.path)
    hasher.update(data: Data("\(spec.format.rawValue)|\(spec.box.rawValue)|\(data.count)|".utf8))
    hasher.update(data: data)
    switch spec.format {
    case .coco:
      return try ManifestReader.coco(data: data, file: file, box: spec.box, problems: &problems)
    case .cocoResults:
      guard let imagesURL = spec.images else {
        throw SAMBatchError.manifest(file: file, line: nil, message: "coco-results needs an images file")
      }
      let imagesData = try readManifest(imagesURL)
      hasher.update(data: Data("|images|\(imagesData.count)|".utf8))
      hasher.update(data: imagesData)
      return try ManifestReader.cocoResults(
        data: data, file: file, imagesData: imagesData, imagesFile: imagesURL.path, box: spec.box,
        problems: &problems)
    case .jsonl:
      if !spec.keys.isEmpty {
        // Another mapping reads other prompts from the same bytes.
        let mapping = spec.keys.keys.sorted().map { "\($0)=\(spec.keys[$0]!)" }.joined(separator: ",")
        hasher.update(data: Data("|keys|\(mapping)|".utf8))
      }
      return ManifestReader.jsonLines(
        data: data, file: file, box: spec.box, keys: JSONLinesKeys(spec.keys), problems: &problems)
    case .yolo:
      return try YOLOManifest.read(spec, imagesFolder: imagesFolder, hasher: &hasher, problems: &problems)
    }
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

/// " (line 3)", or nothing when the line is unknown.
func lineText(_ line: Int?) -> String {
  line.map { " (line \($0))" } ?? ""
}

/// "1 object", "3 objects".
func plural(_ count: Int, _ noun: String) -> String {
  "\(count) \(noun)\(count == 1 ? "" : "s")"
}

/// The keys a JSON Lines manifest uses for our fields, so that another tool's output (Grounding
/// DINO, GroundingSAM, ...) is read as it is written: `keys: {score: logit, label: phrase, box:
/// bbox}` in the job file. Fields not named keep their own key.
public struct JSONLinesKeys: Sendable, Equatable {
  /// Our fields: a line's, then an object's.
  public static let lineFields = ["image", "objects"]
  public static let objectFields = ["box", "points", "label", "category_id", "score", "id"]
  public static var fields: [String] { lineFields + objectFields }

  /// Our field -> the file's key, for the renamed fields only.
  public var renamed: [String: String]

  public init(_ renamed: [String: String] = [:]) {
    self.renamed = renamed
  }

  /// The file's key for one of our fields.
  public func key(_ field: String) -> String { renamed[field] ?? field }

  /// Why the mapping cannot be used, or nil: unknown fields, empty keys, two fields read from one key.
  public var problem: String? {
    if let field = renamed.keys.sorted().first(where: { !Self.fields.contains($0) }) {
      return "'\(field)' is not a field (fields: \(Self.fields.joined(separator: ", ")))"
    }
    if let field = renamed.keys.sorted().first(where: { renamed[$0]!.isEmpty }) {
      return "'\(field)' needs a key name"
    }
    for group in [Self.lineFields, Self.objectFields] {
      let keys = group.map(key)
      if let twice = keys.first(where: { k in keys.filter { $0 == k }.count > 1 }) {
        let fields = group.filter { key($0) == twice }
        return "\(fields.map { "'\($0)'" }.joined(separator: " and ")) are both read from '\(twice)'"
      }
    }
    return nil
  }
}

/// Parsers for the manifest formats documented in Schemas/manifests.md.
public enum ManifestReader {
  /// The objects of a foreign line without an objects list, from the object fields it holds
  /// itself: as columns, one list per field with one value per object (as Grounding DINO returns
  /// `boxes`, `logits`, `phrases`), or as the line's one object (one detection per line).
  static func lineObjects(_ line: JSONObject, keys: JSONLinesKeys, objectKeys: [String])
    throws(JSONFieldError)
    -> [JSONValue]
  {
    let fields = objectKeys.compactMap { key in line.present(key).map { (key: key, value: $0) } }
    guard !fields.isEmpty else { return [] }
    // Columns when every field is a list of per-object values: a box column is a list of boxes,
    // a points column a list of point lists.
    let depth = [keys.key("box"): 1, keys.key("points"): 2]
    func nested(_ value: JSONValue, _ levels: Int) -> Bool {
      guard levels > 0 else { return true }
      guard let items = value.array else { return false }
      return items.allSatisfy { nested($0, levels - 1) }
    }
    guard fields.allSatisfy({ nested($0.value, 1 + (depth[$0.key] ?? 0)) }) else { return [.object(line)] }
    let columns = fields.map { (key: $0.key, values: $0.value.array ?? []) }
    let first = columns[0]
    if let other = columns.first(where: { $0.values.count != first.values.count }) {
      throw JSONFieldError(
        "the columns '\(first.key)' (\(plural(first.values.count, "value"))) and '\(other.key)' "
          + "(\(plural(other.values.count, "value"))) must have one value per object")
    }
    return (0..<first.values.count).map { row in
      .object(JSONObject(columns.map { JSONObject.Entry($0.key, $0.values[row]) }, line: line.line))
    }
  }

  /// JSON Lines: one image per line, `{"image": "a.jpg", "objects": [{"box": [...], "points":
  /// [[x, y, label], ...], "label": "car", "score": 0.9, "id": "7"}]}`. Blank lines are skipped;
  /// a line that cannot be read, and an object with a field that breaks the rule of its type, is
  /// recorded as a problem (file, line, what and why) and left out; the rest is read.
  ///
  /// With `keys` renaming fields, other keys are ignored (another tool's output has its own
  /// extras), and a renamed key that no line or object of the file has is reported once, as the
  /// sign of a typo in the mapping.
  public static func jsonLines(
    data: Data, file: String, box: BoxConvention, keys: JSONLinesKeys = JSONLinesKeys(),
    problems: inout [ManifestProblem]
  ) -> [ManifestImage] {
    var result: [ManifestImage] = []
    let reader = JSONReader()
    let foreign = !keys.renamed.isEmpty
    let lineKeys = JSONLinesKeys.lineFields.map(keys.key)
    let objectKeys = JSONLinesKeys.objectFields.map(keys.key)
    var unseen = Set(keys.renamed.values)
    func allow(_ o: JSONObject, _ allowed: [String]) throws(JSONFieldError) {
      if foreign {
        try o.checkDuplicateKeys()
        for key in o.keys { unseen.remove(key) }
      } else {
        try o.checkKeys(allowed: allowed)
      }
    }
    var lineNumber = 0
    for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
      lineNumber += 1
      func problem(_ message: String) {
        problems.append(ManifestProblem(file: file, line: lineNumber, message: message))
      }
      if rawLine.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
      let parsed: JSONValue
      do throws(JSONSyntaxError) {
        parsed = try reader.parse(Data(rawLine))
      } catch {
        problem("not valid JSON: column \(error.column): \(error.reason)")
        continue
      }
      guard let line = parsed.object else {
        problem("not a JSON object (a line is {\"image\": ..., \"objects\": [...]})")
        continue
      }
      let path: String
      let objects: [JSONValue]
      do throws(JSONFieldError) {
        try allow(line, lineKeys)
        let imageKey = keys.key("image")
        guard let image = try line.string(imageKey) else { throw JSONFieldError("no '\(imageKey)' path") }
        guard let normalized = ImagePath.normalize(image) else {
          throw JSONFieldError("'\(imageKey)' \(JSONWriter.string(image)) does not name a file")
        }
        path = normalized
        if let list = try line.list(keys.key("objects")) {
          objects = list
        } else if foreign {
          objects = try lineObjects(line, keys: keys, objectKeys: objectKeys)
        } else {
          objects = []
        }
      } catch {
        problem(error.message)
        continue
      }
      var image = ManifestImage(path: path, objects: [], line: lineNumber)
      for (i, item) in objects.enumerated() {
        do throws(JSONFieldError) {
          guard let o = item.object else { throw JSONFieldError("not a JSON object") }
          try allow(o, objectKeys)
          image.objects.append(
            ManifestObject(
              sourceId: try o.identifier(keys.key("id")), categoryId: try o.integer(keys.key("category_id")),
              category: try o.string(keys.key("label")), detectorScore: try o.finiteNumber(keys.key("score")),
              box: try o.box(keys.key("box")), boxConvention: box,
              points: try o.points(keys.key("points")) ?? [],
              line: lineNumber))
        } catch {
          problem("objects[\(i)]: \(error.message)")
        }
      }
      result.append(image)
    }
    for field in JSONLinesKeys.fields {
      guard let key = keys.renamed[field], unseen.contains(key) else { continue }
      problems.append(
        ManifestProblem(
          file: file, line: nil,
          message: "keys: '\(field)' is read from '\(key)', but no line or object of the file has that key"))
    }
    return result
  }
}
