import Foundation
import SAMImage
import Yams

/// How a manifest's boxes are written. Every convention is turned into corner form
/// (x0, y0, x1, y1) in pixels of the decoded (oriented) image before it reaches the model.
public enum BoxConvention: String, Sendable, CaseIterable, Codable {
  /// COCO: top-left corner, width, height, in pixels.
  case xywh
  /// Corners (x0, y0, x1, y1) in pixels.
  case xyxy
  /// Centre, width, height, in pixels.
  case cxcywh
  /// Centre, width, height as fractions of the image size, as Grounding DINO writes them.
  case cxcywhNormalized = "cxcywh-normalized"
  /// Corners as fractions of the image size.
  case xyxyNormalized = "xyxy-normalized"

  /// Corners in pixels from four numbers in this convention, for an image of the given size.
  public func corners(_ v: [Double], width: Int, height: Int) -> [Double] {
    let w = Double(width)
    let h = Double(height)
    switch self {
    case .xywh: return [v[0], v[1], v[0] + v[2], v[1] + v[3]]
    case .xyxy: return v
    case .cxcywh: return [v[0] - v[2] / 2, v[1] - v[3] / 2, v[0] + v[2] / 2, v[1] + v[3] / 2]
    case .cxcywhNormalized:
      return [(v[0] - v[2] / 2) * w, (v[1] - v[3] / 2) * h, (v[0] + v[2] / 2) * w, (v[1] + v[3] / 2) * h]
    case .xyxyNormalized: return [v[0] * w, v[1] * h, v[2] * w, v[3] * h]
    }
  }
}

public enum ManifestFormat: String, Sendable, CaseIterable, Codable {
  /// A COCO instances file: each annotation is one box prompt.
  case coco
  /// A COCO detection results list, paired with an instances file (`images:`) for the images.
  case cocoResults = "coco-results"
  /// Our native format: one image per line with its objects.
  case jsonl
  /// A folder of YOLO detection label files (`<stem>.txt`: `class cx cy w h [confidence]`,
  /// normalized), class names from a dataset YAML (`names:`).
  case yolo

  var defaultBoxConvention: BoxConvention {
    switch self {
    case .coco, .cocoResults: return .xywh
    case .jsonl: return .xyxy
    case .yolo: return .cxcywhNormalized
    }
  }
}

/// One `manifests:` entry of a job file, paths resolved against the job file's folder.
public struct ManifestSpec: Sendable, Equatable {
  public var path: URL
  public var format: ManifestFormat
  /// For `coco-results`: the instances file that lists the images.
  public var images: URL?
  public var box: BoxConvention
  /// For `yolo`: the dataset YAML with the class names.
  public var names: URL?
  /// For `jsonl`: our field -> the file's key (`JSONLinesKeys`), for the renamed fields only.
  public var keys: [String: String]

  public init(
    path: URL, format: ManifestFormat, images: URL? = nil, box: BoxConvention? = nil, names: URL? = nil,
    keys: [String: String] = [:]
  ) {
    self.path = path
    self.format = format
    self.images = images
    self.box = box ?? format.defaultBoxConvention
    self.names = names
    self.keys = keys
  }
}

public enum KeepMasks: String, Sendable, CaseIterable, Codable {
  /// Only the mask with the highest predicted IoU (first on ties), keeping its index.
  case best
  /// Every mask the model returns (1, or 3 with multimask).
  case all
}

public struct PromptOptions: Sendable, Equatable {
  public var multimask: Bool = false
  public var keep: KeepMasks = .best
  /// Objects whose detector score is below this are left out (objects without a score are kept).
  public var minScore: Double?

  public init(multimask: Bool = false, keep: KeepMasks = .best, minScore: Double? = nil) {
    self.multimask = multimask
    self.keep = keep
    self.minScore = minScore
  }
}

/// A parsed and checked job file. Relative paths are resolved against the job file's folder.
public struct JobFile: Sendable, Equatable {
  public var url: URL
  public var version: Int
  /// The model as written in the job (nil when the job leaves it to `SAMBATCH_MODEL`).
  public var model: URL?
  public var database: URL
  /// The folder the manifests' image paths are relative to.
  public var images: URL
  /// Apply EXIF orientation when decoding (as `sambatch predict` does by default).
  public var exif: Bool
  /// Empty in an everything job that lists its images from `images:` or `image_list`.
  public var manifests: [ManifestSpec]
  public var prompts: PromptOptions
  /// Set in an everything job: every image is segmented by the automatic mask generator with
  /// these parameters, without prompts.
  public var everything: EverythingParameters?
  /// An everything job's list of images (one path a line, relative to `images`); nil with
  /// manifests, or when every image under `images` is taken (`ImageListing`).
  public var imageList: URL?
  /// The compute threads the job may use in all.
  public var workers: Int
  /// Images whose header claims more pixels are failed before any memory is allocated for them.
  public var maxImagePixels: Int = ImageDecoder.defaultMaxPixels

  /// Every key the decoder accepts, as dotted paths (`manifests[]` for list items). A test holds
  /// this list against Schemas/job.schema.json.
  public static let acceptedKeys: [String] =
    [
      "version", "model", "database", "images", "exif", "workers", "max_image_pixels",
      "manifests", "manifests[].path", "manifests[].format", "manifests[].images", "manifests[].box",
      "manifests[].names", "manifests[].keys",
    ] + JSONLinesKeys.fields.map { "manifests[].keys.\($0)" } + [
      "prompts", "prompts.multimask", "prompts.keep", "prompts.min_score", "everything", "image_list",
    ] + EverythingParameters.CodingKeys.allCases.map { "everything.\($0.rawValue)" }

  public static func load(contentsOf url: URL) throws -> JobFile {
    let text: String
    do {
      text = try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw SAMBatchError.job(
        file: url.path, line: nil, key: nil,
        message: "cannot read the job file (\(fileReadCause(url, error)))")
    }
    return try parse(yaml: text, jobURL: url)
  }

  public static func parse(yaml: String, jobURL: URL) throws -> JobFile {
    let reader = YAMLReader(file: jobURL.path)
    let root: Node
    do {
      guard let node = try Yams.compose(yaml: yaml) else {
        throw SAMBatchError.job(file: jobURL.path, line: nil, key: nil, message: "the job file is empty")
      }
      root = node
    } catch let error as SAMBatchError {
      throw error
    } catch {
      throw SAMBatchError.job(
        file: jobURL.path, line: nil, key: nil, message: "not valid YAML: \(quoted("\(error)", limit: 400))")
    }
    let base = jobURL.deletingLastPathComponent()
    let top = try reader.mapping(
      root, key: nil,
      allowed: [
        "version", "model", "database", "images", "exif", "manifests", "prompts", "workers",
        "max_image_pixels", "everything", "image_list",
      ])

    guard let versionNode = top["version"] else {
      throw reader.error(root, key: "version", "is required (the only version is 1)")
    }
    let version = try reader.int(versionNode, key: "version")
    guard version == 1 else { throw reader.error(versionNode, key: "version", "must be 1, got \(version)") }

    let model = try top["model"].map { reader.resolve(try reader.string($0, key: "model"), base: base) }
    let database = reader.resolve(
      try top["database"].map { try reader.string($0, key: "database") } ?? "results.db", base: base)
    let images = reader.resolve(
      try top["images"].map { try reader.string($0, key: "images") } ?? ".", base: base)
    let exif = try top["exif"].map { try reader.bool($0, key: "exif") } ?? true
    var workers = ProcessInfo.processInfo.activeProcessorCount
    if let node = top["workers"] {
      workers = try reader.int(node, key: "workers")
      if workers < 1 { throw reader.error(node, key: "workers", "must be at least 1, got \(workers)") }
    }

    var maxImagePixels = ImageDecoder.defaultMaxPixels
    if let node = top["max_image_pixels"] {
      maxImagePixels = try reader.int(node, key: "max_image_pixels")
      if maxImagePixels < 1 {
        throw reader.error(node, key: "max_image_pixels", "must be at least 1, got \(maxImagePixels)")
      }
    }

    let everything = try top["everything"].map { try reader.everything($0) }
    var imageList: URL?
    if let node = top["image_list"] {
      guard everything != nil, top["manifests"] == nil else {
        throw reader.error(
          node, key: "image_list",
          "only applies to an everything job without manifests (the manifests list the images otherwise)")
      }
      imageList = reader.resolve(try reader.string(node, key: "image_list"), base: base)
    }
    if everything != nil, let node = top["prompts"] {
      throw reader.error(
        node, key: "prompts", "does not apply to an everything job (it has no prompts): remove one of the two"
      )
    }
    var list: [Node] = []
    if let manifestsNode = top["manifests"] {
      guard case .sequence(let items) = manifestsNode, !items.isEmpty else {
        throw reader.error(manifestsNode, key: "manifests", "must be a non-empty list of {path, format}")
      }
      list = Array(items)
    } else if everything == nil {
      throw reader.error(
        root, key: "manifests",
        "is required: a list of {path, format} (or an 'everything:' section to segment every image without prompts)"
      )
    }
    var manifests: [ManifestSpec] = []
    for (i, item) in list.enumerated() {
      let prefix = "manifests[\(i)]"
      let m = try reader.mapping(
        item, key: prefix, allowed: ["path", "format", "images", "box", "names", "keys"])
      guard let pathNode = m["path"] else { throw reader.error(item, key: "\(prefix).path", "is required") }
      guard let formatNode = m["format"] else {
        throw reader.error(
          item, key: "\(prefix).format",
          "is required (\(ManifestFormat.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      let format: ManifestFormat = try reader.choice(formatNode, key: "\(prefix).format")
      let box: BoxConvention =
        try m["box"].map { try reader.choice($0, key: "\(prefix).box") } ?? format.defaultBoxConvention
      var imagesFile: URL?
      if let node = m["images"] {
        guard format == .cocoResults else {
          throw reader.error(node, key: "\(prefix).images", "only applies to format coco-results")
        }
        imagesFile = reader.resolve(try reader.string(node, key: "\(prefix).images"), base: base)
      } else if format == .cocoResults {
        throw reader.error(
          item, key: "\(prefix).images",
          "is required for coco-results: the instances file that lists the images")
      }
      var namesFile: URL?
      if let node = m["names"] {
        guard format == .yolo else {
          throw reader.error(node, key: "\(prefix).names", "only applies to format yolo")
        }
        namesFile = reader.resolve(try reader.string(node, key: "\(prefix).names"), base: base)
      } else if format == .yolo {
        throw reader.error(
          item, key: "\(prefix).names", "is required for yolo: the dataset YAML whose 'names' are the classes"
        )
      }
      var keys: [String: String] = [:]
      if let node = m["keys"] {
        guard format == .jsonl else {
          throw reader.error(node, key: "\(prefix).keys", "only applies to format jsonl")
        }
        for (field, keyNode) in try reader.mapping(node, key: "\(prefix).keys", allowed: JSONLinesKeys.fields)
        {
          keys[field] = try reader.string(keyNode, key: "\(prefix).keys.\(field)")
        }
        if let problem = JSONLinesKeys(keys).problem {
          throw reader.error(node, key: "\(prefix).keys", problem)
        }
      }
      manifests.append(
        ManifestSpec(
          path: reader.resolve(try reader.string(pathNode, key: "\(prefix).path"), base: base),
          format: format, images: imagesFile, box: box, names: namesFile, keys: keys))
    }

    var prompts = PromptOptions()
    if let node = top["prompts"] {
      let p = try reader.mapping(node, key: "prompts", allowed: ["multimask", "keep", "min_score"])
      if let n = p["multimask"] { prompts.multimask = try reader.bool(n, key: "prompts.multimask") }
      if let n = p["keep"] { prompts.keep = try reader.choice(n, key: "prompts.keep") }
      if let n = p["min_score"] {
        let v = try reader.double(n, key: "prompts.min_score")
        guard v.isFinite else { throw reader.error(n, key: "prompts.min_score", "must be a finite number") }
        prompts.minScore = v
      }
    }
    return JobFile(
      url: jobURL, version: version, model: model, database: database, images: images, exif: exif,
      manifests: manifests, prompts: prompts, everything: everything, imageList: imageList, workers: workers,
      maxImagePixels: maxImagePixels)
  }
}

/// Typed access to a composed YAML document, with errors that name the key and the line.
struct YAMLReader {
  let file: String

  func error(_ node: Node, key: String?, _ message: String) -> SAMBatchError {
    .job(file: file, line: node.mark?.line, key: key, message: message)
  }

  /// The mapping's entries by key; unknown or duplicated keys are errors naming the key's line.
  func mapping(_ node: Node, key: String?, allowed: [String]) throws -> [String: Node] {
    guard case .mapping(let mapping) = node else {
      throw error(node, key: key, "must be a mapping (key: value lines), got \(describe(node))")
    }
    var result: [String: Node] = [:]
    for (k, v) in mapping {
      guard case .scalar(let scalar) = k else { throw error(k, key: key, "keys must be plain words") }
      let full = key.map { "\($0).\(scalar.string)" } ?? scalar.string
      guard allowed.contains(scalar.string) else {
        throw error(k, key: full, "unknown key (allowed here: \(allowed.joined(separator: ", ")))")
      }
      guard result[scalar.string] == nil else { throw error(k, key: full, "appears twice") }
      result[scalar.string] = v
    }
    return result
  }

  func string(_ node: Node, key: String) throws -> String {
    guard case .scalar(let scalar) = node else {
      throw error(node, key: key, "must be a string, got \(describe(node))")
    }
    if scalar.style == .plain, isNonString(node) {
      throw error(node, key: key, "must be a string, got \(describe(node)) (quote it if it is a name)")
    }
    guard !scalar.string.isEmpty else { throw error(node, key: key, "must not be empty") }
    return scalar.string
  }

  func int(_ node: Node, key: String) throws -> Int {
    guard case .scalar = node, let value = node.int else {
      throw error(node, key: key, "must be an integer, got \(describe(node))")
    }
    return value
  }

  func double(_ node: Node, key: String) throws -> Double {
    guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.float, node.bool == nil
    else {
      throw error(node, key: key, "must be a number, got \(describe(node))")
    }
    return value
  }

  /// The `everything:` section (an empty one, `everything: {}`, takes every default). Every
  /// problem in it is a `jobParameter` error (exit 64), naming the key.
  func everything(_ node: Node) throws -> EverythingParameters {
    var parameters = EverythingParameters()
    do {
      if node.null != nil { return parameters }
      typealias Key = EverythingParameters.CodingKeys
      let entries = try mapping(node, key: "everything", allowed: Key.allCases.map(\.rawValue))
      var lines: [Key: Int] = [:]
      for key in Key.allCases {
        guard let value = entries[key.rawValue] else { continue }
        let name = "everything.\(key.rawValue)"
        lines[key] = value.mark?.line
        switch key {
        case .pointsPerSide: parameters.pointsPerSide = try int(value, key: name)
        case .pointsPerBatch: parameters.pointsPerBatch = try int(value, key: name)
        case .predIouThresh: parameters.predIouThresh = try double(value, key: name)
        case .stabilityScoreThresh: parameters.stabilityScoreThresh = try double(value, key: name)
        case .stabilityScoreOffset: parameters.stabilityScoreOffset = try double(value, key: name)
        case .boxNmsThresh: parameters.boxNmsThresh = try double(value, key: name)
        case .cropNLayers: parameters.cropNLayers = try int(value, key: name)
        case .cropNmsThresh: parameters.cropNmsThresh = try double(value, key: name)
        case .cropOverlapRatio: parameters.cropOverlapRatio = try double(value, key: name)
        case .cropNPointsDownscaleFactor: parameters.cropNPointsDownscaleFactor = try int(value, key: name)
        case .minMaskRegionArea: parameters.minMaskRegionArea = try int(value, key: name)
        }
      }
      let problems = parameters.problems(naming: .keys)
      if let first = problems.first {
        // The line of the first key named (the problems begin with their key).
        let key = Key.allCases.first { first.hasPrefix($0.rawValue + " ") }
        throw SAMBatchError.job(
          file: file, line: key.flatMap { lines[$0] } ?? node.mark?.line, key: "everything",
          message: problems.joined(separator: "; "))
      }
    } catch SAMBatchError.job(let file, let line, let key, let message) {
      throw SAMBatchError.jobParameter(file: file, line: line, key: key, message: message)
    }
    return parameters
  }

  func bool(_ node: Node, key: String) throws -> Bool {
    guard case .scalar(let scalar) = node, scalar.style == .plain, let value = node.bool else {
      throw error(node, key: key, "must be true or false, got \(describe(node))")
    }
    return value
  }

  func choice<T: RawRepresentable & CaseIterable>(_ node: Node, key: String) throws -> T
  where T.RawValue == String {
    let options = T.allCases.map(\.rawValue)
    guard case .scalar(let scalar) = node, let value = T(rawValue: scalar.string) else {
      throw error(node, key: key, "must be one of \(options.joined(separator: ", ")), got \(describe(node))")
    }
    return value
  }

  func resolve(_ path: String, base: URL) -> URL {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL }
    return base.appendingPathComponent(expanded).standardizedFileURL
  }

  private func isNonString(_ node: Node) -> Bool {
    node.null != nil || node.bool != nil || node.int != nil || node.float != nil
  }

  private func describe(_ node: Node) -> String {
    switch node {
    case .scalar(let s):
      if s.style == .plain && s.string.isEmpty || node.null != nil { return "nothing (null)" }
      return "'\(s.string)'"
    case .mapping: return "a mapping"
    case .sequence: return "a list"
    case .alias: return "an alias"
    }
  }
}
