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
         {"id": 70, "image_id": 7, "bbox": [1, 2, 3, 4], "category_id": 1, "segmentation": [[1, 2, 3, 4]]},
         {"id": 71, "image_id": 7, "bbox": [1, 2], "category_id": 9},
         {"id": 72, "image_id": 99, "bbox": [1, 2, 3, 4]},
         {"id": 80, "image_id": 8, "bbox": [0.5, 0, 2, 2], "category_id": 2, "score": 0.25}],
       "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bear"}]}
      """
    var problems: [ManifestProblem] = []
    let images = try ManifestReader.coco(
      data: Data(json.utf8), file: "i.json", box: .xywh, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg", "b.jpg"])
    XCTAssertEqual(images.map(\.sourceImageId), [7, 8])
    XCTAssertEqual(
      images[0].objects,
      [
        ManifestObject(
          sourceId: "70", categoryId: 1, category: "car", box: [1, 2, 3, 4], boxConvention: .xywh, line: 3)
      ])
    XCTAssertEqual(images[1].objects[0].detectorScore, 0.25)
    XCTAssertEqual(images[1].objects[0].category, "bear")
    XCTAssertEqual(
      problems,
      [
        ManifestProblem(
          file: "i.json", line: 4,
          message: "annotations[1]: 'bbox' must be 4 numbers (x0, y0, x1, y1), got 2 values"),
        ManifestProblem(file: "i.json", line: 5, message: "annotations[2]: image_id 99 is not in 'images'"),
      ])
  }

  func testCOCOFilesThatCannotBeUsedStopTheJob() {
    let cases: [(String, String)] = [
      (#"{"annotations": []}"#, "needs an 'images' list"),
      (#"{"images": []}"#, "needs an 'annotations' list"),
      ("not json", "x.json:1: not valid JSON: column 1: expected a value"),
      (
        "{\"images\": [\n{\"id\": 1},\n,]}", "x.json:3: not valid JSON: column 1: expected a value, found ','"
      ),
      (#"[{"image_id": 1, "bbox": [1, 2, 3, 4]}]"#, "coco-results"),
    ]
    for (text, fragment) in cases {
      var problems: [ManifestProblem] = []
      XCTAssertThrowsError(
        try ManifestReader.coco(data: Data(text.utf8), file: "x.json", box: .xywh, problems: &problems), text
      ) {
        XCTAssertTrue($0.localizedDescription.contains("x.json"), $0.localizedDescription)
        XCTAssertTrue(
          $0.localizedDescription.contains(fragment), "\($0.localizedDescription) lacks \(fragment)")
      }
    }
  }

  func testCOCOResultsPairedWithImagesFile() throws {
    let images = """
      {"images": [{"id": 1, "file_name": "p.jpg"}], "annotations": [{"id": 1, "image_id": 5}], "categories": [{"id": 3, "name": "sign"}]}
      """
    let results = """
      [{"image_id": 1, "bbox": [1, 1, 5, 5], "score": 0.9, "category_id": 3},
       {"image_id": 1, "bbox": [2, 2, 5, 5], "score": 0.4, "category_id": 3, "id": 55}]
      """
    var problems: [ManifestProblem] = []
    let list = try ManifestReader.cocoResults(
      data: Data(results.utf8), file: "d.json", imagesData: Data(images.utf8), imagesFile: "i.json",
      box: .xywh, problems: &problems)
    XCTAssertEqual(problems, [], "the images file's annotations are not read")
    XCTAssertEqual(list.count, 1)
    XCTAssertEqual(list[0].objects.map(\.sourceId), ["0", "55"])
    XCTAssertEqual(list[0].objects.map(\.detectorScore), [0.9, 0.4])
    XCTAssertEqual(list[0].objects[0].category, "sign")
    XCTAssertThrowsError(
      try ManifestReader.cocoResults(
        data: Data(images.utf8), file: "d.json", imagesData: Data(images.utf8), imagesFile: "i.json",
        box: .xywh, problems: &problems)
    ) {
      XCTAssertTrue($0.localizedDescription.contains("use format: coco"), $0.localizedDescription)
    }
  }

  // MARK: - One rule for values (issue 6, defect 1)

  /// The issue's repro: a NaN score used to pass `min_score` as a missing score, and "0.1", "2",
  /// 2.5 were taken as missing values. Each now leaves its entry out with a problem naming the
  /// file, the entry, its line and the field.
  func testCOCOResultsWithBadValuesAreProblemsNotMissingValues() throws {
    let dir = try temporaryDirectory()
    try
      #"{"images": [{"id": 3, "file_name": "p.jpg"}], "annotations": [], "categories": [{"id": 2, "name": "car"}]}"#
      .write(to: dir.appendingPathComponent("i.json"), atomically: true, encoding: .utf8)
    let results = """
      [{"image_id":3,"bbox":[22,231,783,525],"score":NaN},
       {"image_id": 3, "bbox": [1, 1, 5, 5], "score": "0.1"},
       {"image_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9, "category_id": "2"},
       {"image_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9, "category_id": 2.5},
       {"image_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9, "id": 1.5},
       {"image_id": "3", "bbox": [1, 1, 5, 5], "score": 0.9},
       {"image_id": 3, "bbox": [1, 1, 5, 5], "score": 0.9, "category_id": 2.0, "id": "abc"}]
      """
    try results.write(to: dir.appendingPathComponent("d.json"), atomically: true, encoding: .utf8)
    let yaml = """
      version: 1
      manifests:
        - {path: d.json, format: coco-results, images: i.json}
      prompts: {min_score: 0.5}
      """
    let job = try JobFile.parse(yaml: yaml, jobURL: dir.appendingPathComponent("job.yaml"))
    let loaded = try LoadedManifests.load(job)
    XCTAssertEqual(
      loaded.images.first?.objects,
      [
        ManifestObject(
          sourceId: "abc", categoryId: 2, category: "car", detectorScore: 0.9, box: [1, 1, 5, 5],
          boxConvention: .xywh,
          line: 7)
      ])
    let file = dir.appendingPathComponent("d.json").path
    XCTAssertEqual(
      loaded.problems,
      [
        ManifestProblem(file: file, line: 1, message: "[0]: 'score' must be a finite number, got NaN"),
        ManifestProblem(file: file, line: 2, message: "[1]: 'score' must be a finite number, got \"0.1\""),
        ManifestProblem(file: file, line: 3, message: "[2]: 'category_id' must be an integer, got \"2\""),
        ManifestProblem(file: file, line: 4, message: "[3]: 'category_id' must be an integer, got 2.5"),
        ManifestProblem(file: file, line: 5, message: "[4]: 'id' must be a string or an integer, got 1.5"),
        ManifestProblem(file: file, line: 6, message: "[5]: 'image_id' must be an integer, got \"3\""),
      ])
    XCTAssertEqual(loaded.belowMinScore, 0, "no score was below min_score; the bad ones are problems")
  }

  func testCOCOInstancesWithBadValues() throws {
    let json = """
      {"images": [{"id": 1, "file_name": "a.jpg"}, {"id": "2", "file_name": "b.jpg"}, {"id": 3, "file_name": 5}],
       "annotations": [
         {"id": "abc", "image_id": 1, "bbox": [1, 2, 3, 4], "score": Infinity},
         {"id": 11, "image_id": 1, "bbox": [1, 2, 3, 4], "category_id": "1"},
         {"id": 12, "image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 1, "bbox": [0, 0, 1, 1]},
         {"id": 13, "image_id": 1, "bbox": [NaN, 2, 3, 4]}],
       "categories": [{"id": 1, "name": "car"}, {"id": 1.5, "name": "x"}]}
      """
    var problems: [ManifestProblem] = []
    let images = try ManifestReader.coco(
      data: Data(json.utf8), file: "i.json", box: .xywh, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg"])
    XCTAssertEqual(images[0].objects.map(\.sourceId), ["13"], "a NaN box is for the geometry rule: kept")
    XCTAssertEqual(
      problems.map(\.message),
      [
        "images[1]: 'id' must be an integer, got \"2\"",
        "images[2]: 'file_name' must be a string, got 5",
        "categories[1]: 'id' must be an integer, got 1.5",
        "annotations[0]: 'score' must be a finite number, got Infinity",
        "annotations[1]: 'category_id' must be an integer, got \"1\"",
        "annotations[2]: 'bbox' appears twice",
      ])
  }

  func testJSONLinesWithMalformedLinesAndNaN() {
    let text = """
      {"image": "a.jpg", "objects": [{"box": [1, 2, 30, 40], "label": "car", "score": 0.5, "id": "x1"}, {"points": [[5, 6, 1], [7, 8, 0]], "id": 12}]}
      not json

      {"objects": []}
      {"image": "b.jpg", "objects": [{"box": [NaN, 2, 3, 4]}, {"box": [1, 2, 3]}, {"points": [[1, 2]]}, {"colour": "red"}, 5]}
      {"image": "c.jpg", "extra": 1}
      {"image": "d.jpg"}
      {"image": "."}
      """
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "m.jsonl", box: .xyxy, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg", "b.jpg", "d.jpg"])
    XCTAssertEqual(
      images[0].objects[0],
      ManifestObject(sourceId: "x1", category: "car", detectorScore: 0.5, box: [1, 2, 30, 40], line: 1))
    XCTAssertEqual(
      images[0].objects[1].points, [PromptPoint(x: 5, y: 6, label: 1), PromptPoint(x: 7, y: 8, label: 0)])
    XCTAssertEqual(images[0].objects[1].sourceId, "12")
    XCTAssertEqual(images[1].objects.count, 1)
    XCTAssertTrue(images[1].objects[0].box?[0].isNaN ?? false, "NaN is read; the geometry rule rejects it")
    XCTAssertEqual(images[2].objects, [])
    XCTAssertEqual(
      problems,
      [
        ManifestProblem(
          file: "m.jsonl", line: 2, message: "not valid JSON: column 1: expected a value, found 'n'"),
        ManifestProblem(file: "m.jsonl", line: 4, message: "no 'image' path"),
        ManifestProblem(
          file: "m.jsonl", line: 5,
          message: "objects[1]: 'box' must be 4 numbers (x0, y0, x1, y1), got 3 values"),
        ManifestProblem(
          file: "m.jsonl", line: 5, message: "objects[2]: 'points' item 1 must be [x, y, label], got 2 values"
        ),
        ManifestProblem(
          file: "m.jsonl", line: 5,
          message: "objects[3]: unknown key 'colour' (allowed: box, points, label, category_id, score, id)"),
        ManifestProblem(file: "m.jsonl", line: 5, message: "objects[4]: not a JSON object"),
        ManifestProblem(file: "m.jsonl", line: 6, message: "unknown key 'extra' (allowed: image, objects)"),
        ManifestProblem(file: "m.jsonl", line: 8, message: "'image' \".\" does not name a file"),
      ])
  }

  func testJSONLinesFieldsOfTheWrongTypeLeaveTheObjectOut() {
    let text = """
      {"image": "a.jpg", "objects": [{"box": [1, 2, 30, 40], "id": 1.5}, {"box": [1, 2, 30, 40], "category_id": "x"}, {"box": [1, 2, 30, 40], "score": "high"}, {"box": [1, 2, 30, 40], "label": 5}, {"box": [1, 2, 30, 40], "score": NaN}, {"box": [1, 2, 30, 40], "score": null, "id": 7, "category_id": 3.0}]}
      {"image": "b.jpg", "objects": [{"box": [1, 2, 3, 1e309]}]}
      """
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "m.jsonl", box: .xyxy, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg"])
    // null is absent; an integral 3.0 is an integer.
    XCTAssertEqual(
      images[0].objects, [ManifestObject(sourceId: "7", categoryId: 3, box: [1, 2, 30, 40], line: 1)])
    XCTAssertEqual(
      problems.map(\.message),
      [
        "objects[0]: 'id' must be a string or an integer, got 1.5",
        "objects[1]: 'category_id' must be an integer, got \"x\"",
        "objects[2]: 'score' must be a finite number, got \"high\"",
        "objects[3]: 'label' must be a string, got 5",
        "objects[4]: 'score' must be a finite number, got NaN",
        "not valid JSON: column 50: the number 1e309 is out of range (it does not fit a double)",
      ])
    XCTAssertEqual(problems.map(\.line), [1, 1, 1, 1, 1, 2])
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
    XCTAssertEqual(loaded.problems, [])
    // The hash follows the bytes.
    try #"{"image": "b.jpg", "objects": []}"#.write(
      to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    XCTAssertNotEqual(try LoadedManifests.load(job).sha256, loaded.sha256)
  }

  // MARK: - Another tool's JSON Lines (issue 11, item 1)

  func testForeignJSONLinesAreReadThroughTheirKeys() throws {
    let text = """
      {"file": "dog.jpg", "caption": "a dog", "detections": [{"bbox": [10, 20, 200, 300], "logit": 0.45, "phrase": "dog", "value": 1}, {"value": 0, "phrase": "background"}]}
      {"file": "cat.jpg", "detections": [{"bbox": [1, 2, 3, 4], "logit": "high"}, {"bbox": [1, 2, 3, 4], "logit": 0.5, "logit": 0.6}]}
      """
    let keys = JSONLinesKeys([
      "image": "file", "objects": "detections", "box": "bbox", "score": "logit", "label": "phrase",
      "id": "uid",
    ])
    XCTAssertNil(keys.problem)
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "dino.jsonl", box: .xyxy, keys: keys, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["dog.jpg", "cat.jpg"])
    XCTAssertEqual(
      images[0].objects,
      [
        ManifestObject(category: "dog", detectorScore: 0.45, box: [10, 20, 200, 300], line: 1),
        ManifestObject(category: "background", line: 1),
      ])
    XCTAssertEqual(images[1].objects, [])
    XCTAssertEqual(
      problems,
      [
        ManifestProblem(
          file: "dino.jsonl", line: 2, message: "objects[0]: 'logit' must be a finite number, got \"high\""),
        ManifestProblem(file: "dino.jsonl", line: 2, message: "objects[1]: 'logit' appears twice"),
        ManifestProblem(
          file: "dino.jsonl", line: nil,
          message: "keys: 'id' is read from 'uid', but no line or object of the file has that key"),
      ])
    // Without the mapping the same file is refused line by line.
    problems = []
    XCTAssertEqual(
      ManifestReader.jsonLines(data: Data(text.utf8), file: "dino.jsonl", box: .xyxy, problems: &problems), []
    )
    XCTAssertEqual(problems.first?.message, "unknown key 'file' (allowed: image, objects)")
  }

  func testForeignJSONLinesInColumns() throws {
    // Grounding DINO's predict() returns boxes (normalized centre form), logits and phrases.
    let text = """
      {"image_path": "a.jpg", "boxes": [[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1]], "logits": [0.45, 0.3], "phrases": ["dog", "cat"]}
      {"image_path": "b.jpg", "boxes": [[0.5, 0.5, 0.2, 0.4]], "logits": [0.45, 0.3]}
      {"image_path": "c.jpg", "boxes": [], "logits": [], "phrases": []}
      """
    let keys = JSONLinesKeys(["image": "image_path", "box": "boxes", "score": "logits", "label": "phrases"])
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "dino.jsonl", box: .cxcywhNormalized, keys: keys, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["a.jpg", "c.jpg"])
    XCTAssertEqual(
      images[0].objects,
      [
        ManifestObject(
          category: "dog", detectorScore: 0.45, box: [0.5, 0.5, 0.2, 0.4], boxConvention: .cxcywhNormalized,
          line: 1),
        ManifestObject(
          category: "cat", detectorScore: 0.3, box: [0.1, 0.1, 0.1, 0.1], boxConvention: .cxcywhNormalized,
          line: 1),
      ])
    XCTAssertEqual(images[1].objects, [])
    XCTAssertEqual(
      problems,
      [
        ManifestProblem(
          file: "dino.jsonl", line: 2,
          message: "the columns 'boxes' (1 value) and 'logits' (2 values) must have one value per object")
      ])
  }

  func testForeignJSONLinesWithOneDetectionPerLine() throws {
    let text = """
      {"img": "a.jpg", "bbox": [1, 2, 30, 40], "conf": 0.9, "name": "car"}
      {"img": "./a.jpg", "bbox": [5, 5, 9, 9], "conf": 0.4, "name": "bus", "frame": 7}
      {"img": "b.jpg", "pts": [[3, 4, 1], [5, 6, 0]]}
      """
    let keys = JSONLinesKeys([
      "image": "img", "box": "bbox", "score": "conf", "label": "name", "points": "pts",
    ])
    var problems: [ManifestProblem] = []
    let images = ManifestReader.jsonLines(
      data: Data(text.utf8), file: "d.jsonl", box: .xyxy, keys: keys, problems: &problems)
    XCTAssertEqual(problems, [])
    XCTAssertEqual(
      images.map(\.path), ["a.jpg", "a.jpg", "b.jpg"], "the lines of one image merge when loaded")
    XCTAssertEqual(
      images.flatMap(\.objects),
      [
        ManifestObject(category: "car", detectorScore: 0.9, box: [1, 2, 30, 40], line: 1),
        ManifestObject(category: "bus", detectorScore: 0.4, box: [5, 5, 9, 9], line: 2),
        ManifestObject(
          points: [PromptPoint(x: 3, y: 4, label: 1), PromptPoint(x: 5, y: 6, label: 0)], line: 3),
      ])
  }

  func testKeysInTheJobFile() throws {
    let dir = try temporaryDirectory()
    try #"{"file": "a.jpg", "objects": [{"bbox": [0, 0, 5, 5], "logit": 0.9}]}"#.write(
      to: dir.appendingPathComponent("d.jsonl"), atomically: true, encoding: .utf8)
    func job(_ entry: String) throws -> JobFile {
      try JobFile.parse(
        yaml: "version: 1\nmanifests:\n  - \(entry)\n", jobURL: dir.appendingPathComponent("job.yaml"))
    }
    let mapped = try job("{path: d.jsonl, format: jsonl, keys: {image: file, box: bbox, score: logit}}")
    XCTAssertEqual(mapped.manifests[0].keys, ["image": "file", "box": "bbox", "score": "logit"])
    let loaded = try LoadedManifests.load(mapped)
    XCTAssertEqual(loaded.problems, [])
    XCTAssertEqual(loaded.images.first?.objects.first?.detectorScore, 0.9)
    let other = try job("{path: d.jsonl, format: jsonl, keys: {image: file, box: bbox}}")
    XCTAssertNotEqual(
      try LoadedManifests.load(other).sha256, loaded.sha256, "the mapping is part of the hash")
    let refused: [(String, String)] = [
      ("{path: d.jsonl, format: coco, keys: {image: file}}", "only applies to format jsonl"),
      ("{path: d.jsonl, format: jsonl, keys: {picture: file}}", "unknown key"),
      (
        "{path: d.jsonl, format: jsonl, keys: {box: b, points: b}}",
        "'box' and 'points' are both read from 'b'"
      ),
      ("{path: d.jsonl, format: jsonl, keys: {score: box}}", "'box' and 'score' are both read from 'box'"),
      ("{path: d.jsonl, format: jsonl, keys: {score: 5}}", "must be a string"),
    ]
    for (entry, fragment) in refused {
      XCTAssertThrowsError(try job(entry), entry) {
        XCTAssertTrue(
          $0.localizedDescription.contains(fragment), "\($0.localizedDescription) lacks \(fragment)")
      }
    }
  }

  // MARK: - Duplicates (issue 6, defect 7)

  private func load(_ manifests: [(name: String, format: String, content: String)]) throws -> (
    LoadedManifests, URL
  ) {
    let dir = try temporaryDirectory()
    var yaml = "version: 1\nimages: pictures\nmanifests:\n"
    for m in manifests {
      try m.content.write(to: dir.appendingPathComponent(m.name), atomically: true, encoding: .utf8)
      yaml += "  - {path: \(m.name), format: \(m.format)}\n"
    }
    let job = try JobFile.parse(yaml: yaml, jobURL: dir.appendingPathComponent("job.yaml"))
    return (try LoadedManifests.load(job), dir)
  }

  func testImagePathsAreNormalized() {
    let cases: [(String, String?)] = [
      ("z.jpg", "z.jpg"), ("./z.jpg", "z.jpg"), ("a//b/./c.jpg", "a/b/c.jpg"), ("a/../z.jpg", "z.jpg"),
      ("../up/z.jpg", "../up/z.jpg"), ("a/../../z.jpg", "../z.jpg"), ("/data/./x/../z.jpg", "/data/z.jpg"),
      ("/../z.jpg", "/z.jpg"), ("dir/", "dir"), (".", nil), ("", nil), ("a/..", nil), ("/", nil), ("..", nil),
    ]
    for (path, expected) in cases { XCTAssertEqual(ImagePath.normalize(path), expected, path) }
  }

  func testPathsNamingOneFileAreOneImage() throws {
    let jsonl = """
      {"image": "z.jpg", "objects": [{"box": [0, 0, 1, 1]}]}
      {"image": "./z.jpg", "objects": [{"box": [0, 0, 2, 2]}]}
      {"image": "y.jpg"}
      """
    let coco =
      #"{"images": [{"id": 4, "file_name": "sub/../z.jpg"}], "annotations": [{"id": 1, "image_id": 4, "bbox": [0, 0, 3, 3]}]}"#
    let (loaded, _) = try load([("m.jsonl", "jsonl", jsonl), ("i.json", "coco", coco)])
    XCTAssertEqual(loaded.images.map(\.path), ["z.jpg", "y.jpg"])
    XCTAssertEqual(loaded.images[0].objects.map { $0.box?[2] }, [1, 2, 3])
    XCTAssertEqual(loaded.images[0].sourceImageId, 4, "the COCO id is kept for the merged image")
    XCTAssertEqual(loaded.problems, [])
  }

  func testAnAbsolutePathIntoTheImagesFolderIsTheSameImage() throws {
    let dir = try temporaryDirectory()
    let absolute = dir.appendingPathComponent("pictures/z.jpg").path
    try """
    {"image": "z.jpg", "objects": [{"box": [0, 0, 1, 1]}]}
    {"image": "\(absolute)", "objects": [{"box": [0, 0, 2, 2]}]}
    """.write(to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    let job = try JobFile.parse(
      yaml: "version: 1\nimages: pictures/\nmanifests: [{path: m.jsonl, format: jsonl}]",
      jobURL: dir.appendingPathComponent("job.yaml"))
    let loaded = try LoadedManifests.load(job)
    XCTAssertEqual(loaded.images.map(\.path), ["z.jpg"])
    XCTAssertEqual(loaded.images[0].objects.count, 2)
  }

  func testCOCOImagesNamingOneFileAreReportedNotMerged() throws {
    let coco = """
      {"images": [{"id": 3, "file_name": "z.jpg"},
                  {"id": 7, "file_name": "./z.jpg"}],
       "annotations": [{"id": 1, "image_id": 3, "bbox": [0, 0, 1, 1]}, {"id": 2, "image_id": 7, "bbox": [0, 0, 2, 2]}]}
      """
    let (loaded, dir) = try load([("i.json", "coco", coco)])
    XCTAssertEqual(loaded.images.map(\.path), ["z.jpg"])
    XCTAssertEqual(loaded.images[0].sourceImageId, 3)
    XCTAssertEqual(loaded.images[0].objects.map(\.sourceId), ["1"])
    XCTAssertEqual(
      loaded.problems,
      [
        ManifestProblem(
          file: dir.appendingPathComponent("i.json").path, line: 2,
          message: "image id 7 names z.jpg, as image id 3 (line 1) does: left out, with its 1 object")
      ])
  }

  func testDuplicateImagesOfAResultsListAreReportedAgainstItsImagesFile() throws {
    let images = """
      {"images": [{"id": 3, "file_name": "z.jpg"},
                  {"id": 7, "file_name": "./z.jpg"}]}
      """
    let dir = try temporaryDirectory()
    try images.write(to: dir.appendingPathComponent("i.json"), atomically: true, encoding: .utf8)
    try #"[{"image_id": 7, "bbox": [1, 1, 2, 2]}]"#.write(
      to: dir.appendingPathComponent("d.json"), atomically: true, encoding: .utf8)
    let job = try JobFile.parse(
      yaml: "version: 1\nmanifests: [{path: d.json, format: coco-results, images: i.json}]",
      jobURL: dir.appendingPathComponent("job.yaml"))
    let loaded = try LoadedManifests.load(job)
    XCTAssertEqual(loaded.images.map(\.sourceImageId), [3])
    XCTAssertEqual(loaded.images.first?.objects, [])
    XCTAssertEqual(
      loaded.problems,
      [
        ManifestProblem(
          file: dir.appendingPathComponent("i.json").path, line: 2,
          message: "image id 7 names z.jpg, as image id 3 (line 1) does: left out, with its 1 object")
      ])
  }

  func testDuplicateIdsAreReported() throws {
    let coco = """
      {"images": [{"id": 3, "file_name": "z.jpg"}, {"id": 4, "file_name": "y.jpg"}, {"id": 3, "file_name": "x.jpg"}],
       "annotations": [
         {"id": 1, "image_id": 3, "bbox": [0, 0, 1, 1]},
         {"id": 1, "image_id": 4, "bbox": [0, 0, 2, 2]}]}
      """
    let jsonl = """
      {"image": "z.jpg", "objects": [{"id": "a", "box": [0, 0, 1, 1]}, {"id": 7, "box": [0, 0, 1, 1]}]}
      {"image": "y.jpg", "objects": [{"id": "a", "box": [0, 0, 1, 1]}]}
      {"image": "z.jpg", "objects": [{"id": "a", "box": [0, 0, 2, 2]}, {"id": "7", "box": [0, 0, 1, 1]}]}
      """
    let (loaded, dir) = try load([("i.json", "coco", coco), ("m.jsonl", "jsonl", jsonl)])
    let i = dir.appendingPathComponent("i.json").path
    let m = dir.appendingPathComponent("m.jsonl").path
    XCTAssertEqual(
      loaded.problems,
      [
        ManifestProblem(
          file: i, line: 1, message: "images[2]: image id 3 appears twice (first as z.jpg on line 1)"),
        ManifestProblem(
          file: i, line: 4, message: "annotations[1]: id \"1\" appears twice (first on line 3)"),
        ManifestProblem(
          file: m, line: 3,
          message: "object id \"a\" of z.jpg appears twice (first on line 1): the second is left out"),
        ManifestProblem(
          file: m, line: 3,
          message: "object id \"7\" of z.jpg appears twice (first on line 1): the second is left out"),
      ])
    // Ids are per manifest: the COCO annotation 1 and the JSON Lines object "a" do not collide.
    XCTAssertEqual(loaded.images.map(\.path), ["z.jpg", "y.jpg"])
    XCTAssertEqual(loaded.images[0].objects.map(\.sourceId), ["1", "a", "7"])
    XCTAssertEqual(loaded.images[1].objects.map(\.sourceId), ["a"])
  }

  func testAnImageWithTwoIdsInTwoManifestsKeepsTheFirst() throws {
    let first = #"{"images": [{"id": 3, "file_name": "z.jpg"}], "annotations": []}"#
    let second = #"{"images": [{"id": 9, "file_name": "./z.jpg"}], "annotations": []}"#
    let (loaded, dir) = try load([("a.json", "coco", first), ("b.json", "coco", second)])
    XCTAssertEqual(loaded.images.map(\.sourceImageId), [3])
    XCTAssertEqual(
      loaded.problems,
      [
        ManifestProblem(
          file: dir.appendingPathComponent("b.json").path, line: 1,
          message:
            "z.jpg is image id 9 here but image id 3 in \(dir.appendingPathComponent("a.json").path): it keeps id 3"
        )
      ])
  }
}
