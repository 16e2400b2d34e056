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

  /// Reads every manifest of the job. Throws only when a whole manifest cannot be used.
  ///
  /// Images are one image when their paths name the same file (`ImagePath`); an image named in
  /// several manifests gets all their objects. Within one manifest, an image listed twice with
  /// two ids (COCO) is a problem and the second entry is left out with its objects; two objects
  /// of one image with the same id are a problem and the second is left out. An image that has
  /// different ids in two manifests keeps the first and the conflict is reported.
  public static func load(_ job: JobFile) throws -> LoadedManifests {
    var order: [String] = []
    var merged: [String: ManifestImage] = [:]
    var firstFile: [String: String] = [:]
    var problems: [ManifestProblem] = []
    var hasher = SHA256()
    for spec in job.manifests {
      let file = spec.path.path
      // A yolo manifest is a folder: its reader hashes the names file and every label file it reads.
      let data = spec.format == .yolo ? Data() : try readManifest(spec.path)
      hasher.update(data: Data("\(spec.format.rawValue)|\(spec.box.rawValue)|\(data.count)|".utf8))
      hasher.update(data: data)
      let images: [ManifestImage]
      switch spec.format {
      case .coco:
        images = try ManifestReader.coco(data: data, file: file, box: spec.box, problems: &problems)
      case .cocoResults:
        guard let imagesURL = spec.images else {
          throw SAMBatchError.manifest(file: file, line: nil, message: "coco-results needs an images file")
        }
        let imagesData = try readManifest(imagesURL)
        hasher.update(data: Data("|images|\(imagesData.count)|".utf8))
        hasher.update(data: imagesData)
        images = try ManifestReader.cocoResults(
          data: data, file: file, imagesData: imagesData, imagesFile: imagesURL.path, box: spec.box,
          problems: &problems)
      case .jsonl:
        images = ManifestReader.jsonLines(data: data, file: file, box: spec.box, problems: &problems)
      case .yolo:
        images = try YOLOManifest.read(spec, imagesFolder: job.images, hasher: &hasher, problems: &problems)
      }
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

/// Parsers for the manifest formats documented in Schemas/manifests.md.
public enum ManifestReader {
  /// The keys of a JSON Lines object.
  static let jsonLinesObjectKeys = ["box", "points", "label", "category_id", "score", "id"]

  /// JSON Lines: one image per line, `{"image": "a.jpg", "objects": [{"box": [...], "points":
  /// [[x, y, label], ...], "label": "car", "score": 0.9, "id": "7"}]}`. Blank lines are skipped;
  /// a line that cannot be read, and an object with a field that breaks the rule of its type, is
  /// recorded as a problem (file, line, what and why) and left out; the rest is read.
  public static func jsonLines(
    data: Data, file: String, box: BoxConvention, problems: inout [ManifestProblem]
  ) -> [ManifestImage] {
    var result: [ManifestImage] = []
    let reader = JSONReader()
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
        try line.checkKeys(allowed: ["image", "objects"])
        guard let image = try line.string("image") else { throw JSONFieldError("no 'image' path") }
        guard let normalized = ImagePath.normalize(image) else {
          throw JSONFieldError("'image' \(JSONWriter.string(image)) does not name a file")
        }
        path = normalized
        objects = try line.list("objects") ?? []
      } catch {
        problem(error.message)
        continue
      }
      var image = ManifestImage(path: path, objects: [], line: lineNumber)
      for (i, item) in objects.enumerated() {
        do throws(JSONFieldError) {
          guard let o = item.object else { throw JSONFieldError("not a JSON object") }
          try o.checkKeys(allowed: jsonLinesObjectKeys)
          image.objects.append(
            ManifestObject(
              sourceId: try o.identifier("id"), categoryId: try o.integer("category_id"),
              category: try o.string("label"), detectorScore: try o.finiteNumber("score"),
              box: try o.box("box"), boxConvention: box, points: try o.points("points") ?? [],
              line: lineNumber))
        } catch {
          problem("objects[\(i)]: \(error.message)")
        }
      }
      result.append(image)
    }
    return result
  }
}
