import Foundation
import MobileSAM
import TestSupport
import XCTest

@testable import SAMBatch

final class YOLOTests: XCTestCase {
  var folder: URL!

  override func setUpWithError() throws {
    folder = FileManager.default.temporaryDirectory.appendingPathComponent("yolo-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: folder)
  }

  func write(_ text: String, _ relative: String) throws {
    let url = folder.appendingPathComponent(relative)
    try FileManager.default.createDirectory(
      at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try Data(text.utf8).write(to: url)
  }

  // MARK: - Names

  func testNamesAsListOrIndexMap() throws {
    XCTAssertEqual(
      try YOLOLabels.parseNames("names: [person, car]\n", file: "d.yaml"), [0: "person", 1: "car"])
    XCTAssertEqual(
      try YOLOLabels.parseNames("path: x\nnames:\n  0: person\n  2: traffic light\n", file: "d.yaml"),
      [0: "person", 2: "traffic light"])
  }

  func testBadDatasetYAMLIsOneClearError() {
    for (text, expected) in [
      ("- a\n- b\n", "must be a mapping with 'names'"), ("nc: 2\n", "no 'names' key"),
      ("names: person\n", "must be a list or a map"), ("names: {x: person}\n", "is not a class index"),
      ("names: [\n", "not valid YAML"), ("names: []\n", "'names' is empty"),
    ] {
      XCTAssertThrowsError(try YOLOLabels.parseNames(text, file: "data.yaml"), text) { error in
        let message = error.localizedDescription
        XCTAssertTrue(message.hasPrefix("data.yaml: "), message)
        XCTAssertTrue(message.contains(expected), "\(text): \(message)")
      }
    }
    XCTAssertThrowsError(try YOLOLabels.readNames(folder.appendingPathComponent("missing.yaml"))) { error in
      XCTAssertTrue(error.localizedDescription.contains("missing.yaml"), error.localizedDescription)
    }
  }

  // MARK: - Label lines

  func testLinesWithAndWithoutConfidence() {
    let text = "0 0.5 0.5 0.2 0.4\n\n1 0.25 0.75 0.1 0.1 0.87\n"
    let (detections, problems) = YOLOLabels.parse(text, file: "a.txt", names: [0: "person", 1: "car"])
    XCTAssertEqual(problems, [])
    XCTAssertEqual(detections.count, 2)
    XCTAssertEqual(detections[0].category, "person")
    XCTAssertNil(detections[0].confidence)
    XCTAssertEqual(detections[1].line, 3)
    XCTAssertEqual(detections[1].confidence, 0.87)
    XCTAssertEqual(detections[0].pixelBox(width: 100, height: 50), [40, 15, 60, 35])
  }

  func testBadLinesAreProblemsWithFileLineAndReason() {
    let text = """
      0 0.5 0.5 0.2
      0 0.5 0.5 0.2 0.2 0.9 1
      5 0.5 0.5 0.2 0.2
      0 1.5 0.5 0.2 0.2
      0 0.5 nan 0.2 0.2
      x 0.5 0.5 0.2 0.2
      0 0.5 0.5 0.2 abc
      1 0.5 0.5 0.2 0.2
      """
    let (detections, problems) = YOLOLabels.parse(text, file: "labels/a.txt", names: [0: "person", 1: "car"])
    XCTAssertEqual(detections.map(\.line), [8], "the good line after the bad ones is read")
    XCTAssertEqual(problems.map(\.line), [1, 2, 3, 4, 5, 6, 7])
    XCTAssertTrue(problems.allSatisfy { $0.file == "labels/a.txt" })
    let reasons = problems.map(\.message)
    XCTAssertTrue(reasons[0].contains("4 fields"), reasons[0])
    XCTAssertTrue(reasons[1].contains("7 fields"), reasons[1])
    XCTAssertTrue(reasons[2].contains("class 5 is past the names"), reasons[2])
    XCTAssertTrue(reasons[3].contains("outside 0-1"), reasons[3])
    XCTAssertTrue(reasons[4].contains("NaN"), reasons[4])
    XCTAssertTrue(reasons[5].contains("not a class index"), reasons[5])
    XCTAssertTrue(reasons[6].contains("not a number"), reasons[6])
    XCTAssertEqual(problems[0].description, "labels/a.txt:1: \(reasons[0])")
  }

  // MARK: - Images by stem

  func testImagesAreMatchedByStem() throws {
    try write("x", "images/a.jpg")
    try write("x", "images/sub/b.PNG")
    try write("x", "images/c.jpeg")
    try write("x", "images/notes.txt")
    try write("0 0.5 0.5 0.2 0.2\n", "labels/a.txt")
    try write("", "labels/b.txt")
    try write("0 0.5 0.5 0.2 0.2\n", "labels/orphan.txt")
    let (pairings, problems) = try YOLOLabels.pair(
      imagesFolder: folder.appendingPathComponent("images"),
      labelsFolder: folder.appendingPathComponent("labels"))
    XCTAssertEqual(pairings.map(\.image), ["a.jpg", "c.jpeg", "sub/b.PNG"])
    XCTAssertEqual(pairings.map { $0.labelFile?.lastPathComponent }, ["a.txt", nil, "b.txt"])
    XCTAssertEqual(problems.count, 1)
    XCTAssertTrue(problems[0].file.hasSuffix("labels/orphan.txt"))
    XCTAssertTrue(problems[0].message.contains("no image 'orphan.jpg'"), problems[0].message)
  }

  func testAStemMatchingTwoImagesIsAnErrorNamingBoth() throws {
    try write("x", "images/a.jpg")
    try write("x", "images/a.png")
    try write("", "labels/a.txt")
    XCTAssertThrowsError(
      try YOLOLabels.pair(
        imagesFolder: folder.appendingPathComponent("images"),
        labelsFolder: folder.appendingPathComponent("labels"))
    ) { error in
      let message = error.localizedDescription
      XCTAssertTrue(message.contains("'a.jpg'") && message.contains("'a.png'"), message)
    }
  }

  // MARK: - YOLO-seg dataset

  func testDatasetLayoutAsUltralyticsReadsIt() throws {
    try write("jpeg bytes", "src/photo.jpg")
    try write("png bytes", "src/sub/empty.png")
    var pixels = [UInt8](repeating: 0, count: 10 * 5)
    for y in 1..<3 { for x in 2..<6 { pixels[y * 10 + x] = 1 } }
    let mask = BinaryMask(width: 10, height: 5, pixels: pixels)
    let out = folder.appendingPathComponent("dataset")
    let writer = try YOLOSegDatasetWriter(directory: out)
    try writer.add(
      relativePath: "photo.jpg", source: folder.appendingPathComponent("src/photo.jpg"), width: 10, height: 5,
      masks: [(1, mask), (0, BinaryMask(width: 10, height: 5, pixels: [UInt8](repeating: 0, count: 50)))])
    try writer.add(
      relativePath: "sub/empty.png", source: folder.appendingPathComponent("src/sub/empty.png"), width: 4,
      height: 4,
      masks: [])
    try writer.finish(names: [0: "person", 1: "traffic \"light\""])
    XCTAssertEqual(
      writer.summary, YOLOSegDatasetWriter.Summary(images: 2, polygons: 1, emptyMasks: 1, droppedParts: 0))

    let label = try String(contentsOf: out.appendingPathComponent("labels/photo.txt"), encoding: .utf8)
    XCTAssertEqual(label, "1 0.25 0.3 0.55 0.3 0.55 0.5 0.25 0.5\n")
    XCTAssertEqual(
      try String(contentsOf: out.appendingPathComponent("labels/sub/empty.txt"), encoding: .utf8), "")
    XCTAssertEqual(
      try FileManager.default.destinationOfSymbolicLink(
        atPath: out.appendingPathComponent("images/photo.jpg").path),
      folder.appendingPathComponent("src/photo.jpg").standardizedFileURL.path)
    XCTAssertEqual(
      try String(contentsOf: out.appendingPathComponent("images/sub/empty.png"), encoding: .utf8), "png bytes"
    )
    let yaml = try String(contentsOf: out.appendingPathComponent("data.yaml"), encoding: .utf8)
    XCTAssertEqual(try YOLOLabels.parseNames(yaml, file: "data.yaml"), [0: "person", 1: "traffic \"light\""])
    XCTAssertTrue(yaml.contains("train: images\nval: images\n"), yaml)

    // A second export into the same folder is refused rather than mixed in.
    XCTAssertThrowsError(try YOLOSegDatasetWriter(directory: out))
  }

  func testDatasetCopiesImagesWhenAsked() throws {
    try write("jpeg bytes", "src/photo.jpg")
    let out = folder.appendingPathComponent("dataset")
    let writer = try YOLOSegDatasetWriter(directory: out, reference: .copy)
    try writer.add(
      relativePath: "photo.jpg", source: folder.appendingPathComponent("src/photo.jpg"), width: 4, height: 4,
      masks: [])
    XCTAssertNil(
      try? FileManager.default.destinationOfSymbolicLink(
        atPath: out.appendingPathComponent("images/photo.jpg").path))
    XCTAssertEqual(
      try String(contentsOf: out.appendingPathComponent("images/photo.jpg"), encoding: .utf8), "jpeg bytes")
    XCTAssertThrowsError(
      try writer.add(
        relativePath: "../escape.jpg", source: folder.appendingPathComponent("src/photo.jpg"), width: 4,
        height: 4,
        masks: []))
  }
}
