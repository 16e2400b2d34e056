import Foundation

// COCO files are read with JSONDecoder into these few fields rather than with JSONSerialization:
// a 10,000-image instances file (4.5 MB) took over 100 MB as Foundation objects, and the job's
// memory must not grow with the manifest more than its prompts need.

/// A JSON value decoded only as far as a manifest needs it.
enum JSONValue: Decodable, Sendable {
  case number(Double)
  case string(String)
  case bool(Bool)
  case null
  case array([JSONValue])
  case other

  init(from decoder: Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let d = try? c.decode(Double.self) {
      self = .number(d)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .other
    }
  }

  /// A number, or one of the placeholders for Python's NaN / Infinity tokens.
  var number: Double? {
    switch self {
    case .number(let d): return d
    case .string(let s): return ManifestReader.nonFinite[s]
    default: return nil
    }
  }

  var integer: Int? {
    guard let d = number, d.isFinite, d == d.rounded(), abs(d) < 1e15 else { return nil }
    return Int(d)
  }

  var numbers: [Double]? {
    guard case .array(let list) = self else { return nil }
    var result: [Double] = []
    for v in list {
      guard let d = v.number else { return nil }
      result.append(d)
    }
    return result
  }

  var string: String? {
    if case .string(let s) = self { return s }
    return nil
  }
}

struct COCOInstances: Decodable {
  struct Image: Decodable {
    var id: JSONValue?
    var file_name: JSONValue?
  }
  struct Category: Decodable {
    var id: JSONValue?
    var name: JSONValue?
  }
  var images: [Image]?
  var annotations: [COCOAnnotation]?
  var categories: [Category]?
}

/// An instances annotation or a detection result: the fields we use, the rest skipped.
struct COCOAnnotation: Decodable {
  var id: JSONValue?
  var image_id: JSONValue?
  var bbox: JSONValue?
  var category_id: JSONValue?
  var score: JSONValue?
}

extension ManifestReader {
  /// A COCO instances file: `images` (id, file_name), `annotations` (id, image_id, bbox,
  /// category_id, optional score), `categories` (id, name).
  public static func coco(data: Data, file: String, box: BoxConvention, problems: inout [ManifestProblem])
    throws -> [ManifestImage]
  {
    let root = try decodeInstances(data, file: file)
    var (result, idToIndex) = try cocoImages(root, file: file)
    let categories = cocoCategories(root)
    guard let annotations = root.annotations else {
      throw SAMBatchError.manifest(
        file: file, line: nil, message: "a COCO instances file needs an 'annotations' list")
    }
    for (i, a) in annotations.enumerated() {
      guard let imageId = a.image_id?.integer else {
        problems.append(
          ManifestProblem(file: file, line: nil, message: "annotations[\(i)]: no integer 'image_id'"))
        continue
      }
      guard let index = idToIndex[imageId] else {
        problems.append(
          ManifestProblem(
            file: file, line: nil, message: "annotations[\(i)]: image_id \(imageId) is not in 'images'"))
        continue
      }
      let sourceId = a.id?.integer.map(String.init)
      result[index].objects.append(cocoObject(a, sourceId: sourceId, categories: categories, box: box))
    }
    return result
  }

  /// A COCO detection results list (`image_id`, `bbox`, `score`, `category_id`) with the
  /// instances file that lists the images (and names the categories). A result's source id is its
  /// `id` when it has one, else its 0-based position in the list.
  public static func cocoResults(
    data: Data, file: String, imagesData: Data, imagesFile: String, box: BoxConvention,
    problems: inout [ManifestProblem]
  ) throws -> [ManifestImage] {
    let imagesRoot = try decodeInstances(imagesData, file: imagesFile)
    var (result, idToIndex) = try cocoImages(imagesRoot, file: imagesFile)
    let categories = cocoCategories(imagesRoot)
    let list: [COCOAnnotation]
    do {
      list = try JSONDecoder().decode([COCOAnnotation].self, from: replaceNonFiniteTokens(data))
    } catch {
      throw SAMBatchError.manifest(
        file: file, line: nil,
        message: "not a COCO results file, a JSON list of detections (\(describe(error)))")
    }
    for (i, a) in list.enumerated() {
      guard let imageId = a.image_id?.integer else {
        problems.append(ManifestProblem(file: file, line: nil, message: "[\(i)]: no integer 'image_id'"))
        continue
      }
      guard let index = idToIndex[imageId] else {
        problems.append(
          ManifestProblem(
            file: file, line: nil, message: "[\(i)]: image_id \(imageId) is not in \(imagesFile)"))
        continue
      }
      let sourceId = a.id?.integer.map(String.init) ?? String(i)
      result[index].objects.append(cocoObject(a, sourceId: sourceId, categories: categories, box: box))
    }
    return result
  }

  private static func decodeInstances(_ data: Data, file: String) throws -> COCOInstances {
    do {
      return try JSONDecoder().decode(COCOInstances.self, from: replaceNonFiniteTokens(data))
    } catch {
      throw SAMBatchError.manifest(
        file: file, line: nil, message: "not a COCO instances file (\(describe(error)))")
    }
  }

  private static func describe(_ error: Error) -> String {
    switch error {
    case DecodingError.dataCorrupted(let c), DecodingError.typeMismatch(_, let c),
      DecodingError.valueNotFound(_, let c),
      DecodingError.keyNotFound(_, let c):
      let path = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
      return path.isEmpty ? c.debugDescription : "at \(path): \(c.debugDescription)"
    default: return "\(error)"
    }
  }

  private static func cocoObject(
    _ a: COCOAnnotation, sourceId: String?, categories: [Int: String], box: BoxConvention
  ) -> ManifestObject {
    var object = ManifestObject(sourceId: sourceId, boxConvention: box)
    object.categoryId = a.category_id?.integer
    object.category = object.categoryId.flatMap { categories[$0] }
    object.detectorScore = a.score?.number
    guard let values = a.bbox?.numbers, values.count == 4 else {
      object.error = "annotation \(sourceId ?? "?"): 'bbox' must be a list of 4 numbers"
      return object
    }
    object.box = values
    return object
  }

  private static func cocoImages(_ root: COCOInstances, file: String) throws -> ([ManifestImage], [Int: Int])
  {
    guard let images = root.images else {
      throw SAMBatchError.manifest(
        file: file, line: nil, message: "a COCO instances file needs an 'images' list")
    }
    var result: [ManifestImage] = []
    result.reserveCapacity(images.count)
    var idToIndex: [Int: Int] = [:]
    for (i, image) in images.enumerated() {
      guard let id = image.id?.integer, let name = image.file_name?.string, !name.isEmpty else {
        throw SAMBatchError.manifest(
          file: file, line: nil, message: "images[\(i)] needs an integer 'id' and a 'file_name'")
      }
      guard idToIndex[id] == nil else {
        throw SAMBatchError.manifest(
          file: file, line: nil, message: "images[\(i)]: image id \(id) appears twice")
      }
      idToIndex[id] = result.count
      result.append(ManifestImage(path: name, objects: [], sourceImageId: id))
    }
    return (result, idToIndex)
  }

  private static func cocoCategories(_ root: COCOInstances) -> [Int: String] {
    var names: [Int: String] = [:]
    for c in root.categories ?? [] {
      if let id = c.id?.integer, let name = c.name?.string { names[id] = name }
    }
    return names
  }
}
