import Foundation
import MobileSAM
import SAMImage
import TestSupport
import XCTest

@testable import SAMBatch

final class ReviewReportTests: XCTestCase {
  static func sample() -> ReviewData {
    ReviewData(
      title: "Review of job.yaml",
      images: [
        .init(
          path: "good.jpg", overlay: "overlays/0.png",
          masks: [.init(category: "dog", score: 0.95, stability: 0.97, gtIoU: nil)]),
        .init(path: "empty.jpg", overlay: "overlays/1.png", masks: []),
        .init(
          path: "bad <b>.jpg", overlay: "overlays/2.png",
          masks: [
            .init(category: "cat", score: 0.91, stability: 0.5, gtIoU: 0.8),
            .init(category: "dog", score: 0.88, stability: nil, gtIoU: nil),
          ]),
        .init(
          path: "middle.jpg", overlay: "overlays/3.png",
          masks: [.init(category: "cat", score: 0.6, stability: 0.9, gtIoU: nil)]),
      ],
      failures: [.init(kind: "image", place: "broken.jpg", reason: "not a JPEG & not a PNG")],
      stageMilliseconds: [("read", 120), ("embed", 5400), ("predict", 300), ("write", 40)])
  }

  func testImagesWorstFirstWithoutMasksLast() {
    let html = ReviewReport.html(Self.sample())
    let order = ["bad &lt;b&gt;.jpg", "middle.jpg", "good.jpg", "empty.jpg"].map {
      html.range(of: "<div class=\"path\">\($0)</div>")?.lowerBound
    }
    XCTAssertFalse(order.contains(nil), "every image is listed")
    XCTAssertEqual(
      order.compactMap { $0 }, order.compactMap { $0 }.sorted(), "stability 0.5 < IoU 0.6 < 0.95 < none")
    XCTAssertEqual(html.components(separatedBy: "<div class=\"item\"").count - 1, 4)
    XCTAssertTrue(html.contains("no masks (no detections)"))
    XCTAssertTrue(html.contains("not a JPEG &amp; not a PNG"))
    XCTAssertFalse(html.contains("<b>"), "names are escaped")
    XCTAssertTrue(html.contains("<option value=\"cat\">cat</option><option value=\"dog\">dog</option>"))
    XCTAssertFalse(
      html.contains("http://")
        && html.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http://"),
      "nothing is fetched from the network")
    XCTAssertTrue(html.contains("Ground-truth IoU"), "the ground-truth histogram appears when there is one")
  }

  func testHistogramAndCounts() {
    let bins = ReviewReport.histogram([0, 0.05, 0.95, 1, .nan])
    XCTAssertEqual(bins.map(\.1), [2, 0, 0, 0, 0, 0, 0, 0, 0, 2])
    let counts = ReviewReport.categoryCounts(Self.sample())
    XCTAssertEqual(counts.map(\.0), ["cat", "dog"])
    XCTAssertEqual(counts.map(\.1), [2, 2])
  }
}

/// The report in a real browser: headless Chromium from the system packages (`make test` installs
/// it). Skipped, saying why, only when no Chromium is installed.
final class ReviewReportBrowserTests: XCTestCase {
  var folder: URL!

  override func setUpWithError() throws {
    folder = FileManager.default.temporaryDirectory.appendingPathComponent("review-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
  }

  override func tearDownWithError() throws {
    try? FileManager.default.removeItem(at: folder)
  }

  func runChromium(_ arguments: [String], page: URL) throws -> (stdout: String, stderr: String) {
    guard let binary = Chromium.binary() else { throw XCTSkip(Chromium.missingReason) }
    return try Chromium.run(binary, page: page, arguments: arguments, scratch: folder)
  }

  func consoleErrors(_ log: String) -> [String] { Chromium.consoleErrors(log) }

  func makeReport() throws -> URL {
    var data = ReviewReportTests.sample()
    try FileManager.default.createDirectory(
      at: folder.appendingPathComponent("overlays"), withIntermediateDirectories: true)
    for (i, image) in data.images.enumerated() {
      var pixels = [UInt8](repeating: 0, count: 160 * 120)
      for y in 30..<90 { for x in (20 + 10 * i)..<(100 + 10 * i) { pixels[y * 160 + x] = 1 } }
      let base = RGBImage(
        width: 160, height: 120,
        pixels: (0..<(160 * 120 * 3)).map { UInt8(truncatingIfNeeded: $0 / 3 % 160 + 60) })
      let masks = image.masks.map {
        OverlayMask(
          mask: BinaryMask(width: 160, height: 120, pixels: pixels), category: $0.category,
          box: [15, 25, 140, 95])
      }
      let overlay = try OverlayRenderer.render(image: base, masks: masks, maxSide: 160)
      try encodePNG(overlay).write(to: folder.appendingPathComponent(image.overlay))
    }
    data.title = "Browser test"
    return try ReviewReport.write(data, to: folder)
  }

  func testReportRendersInHeadlessChromium() throws {
    guard Chromium.binary() != nil else {
      print("ReviewReportBrowserTests skipped: \(Chromium.missingReason)")
      throw XCTSkip(Chromium.missingReason)
    }
    let page = try makeReport()
    let dom = try runChromium(["--dump-dom"], page: page)
    XCTAssertEqual(consoleErrors(dom.stderr), [], "console errors")
    // The script ran: it counted the items it shows.
    XCTAssertTrue(dom.stdout.contains("4 of 4 images shown"), String(dom.stdout.suffix(2000)))
    XCTAssertEqual(dom.stdout.components(separatedBy: "<div class=\"item\"").count - 1, 4)

    // The filters, set through the address as a user would set the controls.
    // (Each Chromium start costs ~3 s: two cases, a category alone and with a score range.)
    for (fragment, expected) in [("category=cat", "2 of 4"), ("category=dog&low=0&high=0.9", "1 of 4")] {
      let filtered = try XCTUnwrap(URL(string: page.absoluteString + "#" + fragment))
      let run = try runChromium(["--dump-dom"], page: filtered)
      XCTAssertEqual(consoleErrors(run.stderr), [], fragment)
      XCTAssertTrue(run.stdout.contains("\(expected) images shown"), "\(fragment): expected \(expected)")
    }

    let shot = folder.appendingPathComponent("shot.png")
    let run = try runChromium(
      ["--screenshot=\(shot.path)", "--window-size=1280,1600", "--hide-scrollbars"], page: page)
    XCTAssertEqual(consoleErrors(run.stderr), [], "console errors")
    let image = try ImageDecoder.decode(contentsOf: shot)
    XCTAssertEqual(image.width, 1280)
    // Not blank: many distinct colours (text, charts, overlays), not one background.
    var colours = Set<Int>()
    for p in stride(from: 0, to: image.pixels.count, by: 3) {
      colours.insert(Int(image.pixels[p]) << 16 | Int(image.pixels[p + 1]) << 8 | Int(image.pixels[p + 2]))
    }
    XCTAssertGreaterThan(colours.count, 50, "the screenshot looks blank")
  }

  func testConsoleErrorsAreDetected() throws {
    guard Chromium.binary() != nil else {
      print("ReviewReportBrowserTests skipped: \(Chromium.missingReason)")
      throw XCTSkip(Chromium.missingReason)
    }
    // The check above must be able to fail: a page whose script throws is caught.
    let page = folder.appendingPathComponent("broken.html")
    try Data("<html><body><script>undefinedFunction();</script></body></html>".utf8).write(to: page)
    let run = try runChromium(["--dump-dom"], page: page)
    XCTAssertFalse(consoleErrors(run.stderr).isEmpty, run.stderr)
  }
}
