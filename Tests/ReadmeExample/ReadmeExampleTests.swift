// swift-format-ignore-file
import Foundation
import MobileSAM
import SAMImage
import XCTest

// README.md's "As a library" example, line for line between the markers: this target stops
// building when the README's code stops compiling, and the test below fails when the two differ.
// BEGIN README EXAMPLE
func readmeExample() throws -> [Prediction] {
  let model = try MobileSAMModel(checkpoint: URL(fileURLWithPath: "weights/mobile_sam.pt"))
  let image = try ImageDecoder.decode(contentsOf: URL(fileURLWithPath: "photo.jpg"))
  let embedding = try model.embed(image)                   // the expensive part, once per image
  let results = try model.predict(embedding, prompts: [
    Prompt(box: PromptBox(x0: 75, y0: 275, x1: 1725, y1: 850)),
    Prompt(points: [PromptPoint(x: 900, y: 370, label: 1)]),
  ], multimask: false)                                     // masks, scores, low-res logits per prompt
  return results
}
// END README EXAMPLE

final class ReadmeExampleTests: XCTestCase {
  func testReadmeShowsThisExample() throws {
    let here = URL(fileURLWithPath: #filePath)
    let readme = try String(
      contentsOf: here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md"), encoding: .utf8)
    let source = try String(contentsOf: here, encoding: .utf8)
    guard let begin = source.range(of: "// BEGIN README EXAMPLE\n"), let end = source.range(of: "// END README EXAMPLE")
    else { return XCTFail("the markers are missing") }
    // The function's body, without its first and last two lines (signature, return, brace).
    let lines = source[begin.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
    let body = lines.dropFirst().dropLast(3).map { String($0.dropFirst(2)) }
    XCTAssertFalse(body.isEmpty)
    let block = body.joined(separator: "\n")
    XCTAssertTrue(
      readme.contains(block), "README.md's library example differs from the compiled copy:\n\(block)")
  }
}
