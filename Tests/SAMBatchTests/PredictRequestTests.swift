import Foundation
import MobileSAM
import SAMBatch
import TestSupport
import XCTest

final class PredictRequestTests: XCTestCase {
  private var folder: URL!

  override func setUpWithError() throws {
    folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "predict-request-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: folder)
  }

  private func request(
    boxes: [String] = [], points: [String] = [], maskInput: String? = nil, promptsFile: String? = nil
  ) throws -> PredictRequest {
    try PredictRequest.fromOptions(
      boxes: boxes, points: points, maskInput: maskInput, promptsFile: promptsFile)
  }

  private func assertFails(
    boxes: [String] = [], points: [String] = [], maskInput: String? = nil, promptsFile: String? = nil,
    _ fragments: String..., file: StaticString = #filePath, line: UInt = #line
  ) {
    XCTAssertThrowsError(
      try request(boxes: boxes, points: points, maskInput: maskInput, promptsFile: promptsFile), file: file,
      line: line
    ) { error in
      let message = error.localizedDescription
      for fragment in fragments {
        XCTAssertTrue(
          message.contains(fragment), "\"\(message)\" lacks \"\(fragment)\"", file: file, line: line)
      }
    }
  }

  private func write(_ text: String, _ name: String) throws -> String {
    let url = folder.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
  }

  private func writeMask(_ name: String, shape: [Int], value: Float = 0.5) throws -> String {
    let url = folder.appendingPathComponent(name)
    try Npy.write(
      NpyArray(shape: shape, values: [Float](repeating: value, count: shape.reduce(1, *))), to: url)
    return url.path
  }

  // MARK: - Prompt forms (the Ultralytics MobileSAM docs' list)

  func testOnePoint() throws {
    let r = try request(points: ["100,200,1"])
    XCTAssertEqual(r.prompts, [Prompt(points: [PromptPoint(x: 100, y: 200, label: 1)])])
  }

  func testSeveralPointsForOneObjectWithNegatives() throws {
    let r = try request(points: ["1.5,2,1", " 3 , 4 ,0", "5e1,6,1"])
    XCTAssertEqual(
      r.prompts,
      [
        Prompt(points: [
          PromptPoint(x: 1.5, y: 2, label: 1), PromptPoint(x: 3, y: 4, label: 0),
          PromptPoint(x: 50, y: 6, label: 1),
        ])
      ])
  }

  func testOneBoxAndSeveralBoxes() throws {
    XCTAssertEqual(
      try request(boxes: ["10,20,30,40"]).prompts, [Prompt(box: PromptBox(x0: 10, y0: 20, x1: 30, y1: 40))])
    let r = try request(boxes: ["10,20,30,40", "-5,0,5,5"])
    XCTAssertEqual(
      r.prompts,
      [
        Prompt(box: PromptBox(x0: 10, y0: 20, x1: 30, y1: 40)),
        Prompt(box: PromptBox(x0: -5, y0: 0, x1: 5, y1: 5)),
      ])
    XCTAssertEqual(r.sources, ["prompt 1 (--box 10,20,30,40)", "prompt 2 (--box -5,0,5,5)"])
  }

  func testBoxWithPositiveAndNegativePointsIsOnePrompt() throws {
    let r = try request(boxes: ["10,20,30,40"], points: ["15,25,1", "16,26,0"])
    XCTAssertEqual(r.prompts.count, 1)
    XCTAssertEqual(r.prompts[0].box, PromptBox(x0: 10, y0: 20, x1: 30, y1: 40))
    XCTAssertEqual(r.prompts[0].points.map(\.label), [1, 0])
  }

  func testSeveralPointsEachItsOwnObjectViaPromptsFile() throws {
    let path = try write(
      #"[{"points": [[10, 20, 1]]}, {"points": [[30, 40, 1]]}, {"box": [1, 2, 3, 4]}]"#, "p.json")
    let r = try request(promptsFile: path)
    XCTAssertEqual(
      r.prompts,
      [
        Prompt(points: [PromptPoint(x: 10, y: 20, label: 1)]),
        Prompt(points: [PromptPoint(x: 30, y: 40, label: 1)]),
        Prompt(box: PromptBox(x0: 1, y0: 2, x1: 3, y1: 4)),
      ])
    XCTAssertEqual(r.sources[1], "\(path): prompt 2")
  }

  func testMaskInputFromOptionAndFromPromptsFile() throws {
    let mask = try writeMask("m.npy", shape: [1, 256, 256])
    let r = try request(points: ["1,2,1"], maskInput: mask)
    XCTAssertEqual(r.prompts[0].maskInput?.count, 256 * 256)
    XCTAssertEqual(r.prompts[0].maskInput?.first, 0.5)
    _ = try writeMask("flat.npy", shape: [256, 256], value: -1)
    let path = try write(
      #"[{"box": [1, 2, 3, 4], "mask_input": "flat.npy"}, {"box": [1, 2, 3, 4], "mask_input": null}]"#,
      "p.json")
    let fromFile = try request(promptsFile: path)
    XCTAssertEqual(fromFile.prompts[0].maskInput?.first, -1)
    XCTAssertNil(fromFile.prompts[1].maskInput)
  }

  // MARK: - Invalid requests

  func testMalformedNumbers() {
    assertFails(boxes: ["1,2,3"], "--box 1,2,3", "must be 4 numbers", "got 3 values", "X0,Y0,X1,Y1")
    assertFails(boxes: ["1,2,3,4,5"], "--box 1,2,3,4,5", "must be 4 numbers")
    assertFails(boxes: ["1,2,x,4"], "'x' is not a number")
    assertFails(boxes: ["1,,3,4"], "'' is not a number")
    assertFails(points: ["1,2"], "--point 1,2", "X,Y,LABEL")
    assertFails(points: ["1,2,1.5"], "--point 1,2,1.5", "label 1.5")
    assertFails(points: ["a,2,1"], "'a' is not a number")
    // Numbers are JSON numbers, as in the files: lower-case nan is no number (NaN is, and is refused below).
    assertFails(points: ["nan,2,1"], "--point nan,2,1", "'nan' is not a number")
    assertFails(boxes: ["+1,2,3,4"], "'+1' is not a number")
  }

  func testNonFiniteValues() {
    assertFails(points: ["NaN,2,1"], "--point NaN,2,1", "non-finite")
    assertFails(points: ["1,Infinity,1"], "non-finite")
    assertFails(boxes: ["1,2,-Infinity,4"], "--box 1,2,-Infinity,4", "non-finite")
    assertFails(boxes: ["1,2,3,4", "0,0,NaN,1"], "prompt 2 (--box 0,0,NaN,1)", "non-finite")
  }

  func testLabelsAndBoxOrder() {
    assertFails(points: ["1,2,2"], "label 2")
    assertFails(points: ["1,2,-1"], "label -1")
    assertFails(boxes: ["30,20,10,40"], "x1 < x0")
    assertFails(boxes: ["10,40,30,20"], "y1 < y0")
  }

  func testNoPromptAndConflicts() throws {
    assertFails("no prompt")
    assertFails(boxes: ["1,2,3,4", "5,6,7,8"], points: ["1,2,1"], "--point", "2 --box")
    let mask = try writeMask("m.npy", shape: [1, 256, 256])
    assertFails(boxes: ["1,2,3,4", "5,6,7,8"], maskInput: mask, "--mask-input needs exactly one prompt")
    let path = try write(#"[{"box": [1, 2, 3, 4]}]"#, "p.json")
    assertFails(boxes: ["1,2,3,4"], promptsFile: path, "--prompts cannot be combined")
  }

  func testBadMaskInputs() throws {
    assertFails(
      points: ["1,2,1"], maskInput: folder.appendingPathComponent("missing.npy").path, "missing.npy",
      "no such file")
    let wrongShape = try writeMask("wrong.npy", shape: [2, 256, 256])
    assertFails(points: ["1,2,1"], maskInput: wrongShape, "wrong.npy", "(2, 256, 256)")
    let notNpy = try write("hello", "bad.npy")
    assertFails(points: ["1,2,1"], maskInput: notNpy, "bad.npy", "not a .npy file")
    let nan = try writeMask("nan.npy", shape: [256, 256], value: .nan)
    assertFails(points: ["1,2,1"], maskInput: nan, "non-finite")
  }

  func testBadPromptsFiles() throws {
    assertFails(promptsFile: folder.appendingPathComponent("none.json").path, "none.json", "cannot be read")
    let cases: [(String, [String])] = [
      ("[{\"box\": [1, 2, 3, 4]", ["not valid JSON"]),
      ("{\"box\": [1, 2, 3, 4]}", ["JSON list"]),
      ("[]", ["no prompt"]),
      ("[{}]", ["prompt 1", "no point and no box"]),
      (#"[{"box": [1, 2, 3, 4]}, {"boxes": [1, 2, 3, 4]}]"#, ["prompt 2", "unknown key 'boxes'"]),
      (#"[{"box": [1, 2, 3]}]"#, ["prompt 1", "'box' must be 4 numbers", "got 3 values"]),
      (#"[{"points": [[1, 2]]}]"#, ["prompt 1", "'points' item 1", "[x, y, label]"]),
      (#"[{"box": [1, 2, 3, 4], "box": null}]"#, ["prompt 1", "'box' appears twice"]),
      (#"[{"box": "1,2,3,4"}]"#, ["prompt 1", "'box' must be 4 numbers", "got \"1,2,3,4\""]),
      ("[5]", ["prompt 1", "must be a JSON object, got 5"]),
      (#"[{"points": [[1, 2, 0.5]]}]"#, ["label 0.5"]),
      (#"[{"points": [[1, 2, 3]]}]"#, ["label 3"]),
      (#"[{"points": [[1, "2", 1]]}]"#, ["prompt 1", "'points' item 1", "got \"2\" for a coordinate"]),
      (#"[{"box": [4, 3, 2, 1]}]"#, ["prompt 1", "x1 < x0"]),
      (#"[{"box": [1, 2, 3, 4], "mask_input": "absent.npy"}]"#, ["absent.npy", "no such file"]),
      (#"[{"box": [1, 2, 3, 1e999]}]"#, ["not valid JSON", "1e999"]),
      ("[{\"box\": [1, 2,\n 3, nan]}]", ["not valid JSON", "line 2, column 5"]),
      ("[{\"box\": [1, 2, 3, NaN]}]", ["prompt 1", "non-finite"]),
    ]
    for (i, (text, fragments)) in cases.enumerated() {
      let path = try write(text, "case\(i).json")
      XCTAssertThrowsError(try request(promptsFile: path), text) { error in
        let message = error.localizedDescription
        XCTAssertTrue(message.contains("case\(i).json"), "\"\(message)\" does not name the file")
        for fragment in fragments {
          XCTAssertTrue(message.contains(fragment), "\(text): \"\(message)\" lacks \"\(fragment)\"")
        }
      }
    }
  }

  // MARK: - The image's geometry (issue 6, defect 5)

  /// The issue's repro: `--box 1000,100,2000,900` on a 1280x720 photo gave predict the whole box
  /// (area 121975) and run the clipped one (66296). Both now go through `PromptGeometry`.
  func testPredictFitsPromptsToTheImageAsRunDoes() throws {
    let fitted = try request(boxes: ["1000,100,2000,900"]).fitted(width: 1280, height: 720)
    let run = PromptBuilder.prepare(ManifestObject(box: [1000, 100, 2000, 900]), width: 1280, height: 720)
    XCTAssertEqual(fitted.first?.prompt.box, PromptBox(x0: 1000, y0: 100, x1: 1280, y1: 720))
    XCTAssertEqual(fitted.first?.prompt, run.prompt)
    XCTAssertEqual(fitted.first?.usedBox, run.usedBox)
    XCTAssertEqual(
      fitted.first?.warning,
      "the box [1000, 100, 2000, 900] reaches outside the 1280x720 image; clipped to [1000, 100, 1280, 720]")
    XCTAssertEqual(fitted.first?.warning, run.warning)
    // Inside: unchanged, no warning.
    let inside = try request(boxes: ["10,20,30,40"], points: ["15,25,1"]).fitted(width: 1280, height: 720)
    XCTAssertEqual(
      inside.first?.prompt, try request(boxes: ["10,20,30,40"], points: ["15,25,1"]).prompts.first)
    XCTAssertNil(inside.first?.warning)
  }

  func testPromptsOutsideTheImageAreRefusedNamingTheirOption() throws {
    func assertRefused(_ r: PredictRequest, _ fragments: String..., line: UInt = #line) {
      XCTAssertThrowsError(try r.fitted(width: 1280, height: 720), line: line) { error in
        for fragment in fragments {
          XCTAssertTrue(
            error.localizedDescription.contains(fragment), "\(error.localizedDescription) lacks \(fragment)",
            line: line)
        }
      }
    }
    assertRefused(
      try request(boxes: ["10,10,20,20", "1300,0,1400,10"]), "prompt 2 (--box 1300,0,1400,10)",
      "lies entirely outside the 1280x720 image")
    assertRefused(try request(points: ["1280,10,1"]), "--point 1280,10,1", "point 1 (1280, 10) lies outside")
    assertRefused(try request(points: ["5,-1,0"]), "point 1 (5, -1) lies outside")
    assertRefused(try request(boxes: ["5,5,5,9"]), "zero or negative area")
    let path = try write(#"[{"box": [1, 2, 3, 4]}, {"points": [[10, 800, 1]]}]"#, "p.json")
    assertRefused(try request(promptsFile: path), "p.json: prompt 2", "lies outside")
  }

  // MARK: - Output

  func testJSONOutputStructureAndOrder() throws {
    // A 4x3 mask with pixels (1, 0) and (2, 1) set, and an empty one.
    var pixels = [UInt8](repeating: 0, count: 12)
    pixels[0 * 4 + 1] = 1
    pixels[1 * 4 + 2] = 1
    let mask = BinaryMask(width: 4, height: 3, pixels: pixels)
    let empty = BinaryMask(width: 4, height: 3, pixels: [UInt8](repeating: 0, count: 12))
    let logits = [Float](repeating: 0, count: 256 * 256)
    let predictions = [
      Prediction(masks: [mask], scores: [0.875], stabilityScores: [nil], lowResLogits: [logits]),
      Prediction(masks: [empty], scores: [.nan], stabilityScores: [nil], lowResLogits: [logits]),
    ]
    let timings = PredictTimings(loadModel: 1, decodeImage: 2.5, embed: 3, predict: 4, total: 10.5)
    let text = PredictOutput.json(width: 4, height: 3, predictions: predictions, timings: timings)
    // Key order is part of the interface: check the text, not only the parsed object.
    let expectedStart =
      #"{"width":4,"height":3,"prompts":[{"masks":[{"score":0.875,"area":2,"bbox":[1.0,0.0,2.0,2.0],"rle":{"size":[3,4],"counts":""#
    XCTAssertTrue(text.hasPrefix(expectedStart), text)
    XCTAssertTrue(
      text.hasSuffix(
        #""timings_ms":{"load_model":1.0,"decode_image":2.5,"embed":3.0,"predict":4.0,"total":10.5}}"#
      ), text)
    XCTAssertFalse(text.contains("\n"))
    let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let prompts = try XCTUnwrap(object["prompts"] as? [[String: Any]])
    XCTAssertEqual(prompts.count, 2)
    let first = try XCTUnwrap((prompts[0]["masks"] as? [[String: Any]])?.first)
    let rle = try XCTUnwrap(first["rle"] as? [String: Any])
    let counts = try XCTUnwrap(rle["counts"] as? String)
    XCTAssertEqual(try MaskRLE.decode(counts, width: 4, height: 3), mask)
    let second = try XCTUnwrap((prompts[1]["masks"] as? [[String: Any]])?.first)
    XCTAssertTrue(second["score"] is NSNull, "a NaN score is written as null")
    XCTAssertEqual(second["bbox"] as? [Double], [0, 0, 0, 0])
  }

  func testClippedPromptsCarryTheirWarning() throws {
    let mask = BinaryMask(width: 2, height: 2, pixels: [1, 0, 0, 0])
    let prediction = Prediction(masks: [mask], scores: [0.5], stabilityScores: [nil], lowResLogits: [])
    let text = PredictOutput.json(
      width: 2, height: 2, predictions: [prediction, prediction], warnings: [nil, "clipped \"x\""],
      timings: PredictTimings(loadModel: 0, decodeImage: 0, embed: 0, predict: 0, total: 0))
    let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let prompts = try XCTUnwrap(object["prompts"] as? [[String: Any]])
    XCTAssertNil(prompts[0]["warning"], "no warning key for a prompt used as given")
    XCTAssertEqual(prompts[1]["warning"] as? String, "clipped \"x\"")
  }

  func testCountsWithBackslashAreEscaped() throws {
    // A first run of 44 zeros is written as chunk 12 with the continuation bit 0x20: 48 + 44 = 92,
    // the backslash, which JSON must escape.
    let mask = BinaryMask(width: 1, height: 45, pixels: [UInt8](repeating: 0, count: 44) + [1])
    let counts = MaskRLE.encode(mask)
    XCTAssertTrue(counts.contains("\\"), counts)
    let text = PredictOutput.json(
      width: 1, height: 45,
      predictions: [Prediction(masks: [mask], scores: [1], stabilityScores: [nil], lowResLogits: [])],
      timings: PredictTimings(loadModel: 0, decodeImage: 0, embed: 0, predict: 0, total: 0))
    let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    let prompts = try XCTUnwrap(object["prompts"] as? [[String: Any]])
    let rle = try XCTUnwrap((prompts[0]["masks"] as? [[String: Any]])?.first?["rle"] as? [String: Any])
    XCTAssertEqual(rle["counts"] as? String, counts)
  }

  func testLogitsArrayShapeAndOrder() throws {
    func logits(_ v: Float) -> [Float] { [Float](repeating: v, count: 256 * 256) }
    let mask = BinaryMask(width: 1, height: 1, pixels: [1])
    let predictions = [
      Prediction(
        masks: [mask, mask], scores: [1, 1], stabilityScores: [nil, nil],
        lowResLogits: [logits(1), logits(2)]),
      Prediction(
        masks: [mask, mask], scores: [1, 1], stabilityScores: [nil, nil],
        lowResLogits: [logits(3), logits(4)]),
    ]
    let array = try PredictOutput.logits(predictions)
    XCTAssertEqual(array.shape, [2, 2, 256, 256])
    XCTAssertEqual([0, 1, 2, 3].map { array.values[$0 * 256 * 256 + 7] }, [1, 2, 3, 4])
    let uneven = [
      predictions[0],
      Prediction(masks: [mask], scores: [1], stabilityScores: [nil], lowResLogits: [logits(5)]),
    ]
    XCTAssertThrowsError(try PredictOutput.logits(uneven))
  }
}
