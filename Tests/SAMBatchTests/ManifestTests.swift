import Foundation
import MobileSAM
import SAMBatch
import TestSupport
import XCTest

final class ManifestTests: XCTestCase {
  func testCOCOInstances() throws {
    let json = """
      {"images": [{"id": 7, "file_name": "a.jpg", "width": 10, "height": 10}, {"id": 8, "file_name": "b.jpg"}],
       "annotations": [
         {"id": 70, "image_id": 7, "bbox": [1, 2, 3, 4], "category_id": 1},
         {"id": 71, "image_id": 7, "bbox": [1, 2], "category_id": 9},
         {"id": 72, "image_id": 99, "bbox": [1, 2, 3, 4]},
         {"id": 80, "image_id": 8, "bbox": [0.5, 0, 2, 2], "category_id": 2, "score": 0.25}],
       "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bear"}]}
      """
    var problems: [ManifestProblem] = []
    let images = try ManifestReader.coco(
      data: Data(json.utf8), file: "i.json", box: .xywh, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg", "b.jpg"])
    XCTAssertEqual(images[0].objects.count, 2)
    XCTAssertEqual(
      images[0].objects[0],
      ManifestObject(sourceId: "70", categoryId: 1, category: "car", box: [1, 2, 3, 4], boxConvention: .xywh))
    XCTAssertNotNil(images[0].objects[1].error, "a 2-number bbox is a rejected prompt")
    XCTAssertNil(images[0].objects[1].category, "category 9 has no name")
    XCTAssertEqual(images[1].objects[0].detectorScore, 0.25)
    XCTAssertEqual(problems.count, 1)
    XCTAssertTrue(problems[0].message.contains("image_id 99"))
  }

  func testCOCOWithoutImagesIsAnError() {
    var problems: [ManifestProblem] = []
    XCTAssertThrowsError(
      try ManifestReader.coco(
        data: Data("{\"annotations\": []}".utf8), file: "x.json", box: .xywh, problems: &problems)
    ) {
      XCTAssertTrue($0.localizedDescription.contains("x.json"))
    }
    XCTAssertThrowsError(
      try ManifestReader.coco(data: Data("not json".utf8), file: "x.json", box: .xywh, problems: &problems))
  }

  func testCOCOResultsPairedWithImagesFile() throws {
    let images = """
      {"images": [{"id": 1, "file_name": "p.jpg"}], "annotations": [], "categories": [{"id": 3, "name": "sign"}]}
      """
    let results = """
      [{"image_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9, "category_id": 3},
       {"image_id": 1, "bbox": [2, 2, 5, 5], "score": 0.4, "category_id": 3, "id": 55}]
      """
    var problems: [ManifestProblem] = []
    let list = try ManifestReader.cocoResults(
      data: Data(results.utf8), file: "d.json", imagesData: Data(images.utf8), imagesFile: "i.json",
      box: .xywh,
      problems: &problems)
    XCTAssertEqual(list.count, 1)
    XCTAssertEqual(list[0].objects.map(\.sourceId), ["0", "55"])
    XCTAssertEqual(list[0].objects.map(\.detectorScore), [0.9, 0.4])
    XCTAssertEqual(list[0].objects[0].category, "sign")
  }

  func testJSONLinesWithMalformedLinesAndNaN() {
    let text = """
      {"image": "a.jpg", "objects": [{"box": [1, 2, 30, 40], "label": "car", "score": 0.5, "id": "x1"}, {"points": [[5, 6, 1], [7, 8, 0]], "id": 12}]}
      not json

      {"objects": []}
      {"image": "b.jpg", "objects": [{"box": [NaN, 2, 3, 4]}, {"box": [1, 2, 3]}, {"points": [[1, 2]]}, {"colour": "red"}]}
      {"image": "c.jpg", "extra": 1}
      {"image": "d.jpg"}
      """
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "m.jsonl", box: .xyxy, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg", "b.jpg", "d.jpg"])
    XCTAssertEqual(
      images[0].objects[0],
      ManifestObject(sourceId: "x1", category: "car", detectorScore: 0.5, box: [1, 2, 30, 40]))
    XCTAssertEqual(
      images[0].objects[1].points, [PromptPoint(x: 5, y: 6, label: 1), PromptPoint(x: 7, y: 8, label: 0)])
    XCTAssertEqual(images[0].objects[1].sourceId, "12")
    XCTAssertEqual(problems.map(\.line), [2, 4, 6])
    let b = images[1].objects
    XCTAssertNil(b[0].error, "NaN is read; the prompt builder rejects it")
    XCTAssertTrue(b[0].box![0].isNaN)
    XCTAssertNotNil(b[1].error)
    XCTAssertNotNil(b[2].error)
    XCTAssertTrue(b[3].error?.contains("colour") ?? false)
    XCTAssertEqual(images[2].objects, [])
  }

  func testJSONLinesFieldsOfTheWrongTypeRejectTheObject() {
    let text = """
      {"image": "a.jpg", "objects": [{"box": [1, 2, 30, 40], "id": 1.5}, {"box": [1, 2, 30, 40], "category_id": "x"}, {"box": [1, 2, 30, 40], "score": "high"}, {"box": [1, 2, 30, 40], "label": 5}, {"box": [1, 2, 30, 40], "score": NaN}, {"box": [1, 2, 30, 40], "score": null, "id": 7, "category_id": 3.0}]}
      {"image": "b.jpg", "objects": [{"box": [1, 2, 3, 1e309]}]}
      """
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "m.jsonl", box: .xyxy, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg"])
    let errors = images[0].objects.map(\.error)
    XCTAssertEqual(
      errors,
      [
        "object 0: 'id' must be a string or an integer, got 1.5",
        "object 1: 'category_id' must be an integer, got \"x\"",
        "object 2: 'score' must be a finite number, got \"high\"",
        "object 3: 'label' must be a string, got 5",
        "object 4: 'score' must be a finite number, got NaN",
        nil,
      ])
    // null is absent; an integral 3.0 is an integer.
    XCTAssertEqual(
      images[0].objects[5], ManifestObject(sourceId: "7", categoryId: 3, box: [1, 2, 30, 40]))
    XCTAssertEqual(problems.map(\.line), [2])
    XCTAssertTrue(problems.first?.message.hasPrefix("not valid JSON: ") ?? false, "\(problems)")
    XCTAssertNotEqual(problems.first?.message, "not valid JSON: ", "the parser's reason follows")
  }

  func testNonFiniteTokensInsideStringsAreLeftAlone() {
    let text =
      #"{"image": "NaN Infinity.jpg", "objects": [{"label": "say \"NaN\"", "box": [-Infinity, 0, Infinity, 1]}]}"#
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "m.jsonl", box: .xyxy, problems: &problems)
    XCTAssertEqual(problems, [])
    XCTAssertEqual(images.first?.path, "NaN Infinity.jpg")
    XCTAssertEqual(images.first?.objects.first?.category, "say \"NaN\"")
    XCTAssertEqual(images.first?.objects.first?.box?[0], -.infinity)
    XCTAssertEqual(images.first?.objects.first?.box?[2], .infinity)
  }

  func testLoadMergesManifestsInOrderAndFiltersByScore() throws {
    let dir = try temporaryDirectory()
    try
      #"{"image": "b.jpg", "objects": [{"box": [0, 0, 1, 1], "score": 0.1}, {"box": [0, 0, 2, 2], "score": 0.9}]}"#
      .write(to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    try
      #"{"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}], "annotations": [{"id": 5, "image_id": 2, "bbox": [0, 0, 3, 3]}]}"#
      .write(to: dir.appendingPathComponent("i.json"), atomically: true, encoding: .utf8)
    let yaml = """
      version: 1
      manifests:
        - {path: i.json, format: coco}
        - {path: m.jsonl, format: jsonl}
      prompts: {min_score: 0.5}
      """
    let job = try JobFile.parse(yaml: yaml, jobURL: dir.appendingPathComponent("job.yaml"))
    let loaded = try LoadedManifests.load(job)
    XCTAssertEqual(loaded.images.map(\.path), ["a.jpg", "b.jpg"])
    XCTAssertEqual(loaded.images[1].objects.map(\.box), [[0, 0, 3, 3], [0, 0, 2, 2]])
    XCTAssertEqual(loaded.belowMinScore, 1)
    // The hash follows the bytes.
    try #"{"image": "b.jpg", "objects": []}"#.write(
      to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    XCTAssertNotEqual(try LoadedManifests.load(job).sha256, loaded.sha256)
  }
}

func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sambatch-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  return url
}
