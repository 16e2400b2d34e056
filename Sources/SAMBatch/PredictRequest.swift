import Foundation
import MobileSAM

/// The prompts of one `sambatch predict` call, built from its options and checked before any model
/// is loaded.
///
/// Rules (issue 2, item 5):
/// - each `--box` is one prompt; the `--point`s belong to the single prompt when there is at most
///   one box (a box plus points is one prompt with both); points with two or more boxes are an
///   error (use `--prompts`);
/// - `--mask-input` needs exactly one prompt;
/// - `--prompts FILE.json` holds the general case and cannot be combined with `--box`, `--point`
///   or `--mask-input` (all prompts then come from the file);
/// - every prompt must pass `Prompt.validationError` (finite values, labels 0/1, ordered box);
/// - once the image is decoded, `fitted` applies the rule `sambatch run` applies
///   (`PromptGeometry`): a box reaching outside the image is clipped with a warning, a box
///   entirely outside and a point outside are refused.
/// Numbers, boxes and points are read by the module's one reader (`PromptFields`, `JSONReader`).
public struct PredictRequest: Sendable, Equatable {
  public var prompts: [Prompt]
  /// Where each prompt came from, for messages: "prompt 2 (--box 10,20,30,40)".
  public var sources: [String]

  public init(prompts: [Prompt], sources: [String]) {
    precondition(prompts.count == sources.count)
    self.prompts = prompts
    self.sources = sources
  }

  /// Builds and checks the prompts. `boxes` are `X0,Y0,X1,Y1` strings, `points` `X,Y,LABEL`
  /// strings, as typed on the command line; file paths are relative to the working directory.
  /// Throws `InputError` naming the option or file at fault.
  public static func fromOptions(
    boxes: [String], points: [String], maskInput: String?, promptsFile: String?
  ) throws -> PredictRequest {
    if let promptsFile {
      guard boxes.isEmpty, points.isEmpty, maskInput == nil else {
        throw InputError.usage(
          "--prompts cannot be combined with --box, --point or --mask-input: put every prompt in \(promptsFile)"
        )
      }
      return try fromPromptsFile(URL(fileURLWithPath: promptsFile))
    }
    guard !boxes.isEmpty || !points.isEmpty else {
      throw InputError.usage("no prompt: give at least one --box or --point (or --prompts FILE.json)")
    }
    if boxes.count >= 2 && !points.isEmpty {
      throw InputError.usage(
        "--point cannot be used with \(boxes.count) --box options: with several boxes, each box is its own "
          + "prompt and the points would be ambiguous; use --prompts FILE.json to give points per box")
    }
    let parsedBoxes = try boxes.map(PromptFields.commandLineBox)
    let parsedPoints = try points.map(PromptFields.commandLinePoint)
    var prompts: [Prompt] = []
    var sources: [String] = []
    if parsedBoxes.count <= 1 {
      prompts = [Prompt(points: parsedPoints, box: parsedBoxes.first)]
      let options = boxes.map { "--box \($0)" } + points.map { "--point \($0)" }
      sources = ["the prompt (\(options.joined(separator: " ")))"]
    } else {
      prompts = parsedBoxes.map { Prompt(box: $0) }
      sources = boxes.enumerated().map { "prompt \($0.offset + 1) (--box \($0.element))" }
    }
    if let maskInput {
      guard prompts.count == 1 else {
        throw InputError.usage(
          "--mask-input needs exactly one prompt, but \(prompts.count) boxes make \(prompts.count) prompts; "
            + "use --prompts FILE.json to give a mask input per prompt")
      }
      prompts[0].maskInput = try readMaskInput(URL(fileURLWithPath: maskInput), source: "--mask-input")
    }
    let request = PredictRequest(prompts: prompts, sources: sources)
    try request.validate()
    return request
  }

  /// Reads a prompts file: `[{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1],
  /// "mask_input": "file.npy"}, ...]`, every key optional (but each prompt needs a point or a
  /// box), `mask_input` relative to the file's folder.
  public static func fromPromptsFile(_ url: URL) throws -> PredictRequest {
    let name = url.path
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw InputError.promptsFile(file: name, reason: "cannot be read (\(fileReadCause(url, error)))")
    }
    let root: JSONValue
    do throws(JSONSyntaxError) {
      root = try JSONReader().parse(data)
    } catch {
      throw InputError.promptsFile(file: name, reason: "is not valid JSON (\(error.description))")
    }
    guard let entries = root.array else {
      throw InputError.promptsFile(
        file: name,
        reason:
          "must hold a JSON list of prompt objects: [{\"points\": [[x, y, label]], \"box\": [x0, y0, x1, y1]}]"
      )
    }
    guard !entries.isEmpty else {
      throw InputError.promptsFile(file: name, reason: "holds no prompt (an empty list)")
    }
    let folder = url.deletingLastPathComponent()
    var prompts: [Prompt] = []
    var sources: [String] = []
    for (i, entry) in entries.enumerated() {
      let source = "\(name): prompt \(i + 1)"
      var prompt = Prompt()
      let maskPath: String?
      do throws(JSONFieldError) {
        guard let o = entry.object else {
          throw JSONFieldError("must be a JSON object, got \(entry.described)")
        }
        try o.checkKeys(allowed: ["points", "box", "mask_input"])
        prompt.points = try o.points("points") ?? []
        prompt.box = try o.box("box").map {
          PromptBox(x0: Float($0[0]), y0: Float($0[1]), x1: Float($0[2]), y1: Float($0[3]))
        }
        maskPath = try o.string("mask_input")
      } catch {
        throw InputError.prompt(source: source, reason: error.message)
      }
      if let path = maskPath {
        let maskURL = path.hasPrefix("/") ? URL(fileURLWithPath: path) : folder.appendingPathComponent(path)
        prompt.maskInput = try readMaskInput(maskURL, source: "\(source): mask_input")
      }
      prompts.append(prompt)
      sources.append(source)
    }
    let request = PredictRequest(prompts: prompts, sources: sources)
    try request.validate()
    return request
  }

  /// Throws the first prompt's `validationError`, naming where the prompt came from.
  public func validate() throws {
    for (prompt, source) in zip(prompts, sources) {
      if let reason = prompt.validationError { throw InputError.prompt(source: source, reason: reason) }
    }
  }

  /// The prompts fitted to the decoded image by the rule `sambatch run` applies
  /// (`PromptGeometry`): clipped boxes carry a warning; a prompt the rule refuses throws
  /// `InputError.prompt` naming where it came from.
  public func fitted(width: Int, height: Int) throws -> [FittedPrompt] {
    var result: [FittedPrompt] = []
    for (prompt, source) in zip(prompts, sources) {
      do throws(PromptRejection) {
        result.append(try PromptGeometry.fit(prompt, width: width, height: height))
      } catch {
        throw InputError.prompt(source: source, reason: error.reason)
      }
    }
    return result
  }

  /// A 256x256 mask input: float32 .npy of shape (1, 256, 256) or (256, 256), the low-res logits
  /// of an earlier prediction.
  public static func readMaskInput(_ url: URL, source: String) throws -> [Float] {
    let array: NpyArray
    do {
      array = try Npy.read(contentsOf: url)
    } catch InputError.npy(let file, let reason) {
      throw InputError.prompt(source: source, reason: "\(file): \(reason)")
    }
    guard array.shape == [1, 256, 256] || array.shape == [256, 256] else {
      throw InputError.prompt(
        source: source,
        reason:
          "\(url.path) has shape \(pythonTuple(array.shape)); a mask input is (1, 256, 256) or (256, 256)")
    }
    return array.values
  }
}

// MARK: - Option parsing

private func pythonTuple(_ shape: [Int]) -> String {
  shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

// MARK: - Output

/// Wall-clock times of one `sambatch predict` call, in milliseconds.
public struct PredictTimings: Sendable, Equatable {
  public var loadModel: Double
  public var decodeImage: Double
  public var embed: Double
  public var predict: Double
  public var total: Double

  public init(loadModel: Double, decodeImage: Double, embed: Double, predict: Double, total: Double) {
    self.loadModel = loadModel
    self.decodeImage = decodeImage
    self.embed = embed
    self.predict = predict
    self.total = total
  }
}

/// What `sambatch predict` prints and writes.
public enum PredictOutput {
  /// The one JSON object `sambatch predict` prints, keys in this order:
  /// `{"width": W, "height": H, "prompts": [{"masks": [{"score": s, "area": a, "bbox": [x, y, w, h],
  /// "rle": {"size": [H, W], "counts": "..."}}], "warning": "..."}], "timings_ms": {"load_model": ..,
  /// "decode_image": .., "embed": .., "predict": .., "total": ..}}`. Masks in the reference's order;
  /// `score` is the predicted IoU (null if not finite), `bbox` as pycocotools' `toBbox`, `counts` the
  /// compressed COCO RLE; `warning` only for a prompt that was changed to fit the image (a clipped
  /// box); with `model`, `"model": {"kind": .., "sha256": ..}` comes before `timings_ms`; timings
  /// rounded to the microsecond. One line, no spaces, numbers as `JSONWriter` writes
  /// them (the same text as an export gives for the same value).
  public static func json(
    width: Int, height: Int, predictions: [Prediction], warnings: [String?] = [], timings: PredictTimings,
    model: (kind: String, sha256: String)? = nil
  ) -> String {
    var prompts: [JSONValue] = []
    for (i, prediction) in predictions.enumerated() {
      var masks: [JSONValue] = []
      for (j, mask) in prediction.masks.enumerated() {
        let encoded = MaskRLE.summarize(mask)
        let score = j < prediction.scores.count ? Double(prediction.scores[j]) : .nan
        masks.append([
          "score": .number(score), "area": .int(encoded.area),
          "bbox": .array(encoded.bbox.map(JSONValue.number)),
          "rle": ["size": [.int(mask.height), .int(mask.width)], "counts": .string(encoded.counts)],
        ])
      }
      var entries = [JSONObject.Entry("masks", .array(masks))]
      if i < warnings.count, let warning = warnings[i] {
        entries.append(JSONObject.Entry("warning", .string(warning)))
      }
      prompts.append(.object(JSONObject(entries)))
    }
    func milliseconds(_ value: Double) -> JSONValue { .number((value * 1000).rounded() / 1000) }
    var entries = [
      JSONObject.Entry("width", .int(width)), JSONObject.Entry("height", .int(height)),
      JSONObject.Entry("prompts", .array(prompts)),
    ]
    if let model {
      entries.append(
        JSONObject.Entry("model", ["kind": .string(model.kind), "sha256": .string(model.sha256)]))
    }
    let times: JSONValue = [
      "load_model": milliseconds(timings.loadModel), "decode_image": milliseconds(timings.decodeImage),
      "embed": milliseconds(timings.embed), "predict": milliseconds(timings.predict),
      "total": milliseconds(timings.total),
    ]
    entries.append(JSONObject.Entry("timings_ms", times))
    return JSONWriter.write(.object(JSONObject(entries)))
  }

  /// The low-res logits of all predictions as one (prompts, masks, 256, 256) float32 array.
  /// Throws when prompts have different numbers of masks (cannot happen with one `multimask`
  /// setting for all) or a logits array is not 256x256.
  public static func logits(_ predictions: [Prediction]) throws -> NpyArray {
    let masks = predictions.first?.lowResLogits.count ?? 0
    var values: [Float] = []
    values.reserveCapacity(predictions.count * masks * 256 * 256)
    for (i, prediction) in predictions.enumerated() {
      guard prediction.lowResLogits.count == masks else {
        throw InputError.usage(
          "--logits: prompt \(i + 1) has \(prediction.lowResLogits.count) masks but prompt 1 has \(masks)")
      }
      for logits in prediction.lowResLogits {
        guard logits.count == 256 * 256 else {
          throw InputError.usage("--logits: prompt \(i + 1) has \(logits.count) low-res logits, not 256x256")
        }
        values.append(contentsOf: logits)
      }
    }
    return NpyArray(shape: [predictions.count, masks, 256, 256], values: values)
  }
}
