import Crypto
import Foundation

/// `format: yolo` manifests: a folder of YOLO detection label files and a dataset YAML.
enum YOLOManifest {
  /// Every image of `imagesFolder` (jpg, jpeg, png) with the detections of its label file: each
  /// line one box prompt, its class name the category (its class index the category id), its
  /// confidence the detector score, `<file>:<line>` its source id. An image without a label file,
  /// or with an empty one, has no objects (it is done with no prompts). Bad lines and label files
  /// without an image become problems; a bad dataset YAML or a stem shared by two images is an
  /// error before any work.
  static func read(
    _ spec: ManifestSpec, imagesFolder: URL, hasher: inout SHA256, problems: inout [ManifestProblem]
  ) throws -> [ManifestImage] {
    guard let namesURL = spec.names else {
      throw SAMBatchError.manifest(
        file: spec.path.path, line: nil, message: "yolo needs a names file (data.yaml)")
    }
    let names: [Int: String]
    let pairings: [YOLOLabels.Pairing]
    do {
      names = try YOLOLabels.readNames(namesURL)
      let paired = try YOLOLabels.pair(imagesFolder: imagesFolder, labelsFolder: spec.path)
      pairings = paired.pairings
      problems += paired.problems.map { ManifestProblem(file: $0.file, line: $0.line, message: $0.message) }
    } catch let error as LabelingError {
      switch error {
      case .file(let path, let reason): throw SAMBatchError.manifest(file: path, line: nil, message: reason)
      default:
        throw SAMBatchError.manifest(file: spec.path.path, line: nil, message: error.localizedDescription)
      }
    }
    hasher.update(
      data: Data((names.keys.sorted().map { "\($0)=\(names[$0]!)" }.joined(separator: "\n") + "|").utf8))
    var images: [ManifestImage] = []
    for pairing in pairings {
      hasher.update(data: Data("\(pairing.image)|".utf8))
      guard let labelURL = pairing.labelFile else {
        images.append(ManifestImage(path: pairing.image, objects: []))
        continue
      }
      let data: Data
      do {
        data = try Data(contentsOf: labelURL)
      } catch {
        problems.append(
          ManifestProblem(
            file: labelURL.path, line: nil, message: "cannot read: \(fileReadCause(labelURL, error))"))
        images.append(ManifestImage(path: pairing.image, objects: []))
        continue
      }
      hasher.update(data: Data("\(data.count)|".utf8))
      hasher.update(data: data)
      let parsed = YOLOLabels.parse(String(decoding: data, as: UTF8.self), file: labelURL.path, names: names)
      problems += parsed.problems.map { ManifestProblem(file: $0.file, line: $0.line, message: $0.message) }
      let objects = parsed.detections.map { d in
        ManifestObject(
          sourceId: "\(labelURL.lastPathComponent):\(d.line)", categoryId: d.classIndex, category: d.category,
          detectorScore: d.confidence, box: [d.cx, d.cy, d.w, d.h], boxConvention: spec.box, line: d.line)
      }
      images.append(ManifestImage(path: pairing.image, objects: objects))
    }
    return images
  }
}
