import MobileSAM
import SAMBatch
import XCTest

final class PromptBuilderTests: XCTestCase {
  func prepare(_ box: [Double]?, _ convention: BoxConvention = .xyxy, points: [PromptPoint] = [])
    -> PreparedPrompt
  {
    PromptBuilder.prepare(
      ManifestObject(box: box, boxConvention: convention, points: points), width: 100, height: 50)
  }

  func testBoxInsideIsUsedAsIs() {
    let p = prepare([10, 5, 30, 40])
    XCTAssertEqual(p.prompt?.box, PromptBox(x0: 10, y0: 5, x1: 30, y1: 40))
    XCTAssertEqual(p.usedBox, [10, 5, 30, 40])
    XCTAssertNil(p.warning)
    XCTAssertNil(p.error)
  }

  func testConventionIsAppliedWithTheDecodedSize() {
    XCTAssertEqual(prepare([0.5, 0.5, 0.2, 0.4], .cxcywhNormalized).usedBox, [40, 15, 60, 35])
    XCTAssertEqual(prepare([10, 5, 20, 10], .xywh).usedBox, [10, 5, 30, 15])
  }

  func testPartlyOutsideIsClippedWithWarning() {
    let p = prepare([-10, 5, 130, 60])
    XCTAssertEqual(p.usedBox, [0, 5, 100, 50])
    XCTAssertNotNil(p.prompt)
    XCTAssertTrue(p.warning?.contains("clipped") ?? false)
  }

  func testRejections() {
    XCTAssertTrue(prepare([.nan, 5, 30, 40]).error?.contains("non-finite") ?? false)
    XCTAssertTrue(prepare([10, 5, 10, 40]).error?.contains("zero or negative area") ?? false)
    XCTAssertTrue(prepare([10, 5, 0, 0], .xywh).error?.contains("zero or negative area") ?? false)
    XCTAssertTrue(prepare([200, 60, 300, 90]).error?.contains("entirely outside") ?? false)
    XCTAssertTrue(prepare(nil).error?.contains("no point and no box") ?? false)
    XCTAssertTrue(
      prepare(nil, points: [PromptPoint(x: 100, y: 10, label: 1)]).error?.contains("outside") ?? false)
    XCTAssertTrue(
      prepare(nil, points: [PromptPoint(x: 1, y: 1, label: 2)]).error?.contains("label 2") ?? false)
    XCTAssertTrue(
      prepare(nil, points: [PromptPoint(x: .infinity, y: 1, label: 1)]).error?.contains("non-finite") ?? false
    )
    for p in [prepare([.nan, 5, 30, 40]), prepare(nil)] { XCTAssertNil(p.prompt) }
  }

  func testMessagesNameTheBoxAsWritten() {
    XCTAssertEqual(
      prepare([10, 5, -3, 4], .xywh).error,
      "the box (10.0, 5.0, 7.0, 9.0) has x1 < x0 or y1 < y0 (written [10, 5, -3, 4] in xywh)")
    XCTAssertEqual(
      prepare([0.5, 0.5, 0, 0.2], .cxcywhNormalized).error,
      "the box [50, 20, 50, 30] has zero or negative area (x1 <= x0 or y1 <= y0) (written [0.5, 0.5, 0, 0.2] in cxcywh-normalized)"
    )
    XCTAssertEqual(
      prepare([110, 5, 130, 60]).error, "the box [110, 5, 130, 60] lies entirely outside the 100x50 image")
    XCTAssertEqual(
      prepare([-10, 5, 130, 60]).warning,
      "the box [-10, 5, 130, 60] reaches outside the 100x50 image; clipped to [0, 5, 100, 50]")
    XCTAssertEqual(
      prepare([10, 5, 30, 40], points: [PromptPoint(x: 1.5, y: 50, label: 1)]).error,
      "point 1 (1.5, 50) lies outside the 100x50 image")
  }

  func testBoxAndPointsMakeOnePrompt() {
    let p = prepare([10, 5, 30, 40], points: [PromptPoint(x: 20, y: 20, label: 1)])
    XCTAssertEqual(p.prompt?.points.count, 1)
    XCTAssertNotNil(p.prompt?.box)
  }
}
