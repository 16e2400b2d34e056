import ArgumentParser
import Foundation
import SAMBatch

/// `sambatch predict`: one image, any number of prompts, masks as COCO RLE in one JSON object on
/// stdout. Parsing and printing only; the work is SAMBatch's `SingleImagePrediction`.
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
      unless --no-exif); labels are 1 (foreground) or 0 (background); numbers, on the command \
      line as in the file, are written as in JSON (12, -3.5, 1e3). As in `sambatch run`, a box \
      reaching outside the image is clipped to it (with a "warning" in the output), and a box \
      entirely outside the image or a point outside it is refused.

      Output: {"width": W, "height": H, "prompts": [{"masks": [{"score": s, "area": a, \
      "bbox": [x, y, w, h], "rle": {"size": [H, W], "counts": "..."}}]}], "timings_ms": {...}}, \
      masks in the reference's order (3 with --multimask, else 1), score = predicted IoU, bbox \
      and counts as pycocotools' toBbox and encode; a prompt whose box was clipped has a \
      "warning".

      Exit status: 0 success; 64 invalid request (bad or conflicting options, invalid prompt, \
      unreadable --prompts or --mask-input file, no model given, a prompt outside the image), \
      reported before the model is \
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
        "predict", "\(everythingOptions.strayFlags.joined(separator: ", ")) only apply with --everything",
        status: .usage)
    }
    // Everything about the request, before the model is loaded (exit 64).
    let request: PredictRequest
    let modelPath: ModelPath
    do {
      request = try PredictRequest.fromOptions(
        boxes: boxes, points: points, maskInput: maskInput, promptsFile: promptsFile)
      modelPath = try ModelPath.resolve(
        option: model, job: nil, environment: ProcessInfo.processInfo.environment)
    } catch {
      throw fail("predict", error.localizedDescription, status: .usage)
    }
    var prediction = SingleImagePrediction(
      request: request, image: URL(fileURLWithPath: image), model: modelPath.url)
    prediction.multimask = multimask
    prediction.applyEXIF = !noEXIF
    prediction.logits = logits.map { URL(fileURLWithPath: $0) }
    do {
      print(try prediction.run(warn: { note("sambatch predict: warning: \($0)") }))
    } catch SAMBatchError.invalidRequest(let message) {
      throw fail("predict", message, status: .usage)
    } catch {
      throw fail("predict", error.localizedDescription)
    }
  }
}
