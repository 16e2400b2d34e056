import Foundation
import MobileSAM

/// Writes an Ultralytics YOLO-seg dataset, one image at a time:
///
///     DIR/data.yaml            path: DIR, train: images, val: images, names: {0: ..., 1: ...}
///     DIR/images/<path>        a symbolic link to the image (or a copy)
///     DIR/labels/<path>.txt    one `class x1 y1 x2 y2 ...` line per mask (normalized polygon)
///
/// Ultralytics finds a label by replacing the last `/images/` of the image's path with
/// `/labels/`, so the images must be reachable under DIR/images: links (the default) or copies.
/// An image without masks gets an empty label file, which Ultralytics counts as a background
/// image ("no detections" stays visible).
public final class YOLOSegDatasetWriter {
  public enum ImageReference: String, Sendable, CaseIterable {
    /// Symbolic links to the source images (absolute targets).
    case link
    /// Copies of the source images.
    case copy
  }

  public struct Summary: Sendable, Equatable {
    public var images = 0
    /// Label lines written (one per non-empty mask).
    public var polygons = 0
    public var emptyMasks = 0
    /// Parts left out of their mask's polygon because their bridge would cover more background.
    public var droppedParts = 0
  }

  public let directory: URL
  public let reference: ImageReference
  public let tolerance: Double
  public private(set) var summary = Summary()
  private var written: Set<String> = []

  /// Creates DIR/images and DIR/labels; DIR may exist, but not with a data.yaml in it (an earlier
  /// export is not overwritten by accident).
  public init(directory: URL, reference: ImageReference = .link, tolerance: Double = 0) throws {
    self.directory = directory
    self.reference = reference
    self.tolerance = tolerance
    let fm = FileManager.default
    if fm.fileExists(atPath: directory.appendingPathComponent("data.yaml").path) {
      throw LabelingError.file(
        path: directory.path, reason: "already holds a data.yaml: choose another --out or delete it first")
    }
    do {
      try fm.createDirectory(
        at: directory.appendingPathComponent("images"), withIntermediateDirectories: true)
      try fm.createDirectory(
        at: directory.appendingPathComponent("labels"), withIntermediateDirectories: true)
    } catch {
      throw LabelingError.file(
        path: directory.path, reason: "cannot create the dataset folders: \(readableCause(error))")
    }
  }

  /// Adds one image: `relativePath` is where it goes under images/ (the manifest's path),
  /// `source` the image file, `masks` its masks with their class index.
  public func add(
    relativePath: String, source: URL, width: Int, height: Int, masks: [(classIndex: Int, mask: BinaryMask)]
  ) throws {
    guard !relativePath.isEmpty, !relativePath.hasPrefix("/"),
      !relativePath.split(separator: "/").contains("..")
    else {
      throw LabelingError.file(path: relativePath, reason: "an image path must stay inside the images folder")
    }
    guard written.insert(relativePath).inserted else {
      throw LabelingError.file(path: relativePath, reason: "the same image twice in one dataset")
    }
    var lines: [String] = []
    for (classIndex, mask) in masks {
      let traced = SinglePolygon.traceCountingDropped(mask, tolerance: tolerance)
      summary.droppedParts += traced.droppedParts
      guard
        let line = SinglePolygon.yoloLine(
          classIndex: classIndex, polygon: traced.polygon, width: width, height: height)
      else {
        summary.emptyMasks += 1
        continue
      }
      lines.append(line)
    }
    let fm = FileManager.default
    let imageURL = directory.appendingPathComponent("images").appendingPathComponent(relativePath)
    let labelURL = directory.appendingPathComponent("labels")
      .appendingPathComponent((relativePath as NSString).deletingPathExtension + ".txt")
    do {
      try fm.createDirectory(at: imageURL.deletingLastPathComponent(), withIntermediateDirectories: true)
      try fm.createDirectory(at: labelURL.deletingLastPathComponent(), withIntermediateDirectories: true)
      if (try? fm.destinationOfSymbolicLink(atPath: imageURL.path)) != nil
        || fm.fileExists(atPath: imageURL.path)
      {
        try fm.removeItem(at: imageURL)
      }
      switch reference {
      case .link: try fm.createSymbolicLink(at: imageURL, withDestinationURL: source.standardizedFileURL)
      case .copy: try fm.copyItem(at: source, to: imageURL)
      }
      try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: labelURL)
    } catch {
      throw LabelingError.file(
        path: imageURL.path, reason: "cannot write the dataset: \(readableCause(error))")
    }
    summary.images += 1
    summary.polygons += lines.count
  }

  /// Writes data.yaml with the class names (an index map, in index order); call it last.
  public func finish(names: [Int: String]) throws {
    var yaml = "# YOLO-seg dataset written by sambatch: yolo train data=\(directory.path)/data.yaml\n"
    yaml += "path: \(yamlString(directory.standardizedFileURL.path))\ntrain: images\nval: images\nnames:\n"
    for index in names.keys.sorted() {
      yaml += "  \(index): \(yamlString(names[index] ?? String(index)))\n"
    }
    do {
      try Data(yaml.utf8).write(to: directory.appendingPathComponent("data.yaml"))
    } catch {
      throw LabelingError.file(
        path: directory.path, reason: "cannot write data.yaml: \(readableCause(error))")
    }
  }

  /// A double-quoted YAML scalar (the JSON escapes are valid YAML).
  private func yamlString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      default:
        if scalar.value < 0x20 {
          out += String(format: "\\x%02x", scalar.value)
        } else {
          out.unicodeScalars.append(scalar)
        }
      }
    }
    return out + "\""
  }
}
