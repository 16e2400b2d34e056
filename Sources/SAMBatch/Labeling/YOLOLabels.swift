import Foundation
import Yams

/// One line of a YOLO detection label file: `class cx cy w h [confidence]`, normalized to the
/// image size, as `yolo predict save_txt=True save_conf=True` writes it.
public struct YOLODetection: Sendable, Equatable {
  /// 1-based line number in its file.
  public var line: Int
  public var classIndex: Int
  /// The class name from the dataset YAML.
  public var category: String
  /// Box centre and size, each in 0...1 of the image's width or height.
  public var cx: Double
  public var cy: Double
  public var w: Double
  public var h: Double
  public var confidence: Double?

  /// The box in pixels, `[x0, y0, x1, y1]`.
  public func pixelBox(width: Int, height: Int) -> [Double] {
    let W = Double(width)
    let H = Double(height)
    return [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]
  }
}

/// A label line that cannot be used, or a label file without an image: recorded, and the rest
/// goes on.
public struct LabelProblem: Sendable, Equatable, CustomStringConvertible {
  public var file: String
  /// 1-based; nil for the file as a whole.
  public var line: Int?
  public var message: String

  public var description: String { "\(line.map { "\(file):\($0)" } ?? file): \(message)" }
}

/// Reading a folder of YOLO detection labels and the class names of a dataset YAML.
public enum YOLOLabels {
  /// The image extensions matched to label files by stem (case does not matter).
  public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

  /// Class names from an Ultralytics dataset YAML: `names:` as a list (`[person, car]`, index =
  /// position) or as an index map (`{0: person, 1: car}`). Anything else is an error naming the file.
  public static func readNames(_ url: URL) throws -> [Int: String] {
    let text: String
    do {
      text = try String(contentsOf: url, encoding: .utf8)
    } catch {
      throw LabelingError.file(
        path: url.path, reason: "cannot read the dataset YAML: \(fileReadCause(url, error))")
    }
    return try parseNames(text, file: url.path)
  }

  static func parseNames(_ text: String, file: String) throws -> [Int: String] {
    let document: Any?
    do {
      document = try Yams.load(yaml: text)
    } catch {
      throw LabelingError.file(path: file, reason: "not valid YAML: \(error)")
    }
    guard let mapping = document as? [AnyHashable: Any] else {
      throw LabelingError.file(path: file, reason: "a dataset YAML must be a mapping with 'names'")
    }
    guard let names = mapping["names"] else {
      throw LabelingError.file(
        path: file, reason: "no 'names' key (the class names, as a list or an index map)")
    }
    var result: [Int: String] = [:]
    if let list = names as? [Any] {
      for (index, value) in list.enumerated() {
        guard let name = nameString(value) else {
          throw LabelingError.file(path: file, reason: "names[\(index)] is not a name")
        }
        result[index] = name
      }
    } else if let map = names as? [AnyHashable: Any] {
      for (key, value) in map {
        guard let index = (key.base as? Int) ?? Int("\(key.base)"), index >= 0 else {
          throw LabelingError.file(
            path: file, reason: "names key '\(key.base)' is not a class index (0, 1, ...)")
        }
        guard let name = nameString(value) else {
          throw LabelingError.file(path: file, reason: "names[\(index)] is not a name")
        }
        result[index] = name
      }
    } else {
      throw LabelingError.file(path: file, reason: "'names' must be a list or a map from class index to name")
    }
    guard !result.isEmpty else { throw LabelingError.file(path: file, reason: "'names' is empty") }
    return result
  }

  private static func nameString(_ value: Any) -> String? {
    if let s = value as? String { return s }
    if let i = value as? Int { return String(i) }
    return nil
  }

  /// The detections of one label file's text; unusable lines become problems against `file`.
  /// Blank lines are skipped.
  public static func parse(_ text: String, file: String, names: [Int: String]) -> (
    detections: [YOLODetection], problems: [LabelProblem]
  ) {
    var detections: [YOLODetection] = []
    var problems: [LabelProblem] = []
    var lineNumber = 0
    for raw in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
      lineNumber += 1
      let fields = raw.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if fields.isEmpty { continue }
      func problem(_ message: String) {
        problems.append(LabelProblem(file: file, line: lineNumber, message: message))
      }
      guard fields.count == 5 || fields.count == 6 else {
        problem(
          "\(fields.count) fields: a detection line is 'class cx cy w h' with an optional confidence (5 or 6 fields)"
        )
        continue
      }
      guard let classIndex = classIndex(fields[0]) else {
        problem("class '\(fields[0])' is not a class index")
        continue
      }
      guard let category = names[classIndex] else {
        let largest = names.keys.max() ?? -1
        problem("class \(classIndex) is past the names of the dataset YAML (0...\(largest))")
        continue
      }
      var values: [Double] = []
      var bad: String? = nil
      for (label, field) in zip(["cx", "cy", "w", "h", "confidence"], fields.dropFirst()) {
        guard let v = Double(field) else {
          bad = "\(label) '\(field)' is not a number"
          break
        }
        guard !v.isNaN else {
          bad = "\(label) is NaN"
          break
        }
        guard v >= 0 && v <= 1 else {
          bad = "\(label) \(field) is outside 0-1 (coordinates are normalized to the image size)"
          break
        }
        values.append(v)
      }
      if let bad {
        problem(bad)
        continue
      }
      detections.append(
        YOLODetection(
          line: lineNumber, classIndex: classIndex, category: category, cx: values[0], cy: values[1],
          w: values[2],
          h: values[3], confidence: values.count > 4 ? values[4] : nil))
    }
    return (detections, problems)
  }

  /// `0`, or a float with nothing after the point (`0.0`, which some writers give).
  private static func classIndex(_ field: Substring) -> Int? {
    if let i = Int(field), i >= 0 { return i }
    if let d = Double(field), d.isFinite, d >= 0, d.rounded() == d, d < 1e9 { return Int(d) }
    return nil
  }

  /// One image of the images folder with its label file, if it has one.
  public struct Pairing: Sendable, Equatable {
    /// The image's path relative to the images folder ('/' separated).
    public var image: String
    /// nil: no label file for this image (done with no prompts).
    public var labelFile: URL?
  }

  /// Every image (jpg, jpeg, png, searched recursively) of `imagesFolder` with the label file of
  /// the same stem in `labelsFolder` (flat, `<stem>.txt`), images in path order. A stem shared by
  /// two images is an error naming both; a label file without an image is a problem.
  public static func pair(imagesFolder: URL, labelsFolder: URL) throws -> (
    pairings: [Pairing], problems: [LabelProblem]
  ) {
    let images = try files(in: imagesFolder, recursive: true) { imageExtensions.contains($0.lowercased()) }
    var byStem: [String: String] = [:]
    for image in images {
      let stem = ((image as NSString).lastPathComponent as NSString).deletingPathExtension
      if let other = byStem[stem] {
        throw LabelingError.file(
          path: imagesFolder.path,
          reason:
            "images '\(other)' and '\(image)' have the same stem '\(stem)': a YOLO label file cannot tell them apart"
        )
      }
      byStem[stem] = image
    }
    let labels = try files(in: labelsFolder, recursive: false) { $0 == "txt" }
    var labelByStem: [String: URL] = [:]
    var problems: [LabelProblem] = []
    for label in labels {
      let stem = (label as NSString).deletingPathExtension
      let url = labelsFolder.appendingPathComponent(label)
      if byStem[stem] == nil {
        problems.append(
          LabelProblem(
            file: url.path, line: nil,
            message: "no image '\(stem).jpg', '.jpeg' or '.png' in \(imagesFolder.path)"))
      } else {
        labelByStem[stem] = url
      }
    }
    let pairings = images.map { image in
      Pairing(
        image: image,
        labelFile: labelByStem[((image as NSString).lastPathComponent as NSString).deletingPathExtension])
    }
    return (pairings, problems)
  }

  /// Relative paths of the regular files under `folder` whose extension passes `keep`, sorted.
  private static func files(in folder: URL, recursive: Bool, keep: (String) -> Bool) throws -> [String] {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder), isFolder.boolValue
    else {
      throw LabelingError.file(path: folder.path, reason: "no such folder")
    }
    var result: [String] = []
    if recursive {
      guard let walker = FileManager.default.enumerator(atPath: folder.path) else {
        throw LabelingError.file(path: folder.path, reason: "cannot list the folder")
      }
      while let relative = walker.nextObject() as? String {
        if keep((relative as NSString).pathExtension), isRegularFile(folder.appendingPathComponent(relative))
        {
          result.append(relative)
        }
      }
    } else {
      let names: [String]
      do {
        names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
      } catch {
        throw LabelingError.file(path: folder.path, reason: "cannot list the folder: \(readableCause(error))")
      }
      result = names.filter {
        keep(($0 as NSString).pathExtension) && isRegularFile(folder.appendingPathComponent($0))
      }
    }
    return result.sorted()
  }

  private static func isRegularFile(_ url: URL) -> Bool {
    var isFolder: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) && !isFolder.boolValue
  }
}
