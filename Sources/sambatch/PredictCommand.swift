import ArgumentParser
import Foundation
import MobileSAM
import SAMBatch
import SAMImage

/// `sambatch predict`: one image, any number of prompts, masks as COCO RLE in one JSON object on
/// stdout. Parsing and printing only; the rules live in SAMBatch (`PredictRequest`,
/// `PredictOutput`).
struct PredictCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "predict",
    abstract: "Segments one image: prompts in, masks out as COCO RLE in one JSON object on stdout.",
    discussion: """
      Prompts: each --box is one prompt. The --point options belong to the single prompt when \
      there is at most one --box (a box plus points is one prompt with both); points with two or \
      more boxes are an error. --prompts FILE.json gives the general case and cannot be combined \
      with --box, --point or --mask-input:
        [{"points": [[x, y, label], ...], "box": [x0, y0, x1, y1], "mask_input": "file.npy"}, ...]
      (every key optional, but each prompt needs a point or a box; mask_input paths are relative \
      to the JSON file). Coordinates are pixels of the image as decoded (after EXIF orientation \
      unless --no-exif); labels are 1 (foreground) or 0 (background).

      Output: {"width": W, "height": H, "prompts": [{"masks": [{"score": s, "area": a, \
      "bbox": [x, y, w, h], "rle": {"size": [H, W], "counts": "..."}}]}], "timings_ms": {...}}, \
      masks in the reference's order (3 with --multimask, else 1), score = predicted IoU, bbox \
      and counts as pycocotools' toBbox and encode.

      Exit status: 0 success; 64 invalid request (bad or conflicting options, invalid prompt, \
      unreadable --prompts or --mask-input file, no model given), reported before the model is \
      loaded; 1 failure while working (model or image missing or unreadable, writing --logits).
      """)

  @Option(help: "The MobileSAM checkpoint (mobile_sam.pt). Default: $SAMBATCH_MODEL.")
  var model: String?

  @Option(help: "The image (JPEG or PNG).")
  var image: String

  @Option(
    name: .customLong("box"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp("A box prompt in pixels; repeat for several objects.", valueName: "X0,Y0,X1,Y1"))
  var boxes: [String] = []

  @Option(
    name: .customLong("point"), parsing: .unconditionalSingleValue,
    help: ArgumentHelp("A point of the prompt, label 1 = object, 0 = background.", valueName: "X,Y,LABEL"))
  var points: [String] = []

  @Option(
    name: .customLong("mask-input"),
    help: ArgumentHelp(
      "Low-res logits of an earlier prediction: float32 .npy, shape (1, 256, 256) or (256, 256).",
      valueName: "FILE.npy"))
  var maskInput: String?

  @Option(
    name: .customLong("prompts"), help: ArgumentHelp("Prompts as JSON (see above).", valueName: "FILE.json"))
  var promptsFile: String?

  @Flag(help: "Three masks per prompt (the reference's multimask output) instead of one.")
  var multimask = false

  @Flag(name: .customLong("no-exif"), help: "Do not apply the EXIF orientation of the image.")
  var noEXIF = false

  @Option(
    help: ArgumentHelp(
      "Also write the low-res logits, float32 .npy of shape (prompts, masks, 256, 256).", valueName: "OUT.npy"
    ))
  var logits: String?

  @OptionGroup(title: "Everything mode (--everything)")
  var everythingOptions: EverythingOptions

  func run() throws {
    if everythingOptions.everything { return try runEverything() }
    guard everythingOptions.strayFlags.isEmpty else {
      throw fail(
        "\(everythingOptions.strayFlags.joined(separator: ", ")) only apply with --everything", status: .usage
      )
    }
    let start = DispatchTime.now()
    // 1. Everything about the request, before the model is loaded (exit 64).
    let request: PredictRequest
    do {
      request = try PredictRequest.fromOptions(
        boxes: boxes, points: points, maskInput: maskInput, promptsFile: promptsFile)
    } catch {
      throw fail(error.localizedDescription, status: .usage)
    }
    guard let modelPath = model ?? ProcessInfo.processInfo.environment["SAMBATCH_MODEL"], !modelPath.isEmpty
    else {
      throw fail("no model: give --model PATH or set SAMBATCH_MODEL", status: .usage)
    }
    // 2. Files that must exist (exit 1), still before the model is loaded.
    try requireFile(modelPath, what: "model")
    try requireFile(image, what: "image")
    if let logits {
      var isFolder: ObjCBool = false
      if FileManager.default.fileExists(atPath: logits, isDirectory: &isFolder), isFolder.boolValue {
        throw fail(
          "--logits \(logits) is a folder: give the path of the .npy file to write", status: .failure)
      }
      let folder = URL(fileURLWithPath: logits).deletingLastPathComponent().path
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue
      else {
        throw fail("--logits \(logits): the folder \(folder) does not exist", status: .failure)
      }
    }
    // 3. The work.
    var timer = start
    func lap() -> Double {
      let now = DispatchTime.now()
      defer { timer = now }
      return Double(now.uptimeNanoseconds - timer.uptimeNanoseconds) / 1e6
    }
    // The image is decoded first: a corrupt file is reported without loading the model.
    let rgb: RGBImage
    do {
      rgb = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: image), applyEXIFOrientation: !noEXIF)
    } catch {
      throw fail("image \(error.localizedDescription)", status: .failure)
    }
    let decodeImage = lap()
    let samModel: MobileSAMModel
    do {
      samModel = try MobileSAMModel(checkpoint: URL(fileURLWithPath: modelPath))
    } catch {
      throw fail(error.localizedDescription, status: .failure)
    }
    let loadModel = lap()
    let embedding: ImageEmbedding
    do {
      embedding = try samModel.embed(rgb)
    } catch {
      throw fail("image \(image): \(error.localizedDescription)", status: .failure)
    }
    let embed = lap()
    let predictions: [Prediction]
    do {
      predictions = try samModel.predict(embedding, prompts: request.prompts, multimask: multimask)
    } catch {
      throw fail(error.localizedDescription, status: .failure)
    }
    let predict = lap()
    if let logits {
      do {
        try Npy.write(try PredictOutput.logits(predictions), to: URL(fileURLWithPath: logits))
      } catch {
        throw fail(error.localizedDescription, status: .failure)
      }
    }
    let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
    let timings = PredictTimings(
      loadModel: loadModel, decodeImage: decodeImage, embed: embed, predict: predict, total: total)
    print(
      PredictOutput.json(width: rgb.width, height: rgb.height, predictions: predictions, timings: timings))
  }
}

private func requireFile(_ path: String, what: String) throws {
  var isDirectory: ObjCBool = false
  guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
    throw fail("\(what) \(path): no such file", status: .failure)
  }
  guard !isDirectory.boolValue else {
    throw fail("\(what) \(path): is a folder, not a file", status: .failure)
  }
  guard FileManager.default.isReadableFile(atPath: path) else {
    throw fail("\(what) \(path): permission denied", status: .failure)
  }
}

/// Prints `message` on stderr and returns the exit code to throw.
private func fail(_ message: String, status: ExitCode) -> ExitCode {
  FileHandle.standardError.write(Data("sambatch predict: error: \(message)\n".utf8))
  return status
}

extension ExitCode {
  /// EX_USAGE from sysexits.h, as ArgumentParser uses for its own parsing errors.
  static let usage = ExitCode(64)
}
