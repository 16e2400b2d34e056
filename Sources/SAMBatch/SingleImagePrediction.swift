import Dispatch
import Foundation
import MobileSAM
import SAMImage

/// `sambatch predict`'s work: one image, one request, the JSON object it prints. Every file is
/// checked, and the image decoded, before the model loads: a typo costs no model load.
public struct SingleImagePrediction: Sendable {
  public var request: PredictRequest
  public var image: URL
  public var model: URL
  public var multimask = false
  public var applyEXIF = true
  /// Where to write the low-res logits (.npy), if wanted.
  public var logits: URL?

  public init(request: PredictRequest, image: URL, model: URL) {
    self.request = request
    self.image = image
    self.model = model
  }

  /// The JSON object of `PredictOutput.json`, after writing `logits` when asked. A prompt the
  /// image's size rules out (the rule `sambatch run` applies) throws `invalidRequest` before the
  /// model loads; `warn` hears of the prompts that were clipped.
  public func run(warn: (String) -> Void = { _ in }) throws -> String {
    let start = DispatchTime.now()
    try requireFile(model, what: "model")
    try requireFile(image, what: "image")
    if let logits { try checkLogitsTarget(logits) }
    var timer = start
    func lap() -> Double {
      let now = DispatchTime.now()
      defer { timer = now }
      return Double(now.uptimeNanoseconds - timer.uptimeNanoseconds) / 1e6
    }
    let rgb: RGBImage
    do { rgb = try ImageDecoder.decode(contentsOf: image, applyEXIFOrientation: applyEXIF) } catch {
      throw SAMBatchError.image(error.localizedDescription)
    }
    let decodeImage = lap()
    let fitted: [FittedPrompt]
    do { fitted = try request.fitted(width: rgb.width, height: rgb.height) } catch {
      throw SAMBatchError.invalidRequest(error.localizedDescription)
    }
    for (prompt, source) in zip(fitted, request.sources) {
      if let warning = prompt.warning { warn("\(source): \(warning)") }
    }
    let source = CheckpointSource(url: model)
    let segmenter: any Segmenter = try source.load()
    let loadModel = lap()
    let (predictions, embed, predict) = try predictAll(segmenter, rgb, fitted.map(\.prompt), lap)
    if let logits { try Npy.write(try PredictOutput.logits(predictions), to: logits) }
    let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
    let timings = PredictTimings(
      loadModel: loadModel, decodeImage: decodeImage, embed: embed, predict: predict, total: total)
    return PredictOutput.json(
      width: rgb.width, height: rgb.height, predictions: predictions, warnings: fitted.map(\.warning),
      timings: timings, model: (kind: segmenter.modelKind, sha256: try source.identify().sha256))
  }

  private func predictAll<S: Segmenter>(
    _ segmenter: S, _ rgb: RGBImage, _ prompts: [Prompt], _ lap: () -> Double
  ) throws -> (
    [Prediction], Double, Double
  ) {
    let embedding: S.Embedding
    do { embedding = try segmenter.embed(rgb) } catch {
      throw SAMBatchError.image("\(image.path): \(error.localizedDescription)")
    }
    let embed = lap()
    do {
      let predictions = try segmenter.predict(embedding, prompts: prompts, multimask: multimask)
      return (predictions, embed, lap())
    } catch {
      throw SAMBatchError.prediction(error.localizedDescription)
    }
  }

  private func requireFile(_ url: URL, what: String) throws {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
      throw SAMBatchError.inputFile(what: what, path: url.path, cause: "no such file")
    }
    guard !isDirectory.boolValue else {
      throw SAMBatchError.inputFile(what: what, path: url.path, cause: "is a folder, not a file")
    }
    guard FileManager.default.isReadableFile(atPath: url.path) else {
      throw SAMBatchError.inputFile(what: what, path: url.path, cause: "permission denied")
    }
  }

  private func checkLogitsTarget(_ url: URL) throws {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
      throw SAMBatchError.inputFile(
        what: "--logits", path: url.path, cause: "is a folder: give the path of the .npy file to write")
    }
    let folder = url.deletingLastPathComponent().path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue
    else {
      throw SAMBatchError.inputFile(
        what: "--logits", path: url.path, cause: "the folder \(folder) does not exist")
    }
  }
}
