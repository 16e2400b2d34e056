import Foundation
import TestSupport
import XCTest

/// `sambatch predict` run as a built binary: invalid requests are refused with a message naming
/// the culprit and a non-zero status, before any model is loaded.
final class PredictCLITests: XCTestCase {
  private var folder: URL!
  private let image = Fixtures.url("images/picture1.jpg").path
  /// A model path that does not exist: requests checked before loading the model never notice.
  private let absentModel = "/nonexistent/mobile_sam.pt"

  override func setUpWithError() throws {
    folder = FileManager.default.temporaryDirectory.appendingPathComponent("predict-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: folder)
  }

  /// Runs `sambatch predict` without SAMBATCH_MODEL from the caller's environment.
  private func predict(_ arguments: [String], environment: [String: String?] = [:]) throws -> BinaryResult {
    var env: [String: String?] = ["SAMBATCH_MODEL": nil]
    for (key, value) in environment { env[key] = value }
    return try BinaryRunner.run(["predict"] + arguments, environment: env, timeout: 60)
  }

  private func assertRefused(
    _ arguments: [String], status: Int32 = 64, _ fragments: String..., environment: [String: String?] = [:],
    file: StaticString = #filePath, line: UInt = #line
  ) throws {
    let result = try predict(arguments, environment: environment)
    XCTAssertFalse(result.timedOut, file: file, line: line)
    XCTAssertEqual(result.status, status, "\(arguments): stderr \(result.stderr)", file: file, line: line)
    XCTAssertEqual(result.stdout, "", "nothing on stdout when refused", file: file, line: line)
    XCTAssertTrue(result.stderr.hasPrefix("sambatch predict: error: "), result.stderr, file: file, line: line)
    for fragment in fragments {
      XCTAssertTrue(
        result.stderr.contains(fragment), "stderr \"\(result.stderr)\" lacks \"\(fragment)\"", file: file,
        line: line)
    }
  }

  private func write(_ text: String, _ name: String) throws -> String {
    let url = folder.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
  }

  func testHelp() throws {
    let result = try BinaryRunner.run(["predict", "--help"])
    XCTAssertEqual(result.status, 0)
    for fragment in [
      "USAGE: sambatch predict", "--box <X0,Y0,X1,Y1>", "--point <X,Y,LABEL>", "--prompts", "Exit status",
    ] {
      XCTAssertTrue(result.stdout.contains(fragment), "help lacks \(fragment)")
    }
    let top = try BinaryRunner.run(["--help"])
    XCTAssertEqual(top.status, 0)
    XCTAssertTrue(top.stdout.contains("predict"), top.stdout)
  }

  /// A help discussion written over several source lines without `\\` continuations keeps those
  /// line breaks and prints ragged (short lines where the next word would have fitted). Each
  /// prose discussion must read as wrapped paragraphs.
  func testHelpDiscussionsAreWrappedParagraphs() throws {
    for command in ["run", "merge", "status", "validate", "eval", "bench"] {
      let result = try BinaryRunner.run([command, "--help"])
      XCTAssertEqual(result.status, 0, command)
      let lines = result.stdout.components(separatedBy: "\n")
      guard let usage = lines.firstIndex(where: { $0.hasPrefix("USAGE:") }) else {
        XCTFail("\(command) --help has no USAGE: \(result.stdout)")
        continue
      }
      // ArgumentParser fills lines to at most width - 1 characters (79 of 80).
      let width = max(80, (lines[..<usage].map(\.count).max() ?? 0) + 1)
      for i in 0..<(usage - 1) {
        let next = lines[i + 1]
        guard !lines[i].isEmpty, !next.isEmpty, let word = next.split(separator: " ").first else { continue }
        XCTAssertGreaterThanOrEqual(
          lines[i].count + 1 + word.count, width,
          "\(command) --help: '\(word)' would fit on the line before it: '\(lines[i])'")
      }
    }
  }

  func testInvalidPromptsAreRefusedBeforeTheModelLoads() throws {
    let m = ["--model", absentModel, "--image", image]
    try assertRefused(m, "no prompt")
    try assertRefused(m + ["--box", "1,2,3"], "--box 1,2,3", "must be 4 numbers")
    try assertRefused(m + ["--box", "1,2,a,4"], "'a' is not a number")
    try assertRefused(m + ["--point", "1,2"], "--point 1,2", "X,Y,LABEL")
    try assertRefused(m + ["--point", "10,NaN,1"], "--point 10,NaN,1", "non-finite")
    try assertRefused(m + ["--box", "0,0,Infinity,5"], "--box 0,0,Infinity,5", "non-finite")
    try assertRefused(m + ["--point", "10,nan,1"], "--point 10,nan,1", "'nan' is not a number")
    try assertRefused(m + ["--point", "10,20,2"], "label 2")
    try assertRefused(m + ["--point", "10,20,-1"], "label -1")
    try assertRefused(m + ["--box", "30,20,10,40"], "x1 < x0")
    try assertRefused(m + ["--box", "10,40,30,20"], "y1 < y0")
    try assertRefused(
      m + ["--box", "1,2,3,4", "--box", "5,6,7,8", "--point", "2,3,1"], "--point", "--prompts")
    // Negative coordinates are values, not options.
    try assertRefused(m + ["--box", "-5,-5,-10,0"], "x1 < x0")
  }

  func testBadFilesInTheRequest() throws {
    let m = ["--model", absentModel, "--image", image]
    try assertRefused(
      m + ["--point", "1,2,1", "--mask-input", folder.appendingPathComponent("no.npy").path], "no.npy",
      "no such file")
    let notNpy = try write("not an array", "bad.npy")
    try assertRefused(m + ["--point", "1,2,1", "--mask-input", notNpy], "bad.npy", "not a .npy file")
    try assertRefused(
      m + ["--prompts", folder.appendingPathComponent("no.json").path], "no.json", "cannot be read")
    let broken = try write("[{\"box\": [1, 2, 3, 4]", "broken.json")
    try assertRefused(m + ["--prompts", broken], "broken.json", "not valid JSON")
    let badLabel = try write(#"[{"box": [1, 2, 3, 4]}, {"points": [[5, 5, 7]]}]"#, "label.json")
    try assertRefused(m + ["--prompts", badLabel], "label.json: prompt 2", "label 7")
    let good = try write(#"[{"box": [1, 2, 3, 4]}]"#, "good.json")
    try assertRefused(m + ["--prompts", good, "--box", "1,2,3,4"], "cannot be combined")
  }

  func testModelOptionAndEnvironment() throws {
    try assertRefused(["--image", image, "--box", "1,2,3,4"], "no model", "SAMBATCH_MODEL")
    try assertRefused(
      ["--model", absentModel, "--image", image, "--box", "1,2,3,4"], status: 1,
      "model \(absentModel): no such file")
    let fromEnv = "/nonexistent/from-env.pt"
    try assertRefused(
      ["--image", image, "--box", "1,2,3,4"], status: 1, "model \(fromEnv)",
      environment: ["SAMBATCH_MODEL": fromEnv])
    // --model wins over the environment.
    try assertRefused(
      ["--model", absentModel, "--image", image, "--box", "1,2,3,4"], status: 1, "model \(absentModel)",
      environment: ["SAMBATCH_MODEL": fromEnv])
    // A file that is not a checkpoint: the loader's error, naming the file.
    let notModel = try write("definitely not a zip", "model.pt")
    try assertRefused(
      ["--model", notModel, "--image", image, "--box", "1,2,3,4"], status: 1,
      "not a usable SAM checkpoint (vit_t, vit_b, vit_l or vit_h): \(notModel)")
  }

  /// SAMBATCH_THREAD_SPIN_US: a whole number of microseconds up to 100,000, checked first.
  func testThreadSpinEnvironmentIsChecked() throws {
    for bad in ["fast", "-5", "100001", "1.5", ""] {
      try assertRefused(
        ["--model", absentModel, "--image", image, "--box", "1,2,3,4"], "SAMBATCH_THREAD_SPIN_US",
        "from 0 to 100000, not '\(bad)'", environment: ["SAMBATCH_THREAD_SPIN_US": bad])
    }
    // Accepted: the next check (the model file) refuses instead.
    for good in ["0", "250"] {
      try assertRefused(
        ["--model", absentModel, "--image", image, "--box", "1,2,3,4"], status: 1,
        "model \(absentModel): no such file", environment: ["SAMBATCH_THREAD_SPIN_US": good])
    }
  }

  func testMissingImageAndLogitsFolder() throws {
    let model = try write("placeholder", "model.pt")  // exists; never loaded, the image check comes first
    try assertRefused(
      ["--model", model, "--image", folder.appendingPathComponent("no.jpg").path, "--box", "1,2,3,4"],
      status: 1, "image", "no.jpg", "no such file")
    try assertRefused(
      [
        "--model", model, "--image", image, "--box", "1,2,3,4", "--logits",
        folder.appendingPathComponent("absent/out.npy").path,
      ],
      status: 1, "--logits", "does not exist")
    try assertRefused(
      ["--model", model, "--image", image, "--box", "1,2,3,4", "--logits", folder.path],
      status: 1, "--logits", "is a folder")
  }

  func testBadImagesAreRefusedBeforeTheModelLoads() throws {
    let model = try write("placeholder", "model.pt")  // exists but is no checkpoint: never reached
    let text = try write("not an image at all", "text.jpg")
    try assertRefused(
      ["--model", model, "--image", text, "--box", "1,2,3,4"], status: 1, "text.jpg",
      "unsupported image format")
    let truncated = folder.appendingPathComponent("truncated.jpg")
    try Data(try Data(contentsOf: URL(fileURLWithPath: image)).prefix(3000)).write(to: truncated)
    try assertRefused(
      ["--model", model, "--image", truncated.path, "--box", "1,2,3,4"], status: 1, "truncated.jpg",
      "truncated")
  }

  /// Issue 6, defect 5: predict applies run's rule once the image is decoded, still before the
  /// model loads (the placeholder model is never read).
  func testPromptsOutsideTheImageAreRefusedBeforeTheModelLoads() throws {
    let model = try write("placeholder", "model.pt")
    let m = ["--model", model, "--image", image]  // 769x770
    try assertRefused(
      m + ["--box", "800,10,900,100"], "--box 800,10,900,100", "lies entirely outside the 769x770 image")
    try assertRefused(m + ["--point", "10,770,1"], "--point 10,770,1", "lies outside the 769x770 image")
    let prompts = try write(#"[{"box": [1, 2, 3, 4]}, {"points": [[-1, 5, 1]]}]"#, "outside.json")
    try assertRefused(m + ["--prompts", prompts], "outside.json: prompt 2", "lies outside")
  }

  func testArgumentParserErrorsAreUsageErrors() throws {
    let result = try predict(["--model", absentModel, "--box", "1,2,3,4"])  // no --image
    XCTAssertEqual(result.status, 64)
    XCTAssertTrue(result.stderr.contains("--image"), result.stderr)
  }
}

/// `sambatch predict` computing masks with the fixture checkpoint, one test per prompt form of the
/// Ultralytics MobileSAM docs. Values come from random weights, so only the structure is checked:
/// counts of prompts and masks, and each RLE decoding (by the small decoder below, independent of
/// SAMBatch) to a mask of the image's size whose area and bbox match the JSON. A missing fixture
/// checkpoint is a failure, not a skip: it is committed.
final class PredictCLIModelTests: XCTestCase {
  private let checkpoint = Fixtures.url("reference/mobile_sam_random.pt").path
  private let image = Fixtures.url("images/picture1.jpg").path  // 769x770
  private let imageWidth = 769
  private let imageHeight = 770
  private var folder: URL!

  override func setUpWithError() throws {
    guard FileManager.default.fileExists(atPath: checkpoint) else {
      throw MissingFixture(path: checkpoint)
    }
    folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "predict-model-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    if let folder { try? FileManager.default.removeItem(at: folder) }
  }

  /// Runs predict with the fixture model and returns the parsed JSON.
  private func predict(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws
    -> [String: Any]
  {
    let result = try BinaryRunner.run(
      ["predict", "--model", checkpoint, "--image", image] + arguments, environment: ["SAMBATCH_MODEL": nil],
      timeout: 600)
    XCTAssertFalse(result.timedOut, file: file, line: line)
    XCTAssertEqual(result.status, 0, "stderr: \(result.stderr)", file: file, line: line)
    XCTAssertEqual(
      result.stdout.filter { $0 == "\n" }.count, 1, "one JSON object on one line", file: file, line: line)
    let object = try JSONSerialization.jsonObject(with: result.stdoutData)
    return try XCTUnwrap(object as? [String: Any], file: file, line: line)
  }

  /// Checks the output's structure; returns the decoded masks per prompt.
  @discardableResult
  private func check(
    _ output: [String: Any], prompts: Int, masksPerPrompt: Int, file: StaticString = #filePath,
    line: UInt = #line
  ) throws -> [[[UInt8]]] {
    XCTAssertEqual(output["width"] as? Int, imageWidth, file: file, line: line)
    XCTAssertEqual(output["height"] as? Int, imageHeight, file: file, line: line)
    let model = try XCTUnwrap(output["model"] as? [String: Any], file: file, line: line)
    XCTAssertEqual(model["kind"] as? String, "vit_t", file: file, line: line)
    let sha256 = try XCTUnwrap(model["sha256"] as? String, file: file, line: line)
    XCTAssertEqual(sha256.count, 64, file: file, line: line)
    XCTAssertTrue(sha256.allSatisfy(\.isHexDigit), file: file, line: line)
    let timings = try XCTUnwrap(output["timings_ms"] as? [String: Any], file: file, line: line)
    XCTAssertEqual(
      Set(timings.keys), ["load_model", "decode_image", "embed", "predict", "total"], file: file, line: line)
    let list = try XCTUnwrap(output["prompts"] as? [[String: Any]], file: file, line: line)
    XCTAssertEqual(list.count, prompts, file: file, line: line)
    var decoded: [[[UInt8]]] = []
    for prompt in list {
      let masks = try XCTUnwrap(prompt["masks"] as? [[String: Any]], file: file, line: line)
      XCTAssertEqual(masks.count, masksPerPrompt, file: file, line: line)
      var promptMasks: [[UInt8]] = []
      for mask in masks {
        let score = try XCTUnwrap(mask["score"] as? Double, "score must be a number", file: file, line: line)
        XCTAssertTrue(score.isFinite, file: file, line: line)
        let rle = try XCTUnwrap(mask["rle"] as? [String: Any], file: file, line: line)
        XCTAssertEqual(rle["size"] as? [Int], [imageHeight, imageWidth], file: file, line: line)
        let counts = try XCTUnwrap(rle["counts"] as? String, file: file, line: line)
        let pixels = try XCTUnwrap(
          decodeCOCO(counts, width: imageWidth, height: imageHeight), "counts do not decode", file: file,
          line: line)
        let area = pixels.reduce(0) { $0 + Int($1) }
        XCTAssertEqual(mask["area"] as? Int, area, file: file, line: line)
        XCTAssertEqual(
          mask["bbox"] as? [Double], boundingBox(pixels, width: imageWidth), file: file, line: line)
        promptMasks.append(pixels)
      }
      decoded.append(promptMasks)
    }
    return decoded
  }

  func testOnePoint() throws {
    try check(try predict(["--point", "380,300,1"]), prompts: 1, masksPerPrompt: 1)
  }

  func testSeveralPointsEachItsOwnObject() throws {
    let url = folder.appendingPathComponent("points.json")
    try Data(#"[{"points": [[200, 200, 1]]}, {"points": [[500, 400, 1]]}, {"points": [[380, 650, 1]]}]"#.utf8)
      .write(to: url)
    try check(try predict(["--prompts", url.path]), prompts: 3, masksPerPrompt: 1)
  }

  func testSeveralPointsForOneObject() throws {
    try check(
      try predict(["--point", "380,300,1", "--point", "400,320,1", "--point", "420,280,1"]), prompts: 1,
      masksPerPrompt: 1)
  }

  func testPositiveAndNegativePointsForOneObject() throws {
    try check(try predict(["--point", "380,300,1", "--point", "100,100,0"]), prompts: 1, masksPerPrompt: 1)
  }

  func testOneBoxWithMultimask() throws {
    try check(try predict(["--box", "100,120,600,700", "--multimask"]), prompts: 1, masksPerPrompt: 3)
  }

  func testSeveralBoxesEachItsOwnObject() throws {
    try check(
      try predict(["--box", "100,120,600,700", "--box", "0,0,300,200"]), prompts: 2, masksPerPrompt: 1)
  }

  /// Issue 6, defect 5: a box reaching outside the image is clipped as `run` clips it, and said.
  func testABoxReachingOutsideIsClippedAsRunClipsIt() throws {
    let clipped = try predict(["--box", "600,500,1500,1200"])
    let direct = try predict(["--box", "600,500,769,770"])
    let prompts = try XCTUnwrap(clipped["prompts"] as? [[String: Any]])
    XCTAssertEqual(
      prompts.first?["warning"] as? String,
      "the box [600, 500, 1500, 1200] reaches outside the 769x770 image; clipped to [600, 500, 769, 770]")
    let directPrompts = try XCTUnwrap(direct["prompts"] as? [[String: Any]])
    XCTAssertNil(directPrompts.first?["warning"])
    func rle(_ prompt: [String: Any]?) -> String? {
      ((prompt?["masks"] as? [[String: Any]])?.first?["rle"] as? [String: Any])?["counts"] as? String
    }
    XCTAssertNotNil(rle(prompts.first))
    XCTAssertEqual(rle(prompts.first), rle(directPrompts.first))
  }

  func testBoxWithPositiveAndNegativePoints() throws {
    try check(
      try predict(["--box", "100,120,600,700", "--point", "380,300,1", "--point", "150,650,0"]), prompts: 1,
      masksPerPrompt: 1)
  }

  func testLogitsFileAndMaskInputRoundTrip() throws {
    let logits = folder.appendingPathComponent("logits.npy")
    let first = try predict([
      "--box", "100,120,600,700", "--box", "0,0,300,200", "--multimask", "--logits", logits.path,
    ])
    try check(first, prompts: 2, masksPerPrompt: 3)
    let data = try Data(contentsOf: logits)
    let headerLength = Int(data[8]) | Int(data[9]) << 8
    let header = String(decoding: data[10..<(10 + headerLength)], as: UTF8.self)
    XCTAssertTrue(header.contains("'descr': '<f4'") && header.contains("'shape': (2, 3, 256, 256)"), header)
    XCTAssertEqual(data.count, 10 + headerLength + 2 * 3 * 256 * 256 * 4)
    // Feed the first mask's logits back as --mask-input, shape (1, 256, 256).
    let start = 10 + headerLength
    var maskInput = npyHeader(shape: "(1, 256, 256)")
    maskInput.append(data[start..<(start + 256 * 256 * 4)])
    let maskURL = folder.appendingPathComponent("mask_input.npy")
    try maskInput.write(to: maskURL)
    try check(
      try predict(["--box", "100,120,600,700", "--mask-input", maskURL.path]), prompts: 1, masksPerPrompt: 1)
  }

  func testNoEXIFGivesTheSameSizeForAnUnrotatedPhoto() throws {
    try check(try predict(["--box", "100,120,600,700", "--no-exif"]), prompts: 1, masksPerPrompt: 1)
  }
}

/// `sambatch predict` against the reference outputs in Tests/Fixtures/reference/cases.json (written
/// by Scripts/make_fixtures.py with SamPredictor on the fixture checkpoint). The cases of one
/// image and multimask setting go through one `--prompts` call, which also shows that prompts of
/// different shapes in one call each give what the reference gives for them alone. Tolerances are
/// the issue's: scores 1e-3, low-res logits 1e-2 (float32 reordering over the encoder's blocks),
/// masks IoU >= 0.995 (pixels at the logit-0 boundary may flip).
final class PredictCLIReferenceTests: XCTestCase {
  private struct Case: Decodable {
    var name: String
    var image: String
    var width: Int
    var height: Int
    var points: [[Double]]
    var box: [Double]?
    var mask_input: String?
    var multimask: Bool
    var scores: [Double]
    var logits: String
    var masks: [RLE]
  }

  private struct RLE: Decodable {
    var size: [Int]
    var counts: String
  }

  private struct CaseFile: Decodable {
    var checkpoint: String
    var cases: [Case]
  }

  /// A SAM ViT checkpoint goes through the same command; the JSON names its kind and SHA-256.
  func testViTCheckpointIsRecognizedAndNamed() throws {
    let vit = Fixtures.url("vit/sam_vit_small_random.pth").path
    let result = try BinaryRunner.run(
      [
        "predict", "--model", vit, "--image", Fixtures.url("images/picture1.jpg").path, "--box",
        "120,270,635,455",
      ],
      environment: ["SAMBATCH_MODEL": nil], timeout: 600)
    XCTAssertEqual(result.status, 0, result.stderr)
    let output = try XCTUnwrap(try JSONSerialization.jsonObject(with: result.stdoutData) as? [String: Any])
    let model = try XCTUnwrap(output["model"] as? [String: Any])
    XCTAssertEqual(model["kind"] as? String, "vit_custom")
    let prompts = try XCTUnwrap(output["prompts"] as? [[String: Any]])
    XCTAssertEqual((prompts.first?["masks"] as? [Any])?.count, 1)
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") else {
      print("SHA-256 value not compared: /usr/bin/sha256sum is not available")
      return
    }
    let sum = Process()
    sum.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    sum.arguments = [vit]
    let pipe = Pipe()
    sum.standardOutput = pipe
    try sum.run()
    sum.waitUntilExit()
    let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    XCTAssertEqual(model["sha256"] as? String, text.split(separator: " ").first.map(String.init))
  }

  func testMatchesTheReferenceCases() throws {
    let casesURL = Fixtures.url("reference/cases.json")
    guard FileManager.default.fileExists(atPath: casesURL.path) else {
      throw MissingFixture(path: casesURL.path)
    }
    let file = try JSONDecoder().decode(CaseFile.self, from: Data(contentsOf: casesURL))
    let checkpoint = Fixtures.url(file.checkpoint).path
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
      "predict-ref-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    var groups: [String: [Case]] = [:]
    var order: [String] = []
    for c in file.cases {
      let key = "\(c.image) multimask=\(c.multimask)"
      if groups[key] == nil { order.append(key) }
      groups[key, default: []].append(c)
    }
    for key in order {
      let cases = groups[key] ?? []
      var prompts: [[String: Any]] = []
      for c in cases {
        var prompt: [String: Any] = ["points": c.points]
        if let box = c.box { prompt["box"] = box }
        if let maskInput = c.mask_input { prompt["mask_input"] = Fixtures.url(maskInput).path }
        prompts.append(prompt)
      }
      let promptsURL = folder.appendingPathComponent("prompts.json")
      try JSONSerialization.data(withJSONObject: prompts).write(to: promptsURL)
      let logitsURL = folder.appendingPathComponent("logits.npy")
      var arguments = [
        "predict", "--model", checkpoint, "--image", Fixtures.url(cases[0].image).path, "--prompts",
        promptsURL.path,
        "--logits", logitsURL.path,
      ]
      if cases[0].multimask { arguments.append("--multimask") }
      let result = try BinaryRunner.run(arguments, environment: ["SAMBATCH_MODEL": nil], timeout: 900)
      XCTAssertEqual(result.status, 0, "\(key): \(result.stderr)")
      guard result.status == 0 else { continue }
      let output = try XCTUnwrap(try JSONSerialization.jsonObject(with: result.stdoutData) as? [String: Any])
      let outputPrompts = try XCTUnwrap(output["prompts"] as? [[String: Any]])
      XCTAssertEqual(outputPrompts.count, cases.count, key)
      let (logitsShape, logits) = try readFloat32Npy(logitsURL)
      XCTAssertEqual(logitsShape, [cases.count, cases[0].masks.count, 256, 256], key)
      for (k, c) in cases.enumerated() where k < outputPrompts.count {
        let masks = try XCTUnwrap(outputPrompts[k]["masks"] as? [[String: Any]])
        XCTAssertEqual(masks.count, c.masks.count, c.name)
        let (_, expectedLogits) = try readFloat32Npy(Fixtures.url(c.logits))
        for (m, expected) in c.masks.enumerated() where m < masks.count {
          let score = try XCTUnwrap(masks[m]["score"] as? Double, c.name)
          let rle = try XCTUnwrap(masks[m]["rle"] as? [String: Any], c.name)
          let counts = try XCTUnwrap(rle["counts"] as? String, c.name)
          let ours = try XCTUnwrap(decodeCOCO(counts, width: c.width, height: c.height), c.name)
          let theirs = try XCTUnwrap(decodeCOCO(expected.counts, width: c.width, height: c.height), c.name)
          var intersection = 0
          var union = 0
          for i in ours.indices {
            intersection += Int(ours[i] & theirs[i])
            union += Int(ours[i] | theirs[i])
          }
          let iou = union == 0 ? 1 : Double(intersection) / Double(union)
          let plane = 256 * 256
          let offset = (k * c.masks.count + m) * plane
          var worst: Float = 0
          for i in 0..<plane { worst = max(worst, abs(logits[offset + i] - expectedLogits[m * plane + i])) }
          print(
            "\(c.name) mask \(m): score diff \(abs(score - c.scores[m])), IoU \(iou), logits max diff \(worst)"
          )
          XCTAssertLessThanOrEqual(abs(score - c.scores[m]), 1e-3, "\(c.name) mask \(m) score")
          XCTAssertGreaterThanOrEqual(iou, 0.995, "\(c.name) mask \(m) IoU")
          XCTAssertLessThanOrEqual(worst, 1e-2, "\(c.name) mask \(m) low-res logits")
        }
      }
    }
  }
}

// MARK: - Independent helpers (no SAMBatch code)

/// COCO compressed RLE -> row-major 0/1 pixels; nil when the string is malformed or the runs do not
/// cover the mask exactly. Written from the format description, separately from MaskRLE.
private func decodeCOCO(_ counts: String, width: Int, height: Int) -> [UInt8]? {
  var runs: [Int] = []
  let bytes = Array(counts.utf8)
  var i = 0
  while i < bytes.count {
    var value = 0
    var shift = 0
    while true {
      guard i < bytes.count, bytes[i] >= 48, bytes[i] <= 111 else { return nil }
      let chunk = Int(bytes[i]) - 48
      i += 1
      value |= (chunk & 0x1f) << shift
      shift += 5
      if chunk & 0x20 == 0 {
        if chunk & 0x10 != 0 { value -= 1 << shift }
        break
      }
    }
    if runs.count > 2 { value += runs[runs.count - 2] }
    guard value >= 0 else { return nil }
    runs.append(value)
  }
  guard runs.reduce(0, +) == width * height else { return nil }
  var pixels = [UInt8](repeating: 0, count: width * height)
  var position = 0
  for (j, run) in runs.enumerated() {
    if j % 2 == 1 {
      for k in position..<(position + run) { pixels[(k % height) * width + k / height] = 1 }
    }
    position += run
  }
  return pixels
}

/// [x, y, w, h] of the set pixels; what toBbox gives for masks whose runs stay within a column.
/// For a run that wraps from one column into the next, toBbox widens the box to the full height:
/// reproduce that too.
private func boundingBox(_ pixels: [UInt8], width: Int) -> [Double] {
  let height = pixels.count / width
  var (x0, y0, x1, y1) = (Int.max, Int.max, -1, -1)
  for y in 0..<height {
    for x in 0..<width where pixels[y * width + x] != 0 {
      x0 = min(x0, x)
      x1 = max(x1, x)
      y0 = min(y0, y)
      y1 = max(y1, y)
    }
  }
  guard x1 >= 0 else { return [0, 0, 0, 0] }
  // A run of 1s crossing from the bottom of column x into the top of column x + 1.
  for x in 0..<(width - 1) where pixels[(height - 1) * width + x] != 0 && pixels[x + 1] != 0 {
    y0 = 0
    y1 = height - 1
  }
  return [Double(x0), Double(y0), Double(x1 - x0 + 1), Double(y1 - y0 + 1)]
}

/// A numpy version 1.0 header for a float32 C-order array.
private func npyHeader(shape: String) -> Data {
  var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shape), }"
  header += String(repeating: " ", count: 64 - (10 + header.utf8.count + 1) % 64) + "\n"
  var data = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
  data.append(contentsOf: [UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)])
  data.append(contentsOf: Array(header.utf8))
  return data
}
