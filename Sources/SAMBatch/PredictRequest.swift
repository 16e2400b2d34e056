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
/// - every prompt must pass `Prompt.validationError` (finite values, labels 0/1, ordered box).
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
    let parsedBoxes = try boxes.map(parseBox)
    let parsedPoints = try points.map(parsePoint)
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
      throw InputError.promptsFile(file: name, reason: "cannot be read (\(readableCause(error)))")
    }
    do {
      // JSONSerialization says where the syntax breaks; JSONDecoder (below) only that it does.
      _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
    } catch {
      let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
      throw InputError.promptsFile(
        file: name, reason: "is not valid JSON (\(detail ?? error.localizedDescription))")
    }
    let entries: [PromptEntry]
    do {
      entries = try JSONDecoder().decode([PromptEntry].self, from: data)
    } catch let error as DecodingError {
      throw InputError.promptsFile(file: name, reason: describe(error))
    } catch let error as InputError {
      throw error
    } catch {
      throw InputError.promptsFile(file: name, reason: "is not valid JSON (\(error.localizedDescription))")
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
      for (j, point) in (entry.points ?? []).enumerated() {
        guard point.count == 3 else {
          throw InputError.prompt(
            source: source, reason: "point \(j + 1) has \(point.count) values; write [x, y, label]")
        }
        guard let label = Int(exactly: point[2]) else {
          throw InputError.prompt(
            source: source,
            reason: "point \(j + 1) has label \(point[2]); labels are 1 (foreground) or 0 (background)")
        }
        prompt.points.append(PromptPoint(x: Float(point[0]), y: Float(point[1]), label: label))
      }
      if let box = entry.box {
        guard box.count == 4 else {
          throw InputError.prompt(
            source: source, reason: "the box has \(box.count) values; write [x0, y0, x1, y1]")
        }
        prompt.box = PromptBox(x0: Float(box[0]), y0: Float(box[1]), x1: Float(box[2]), y1: Float(box[3]))
      }
      if let path = entry.mask_input {
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

private func parseNumbers(_ text: String, count: Int, option: String, form: String) throws -> [Float] {
  let parts = text.split(separator: ",", omittingEmptySubsequences: false)
  guard parts.count == count else {
    throw InputError.usage(
      "\(option) \(text): expected \(count) comma-separated numbers \(form), got \(parts.count)")
  }
  return try parts.map { part in
    let trimmed = part.trimmingCharacters(in: .whitespaces)
    guard let value = Float(trimmed) else {
      throw InputError.usage("\(option) \(text): '\(trimmed)' is not a number (expected \(form))")
    }
    return value
  }
}

private func parseBox(_ text: String) throws -> PromptBox {
  let v = try parseNumbers(text, count: 4, option: "--box", form: "X0,Y0,X1,Y1")
  return PromptBox(x0: v[0], y0: v[1], x1: v[2], y1: v[3])
}

private func parsePoint(_ text: String) throws -> PromptPoint {
  let parts = text.split(separator: ",", omittingEmptySubsequences: false)
  guard parts.count == 3 else {
    throw InputError.usage(
      "--point \(text): expected X,Y,LABEL (3 comma-separated values), got \(parts.count)")
  }
  let xy = try parseNumbers(
    parts[0..<2].joined(separator: ","), count: 2, option: "--point", form: "X,Y,LABEL")
  let labelText = parts[2].trimmingCharacters(in: .whitespaces)
  guard let label = Int(labelText) else {
    throw InputError.usage("--point \(text): LABEL '\(labelText)' must be 1 (foreground) or 0 (background)")
  }
  return PromptPoint(x: xy[0], y: xy[1], label: label)
}

private func pythonTuple(_ shape: [Int]) -> String {
  shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

// MARK: - The prompts file

/// One object of a prompts file. Unknown keys are an error (a typo such as "boxes" would
/// otherwise silently drop the box).
private struct PromptEntry: Decodable {
  var points: [[Double]]?
  var box: [Double]?
  var mask_input: String?

  private struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  private static let known = ["points", "box", "mask_input"]

  init(from decoder: Decoder) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    for key in container.allKeys where !Self.known.contains(key.stringValue) {
      throw DecodingError.dataCorrupted(
        .init(
          codingPath: container.codingPath,
          debugDescription:
            "unknown key '\(key.stringValue)' (a prompt has \"points\", \"box\", \"mask_input\")"))
    }
    points = try container.decodeIfPresent([[Double]].self, forKey: AnyKey(stringValue: "points"))
    box = try container.decodeIfPresent([Double].self, forKey: AnyKey(stringValue: "box"))
    mask_input = try container.decodeIfPresent(String.self, forKey: AnyKey(stringValue: "mask_input"))
  }
}

/// "prompt 2, points[0][1]: expected a number" from a DecodingError.
private func describe(_ error: DecodingError) -> String {
  func location(_ path: [CodingKey]) -> String {
    guard let first = path.first, let index = first.intValue else {
      return path.isEmpty ? "the top level" : path.map(\.stringValue).joined(separator: ".")
    }
    var text = "prompt \(index + 1)"
    var rest = ""
    for key in path.dropFirst() {
      if let i = key.intValue {
        rest += "[\(i)]"
      } else {
        rest += (rest.isEmpty ? "" : ".") + key.stringValue
      }
    }
    if !rest.isEmpty { text += ", \(rest)" }
    return text
  }
  switch error {
  case .typeMismatch(let type, let context):
    let expected =
      type == Double.self
      ? "a number"
      : type == String.self
        ? "a string" : String(describing: type).hasPrefix("Array") ? "a list" : "an object"
    if context.codingPath.isEmpty {
      return
        "must hold a JSON list of prompt objects: [{\"points\": [[x, y, label]], \"box\": [x0, y0, x1, y1]}]"
    }
    return "\(location(context.codingPath)): expected \(expected)"
  case .valueNotFound(_, let context):
    return "\(location(context.codingPath)): a value is null"
  case .keyNotFound(let key, let context):
    return "\(location(context.codingPath)): missing key '\(key.stringValue)'"
  case .dataCorrupted(let context):
    if context.codingPath.isEmpty {
      return
        "is not valid JSON (\(context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription))"
    }
    return "\(location(context.codingPath)): \(context.debugDescription)"
  @unknown default:
    return "\(error)"
  }
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
  /// "rle": {"size": [H, W], "counts": "..."}}]}], "timings_ms": {"load_model": .., "decode_image":
  /// .., "embed": .., "predict": .., "total": ..}}`. Masks in the reference's order; `score` is the
  /// predicted IoU (null if not finite), `bbox` as pycocotools' `toBbox`, `counts` the compressed
  /// COCO RLE. One line, no spaces. With `model`, `"model": {"kind": .., "sha256": ..}` comes
  /// before `timings_ms`.
  public static func json(
    width: Int, height: Int, predictions: [Prediction], timings: PredictTimings, model: ModelIdentity? = nil
  ) -> String {
    var out = "{\"width\":\(width),\"height\":\(height),\"prompts\":["
    for (i, prediction) in predictions.enumerated() {
      if i > 0 { out += "," }
      out += "{\"masks\":["
      for (j, mask) in prediction.masks.enumerated() {
        if j > 0 { out += "," }
        let encoded = MaskRLE.summarize(mask)
        let score = j < prediction.scores.count ? prediction.scores[j] : .nan
        out += "{\"score\":\(jsonNumber(score)),\"area\":\(encoded.area),\"bbox\":["
        out += encoded.bbox.map(jsonNumber).joined(separator: ",")
        out += "],\"rle\":{\"size\":[\(mask.height),\(mask.width)],\"counts\":\(jsonString(encoded.counts))}}"
      }
      out += "]}"
    }
    out += "]"
    if let model {
      out += ",\"model\":{\"kind\":\(jsonString(model.kind)),\"sha256\":\(jsonString(model.sha256))}"
    }
    out += ",\"timings_ms\":{"
    let times = [
      ("load_model", timings.loadModel), ("decode_image", timings.decodeImage), ("embed", timings.embed),
      ("predict", timings.predict), ("total", timings.total),
    ]
    out += times.map { "\"\($0.0)\":\(milliseconds($0.1))" }.joined(separator: ",")
    out += "}}"
    return out
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

/// A JSON number: integers without a fraction, others as Swift's shortest round-trip text
/// (valid JSON, e.g. "0.875", "1e-05"); null when not finite (JSON has no NaN).
func jsonNumber(_ value: Double) -> String {
  guard value.isFinite else { return "null" }
  if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
  return "\(value)"
}

func jsonNumber(_ value: Float) -> String {
  guard value.isFinite else { return "null" }
  return "\(value)"
}

private func milliseconds(_ value: Double) -> String {
  guard value.isFinite else { return "null" }
  return String(format: "%.3f", value)
}

/// A JSON string literal (the counts alphabet includes the backslash, 92).
func jsonString(_ text: String) -> String {
  var out = "\""
  for scalar in text.unicodeScalars {
    switch scalar {
    case "\"": out += "\\\""
    case "\\": out += "\\\\"
    case "\n": out += "\\n"
    case "\r": out += "\\r"
    case "\t": out += "\\t"
    case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
    default: out.unicodeScalars.append(scalar)
    }
  }
  return out + "\""
}
