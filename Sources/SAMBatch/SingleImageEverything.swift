import Dispatch
import Foundation
import MobileSAM
import SAMImage

/// `sambatch predict --everything`'s work: the automatic mask generator on one image, and the JSON
/// object it prints (`EverythingOutput`). The files are checked and the image decoded before the
/// model loads; the parameters were checked by the caller (`EverythingParameters.problems`).
public struct SingleImageEverything: Sendable {
  public var image: URL
  public var model: URL
  public var parameters: EverythingParameters
  public var applyEXIF = true

  public init(image: URL, model: URL, parameters: EverythingParameters) {
    self.image = image
    self.model = model
    self.parameters = parameters
  }

  public func run() throws -> String {
    let start = DispatchTime.now()
    try requireInputFile(model, what: "model")
    try requireInputFile(image, what: "image")
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
    let generator: AutomaticMaskGenerator
    do {
      generator = try AutomaticMaskGenerator(
        model: try MobileSAMModel(checkpoint: model), parameters: parameters)
    } catch {
      throw SAMBatchError.model(path: model.path, cause: error.localizedDescription)
    }
    let loadModel = lap()
    let result: EverythingResult
    do { result = try generator.generate(rgb) } catch {
      throw SAMBatchError.image("\(image.path): \(error.localizedDescription)")
    }
    let total = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
    return EverythingOutput.json(
      result,
      timings: [
        ("load_model", loadModel), ("decode_image", decodeImage), ("embed", result.timings.embed),
        ("decode", result.timings.decode), ("postprocess", result.timings.postprocess), ("total", total),
      ])
  }
}
