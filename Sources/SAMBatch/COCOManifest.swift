import Foundation

// COCO files go through the module's JSONReader like every manifest, so they follow the same rule
// for numbers and ids. `segmentation` (most of an instances file's bytes) is checked for syntax but
// not kept, and the images file of a results list keeps no annotations, so the job's memory does
// not grow with what no prompt needs.

extension ManifestReader {
  /// A COCO instances file: `images` (id, file_name), `annotations` (id, image_id, bbox,
  /// category_id, optional score), `categories` (id, name). An entry with a field that breaks its
  /// rule (Schemas/manifests.md) is a problem naming `images[i]` / `annotations[i]` and its line,
  /// and is left out.
  public static func coco(data: Data, file: String, box: BoxConvention, problems: inout [ManifestProblem])
    throws -> [ManifestImage]
  {
    let root = try instancesRoot(data, file: file, ignoring: ["segmentation"])
    var catalog = try cocoImages(root, file: file, problems: &problems)
    let categories = cocoCategories(root, file: file, problems: &problems)
    guard let annotations = root["annotations"]?.array else {
      throw SAMBatchError.manifest(
        file: file, line: nil, message: "a COCO instances file needs an 'annotations' list")
    }
    var seenIds: [String: Int] = [:]
    for (i, item) in annotations.enumerated() {
      cocoObject(
        item, name: "annotations[\(i)]", defaultId: nil, file: file, imagesFile: nil, box: box,
        categories: categories, catalog: &catalog, seenIds: &seenIds, problems: &problems)
    }
    return catalog.images
  }

  /// A COCO detection results list (`image_id`, `bbox`, `score`, `category_id`) with the
  /// instances file that lists the images (and names the categories). A result's source id is its
  /// `id` when it has one, else its 0-based position in the list.
  public static func cocoResults(
    data: Data, file: String, imagesData: Data, imagesFile: String, box: BoxConvention,
    problems: inout [ManifestProblem]
  ) throws -> [ManifestImage] {
    let imagesRoot = try instancesRoot(
      imagesData, file: imagesFile, ignoring: ["annotations", "segmentation"])
    var catalog = try cocoImages(imagesRoot, file: imagesFile, problems: &problems)
    let categories = cocoCategories(imagesRoot, file: imagesFile, problems: &problems)
    let list: [JSONValue]
    switch try parse(data, file: file, ignoring: ["segmentation"]) {
    case .array(let items): list = items
    case .object(let o) where o["annotations"] != nil:
      throw SAMBatchError.manifest(
        file: file, line: nil,
        message:
          "is a COCO instances file, not a results list: use format: coco (or give the detections list here)")
    default:
      throw SAMBatchError.manifest(
        file: file, line: nil,
        message: "a COCO results file is a JSON list of detections: [{\"image_id\": ..., \"bbox\": [...]}]")
    }
    var seenIds: [String: Int] = [:]
    for (i, item) in list.enumerated() {
      cocoObject(
        item, name: "[\(i)]", defaultId: String(i), file: file, imagesFile: imagesFile, box: box,
        categories: categories, catalog: &catalog, seenIds: &seenIds, problems: &problems)
    }
    return catalog.images
  }

  /// The images of a COCO file, and where to find each by id.
  struct COCOCatalog {
    var images: [ManifestImage] = []
    var indexOfId: [Int: Int] = [:]
    /// Ids of entries left out (reported once, with the entry): their annotations are skipped quietly.
    var leftOut: Set<Int> = []
  }

  private static func parse(_ data: Data, file: String, ignoring: Set<String>) throws -> JSONValue {
    do throws(JSONSyntaxError) {
      return try JSONReader(ignoring: ignoring).parse(data)
    } catch {
      throw SAMBatchError.manifest(
        file: file, line: error.line, message: "not valid JSON: column \(error.column): \(error.reason)")
    }
  }

  private static func instancesRoot(_ data: Data, file: String, ignoring: Set<String>) throws -> JSONObject {
    let value = try parse(data, file: file, ignoring: ignoring)
    guard let root = value.object else {
      let hint =
        value.array != nil
        ? ": this one is a list (a list of detections is format coco-results, paired with an instances file through images:)"
        : ""
      throw SAMBatchError.manifest(
        file: file, line: nil,
        message: "a COCO instances file is a JSON object with 'images' and 'annotations'\(hint)")
    }
    return root
  }

  private static func cocoImages(_ root: JSONObject, file: String, problems: inout [ManifestProblem]) throws
    -> COCOCatalog
  {
    guard let images = root["images"]?.array else {
      throw SAMBatchError.manifest(
        file: file, line: nil, message: "a COCO instances file needs an 'images' list")
    }
    var catalog = COCOCatalog()
    catalog.images.reserveCapacity(images.count)
    for (i, item) in images.enumerated() {
      let line = item.object?.line
      do throws(JSONFieldError) {
        guard let o = item.object else { throw JSONFieldError("not a JSON object") }
        try o.checkDuplicateKeys()
        guard let id = try o.integer("id") else { throw JSONFieldError("no 'id'") }
        guard let name = try o.string("file_name") else { throw JSONFieldError("no 'file_name'") }
        guard let path = ImagePath.normalize(name) else {
          throw JSONFieldError("'file_name' \(JSONWriter.string(name)) does not name a file")
        }
        if let earlier = catalog.indexOfId[id] {
          let first = catalog.images[earlier]
          throw JSONFieldError(
            "image id \(id) appears twice (first as \(first.path)\(first.line.map { " on line \($0)" } ?? ""))"
          )
        }
        catalog.indexOfId[id] = catalog.images.count
        catalog.images.append(ManifestImage(path: path, objects: [], sourceImageId: id, line: line))
      } catch {
        problems.append(
          ManifestProblem(file: file, line: line, message: "images[\(i)]: \(error.message)"))
        if let id = item.object?["id"]?.integer, catalog.indexOfId[id] == nil { catalog.leftOut.insert(id) }
      }
    }
    return catalog
  }

  private static func cocoCategories(_ root: JSONObject, file: String, problems: inout [ManifestProblem])
    -> [Int: String]
  {
    var names: [Int: String] = [:]
    guard let list = root["categories"] else { return names }
    guard let categories = list.array else {
      problems.append(
        ManifestProblem(
          file: file, line: root.line, message: "'categories' must be a list, got \(list.described): ignored")
      )
      return names
    }
    for (i, item) in categories.enumerated() {
      do throws(JSONFieldError) {
        guard let o = item.object else { throw JSONFieldError("not a JSON object") }
        try o.checkDuplicateKeys()
        guard let id = try o.integer("id") else { throw JSONFieldError("no 'id'") }
        guard let name = try o.string("name") else { throw JSONFieldError("no 'name'") }
        guard names[id] == nil else { throw JSONFieldError("category id \(id) appears twice") }
        names[id] = name
      } catch {
        problems.append(
          ManifestProblem(file: file, line: item.object?.line, message: "categories[\(i)]: \(error.message)"))
      }
    }
    return names
  }

  /// One annotation or detection: appended to its image, or a problem.
  private static func cocoObject(
    _ item: JSONValue, name: String, defaultId: String?, file: String, imagesFile: String?,
    box: BoxConvention,
    categories: [Int: String], catalog: inout COCOCatalog, seenIds: inout [String: Int],
    problems: inout [ManifestProblem]
  ) {
    let line = item.object?.line
    do throws(JSONFieldError) {
      guard let o = item.object else { throw JSONFieldError("not a JSON object") }
      try o.checkDuplicateKeys()
      let sourceId = try o.identifier("id") ?? defaultId
      guard let imageId = try o.integer("image_id") else { throw JSONFieldError("no 'image_id'") }
      guard let values = try o.box("bbox") else { throw JSONFieldError("no 'bbox'") }
      let categoryId = try o.integer("category_id")
      let score = try o.finiteNumber("score")
      guard let index = catalog.indexOfId[imageId] else {
        if catalog.leftOut.contains(imageId) { return }
        throw JSONFieldError(
          "image_id \(imageId) is not in \(imagesFile.map { "the images of \($0)" } ?? "'images'")")
      }
      if let id = sourceId {
        if let earlier = seenIds[id] {
          throw JSONFieldError("id \(JSONWriter.string(id)) appears twice (first on line \(earlier))")
        }
        seenIds[id] = line ?? 0
      }
      catalog.images[index].objects.append(
        ManifestObject(
          sourceId: sourceId, categoryId: categoryId, category: categoryId.flatMap { categories[$0] },
          detectorScore: score, box: values, boxConvention: box, line: line))
    } catch {
      problems.append(ManifestProblem(file: file, line: line, message: "\(name): \(error.message)"))
    }
  }
}
