import Foundation
import MobileSAM
import SAMBatch
import TestSupport
import XCTest

final class JSONReaderTests: XCTestCase {
  private func parse(_ text: String, ignoring: Set<String> = []) throws(JSONSyntaxError) -> JSONValue {
    try JSONReader(ignoring: ignoring).parse(text)
  }

  private func syntaxError(_ text: String, file: StaticString = #filePath, line: UInt = #line)
    -> JSONSyntaxError?
  {
    do throws(JSONSyntaxError) {
      let value = try parse(text)
      XCTFail("\(text) parsed as \(value)", file: file, line: line)
      return nil
    } catch {
      return error
    }
  }

  func testValuesAndNumberKinds() throws {
    let value = try parse(
      #" {"a": [1, -0, 3.0, 2.5e1, 1E-2, 12345678901234567890, true, false, null, "x"], "b": {}} "#)
    XCTAssertEqual(
      value.object?["a"],
      [
        .int(1), .int(0), .number(3), .number(25), .number(0.01), .number(12_345_678_901_234_567_168), true,
        false, nil,
        "x",
      ])
    XCTAssertEqual(value.object?["b"], .object(JSONObject([], line: 1)))
    XCTAssertEqual(try parse("7"), .int(7))
  }

  func testPythonNonFiniteTokensAreNumbers() throws {
    let value = try parse("[NaN, Infinity, -Infinity]")
    let numbers = try XCTUnwrap(value.array).map(\.number)
    XCTAssertTrue(numbers[0]?.isNaN ?? false)
    XCTAssertEqual(numbers[1], .infinity)
    XCTAssertEqual(numbers[2], -.infinity)
    // Inside strings they are text.
    XCTAssertEqual(try parse(#"["NaN", "say \"Infinity\""]"#), ["NaN", "say \"Infinity\""])
  }

  func testStringsAndEscapes() throws {
    XCTAssertEqual(
      try parse(#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00 é""#), .string("a\"b\\c/d\n\t\u{e9}\u{1F600} é"))
    XCTAssertEqual(try parse("\u{FEFF}[1]"), [1], "a byte order mark is skipped")
  }

  func testErrorsSayWhereAndWhy() throws {
    let cases: [(String, Int, Int, String)] = [
      ("", 1, 1, "empty"),
      ("[1, 2", 1, 6, "not closed"),
      ("{\"a\": 1,\n \"b\" 2}", 2, 6, "expected ':'"),
      ("[1 2]", 1, 4, "expected ',' or ']'"),
      ("[1e999]", 1, 2, "1e999 is out of range"),
      ("[01]", 1, 2, "cannot start with 0"),
      ("[nan]", 1, 2, "expected a value, found 'n'"),
      ("[\"a\u{1}\"]", 1, 4, "control character"),
      (#"["\x"]"#, 1, 3, "invalid escape"),
      (#"["\ud800"]"#, 1, 9, "unpaired surrogate"),
      ("[1] x", 1, 5, "after the JSON value"),
      ("{1: 2}", 1, 2, "expected a key"),
      ("[é, 1]", 1, 2, "found byte 0xC3"),
      ("[\"é\", x]", 1, 7, "found 'x'"),
    ]
    for (text, line, column, fragment) in cases {
      guard let error = syntaxError(text) else { continue }
      XCTAssertEqual([error.line, error.column], [line, column], "\(text): \(error.description)")
      XCTAssertTrue(error.reason.contains(fragment), "\(text): \(error.reason) lacks \(fragment)")
    }
    XCTAssertNotNil(syntaxError(String(repeating: "[", count: 200) + String(repeating: "]", count: 200)))
    XCTAssertNoThrow(try parse(String(repeating: "[", count: 100) + String(repeating: "]", count: 100)))
  }

  func testObjectsKeepOrderDuplicatesAndTheirLine() throws {
    let value = try parse("[\n {\"b\": 1, \"a\": 2, \"b\": 3},\n\n {}]")
    let first = try XCTUnwrap(value.array?[0].object)
    XCTAssertEqual(first.keys, ["b", "a", "b"])
    XCTAssertEqual(first["b"], 1, "the first of duplicated keys")
    XCTAssertEqual(first.duplicateKey, "b")
    XCTAssertEqual(first.line, 2)
    XCTAssertEqual(value.array?[1].object?.line, 4)
  }

  func testIgnoredKeysAreCheckedButNotKept() throws {
    let value = try parse(#"{"segmentation": [[1, 2, 3]], "id": 1}"#, ignoring: ["segmentation"])
    XCTAssertEqual(value.object?.keys, ["id"])
    XCTAssertThrowsError(try parse(#"{"segmentation": [1, 2,], "id": 1}"#, ignoring: ["segmentation"]))
  }
}

final class JSONFieldRuleTests: XCTestCase {
  private func object(_ text: String) throws -> JSONObject {
    try XCTUnwrap(try JSONReader().parse(text).object)
  }

  private func message(_ body: () throws -> Void) -> String? {
    do {
      try body()
      return nil
    } catch {
      return (error as? JSONFieldError)?.message ?? "not a field error: \(error)"
    }
  }

  func testOneRuleForNumbersAndIds() throws {
    let o = try object(
      #"{"i": 3, "f": 3.0, "h": 2.5, "s": "2", "n": NaN, "big": 1e300, "id": 7, "sid": "abc", "x": null, "b": true}"#
    )
    XCTAssertEqual(try o.integer("i"), 3)
    XCTAssertEqual(try o.integer("f"), 3, "an integral number is an integer")
    XCTAssertEqual(message { _ = try o.integer("h") }, "'h' must be an integer, got 2.5")
    XCTAssertEqual(message { _ = try o.integer("s") }, "'s' must be an integer, got \"2\"")
    XCTAssertEqual(message { _ = try o.integer("big") }, "'big' must be an integer, got 1e+300")
    XCTAssertEqual(message { _ = try o.integer("b") }, "'b' must be an integer, got true")
    XCTAssertEqual(try o.finiteNumber("h"), 2.5)
    XCTAssertEqual(message { _ = try o.finiteNumber("n") }, "'n' must be a finite number, got NaN")
    XCTAssertEqual(message { _ = try o.finiteNumber("s") }, "'s' must be a finite number, got \"2\"")
    XCTAssertEqual(try o.identifier("id"), "7")
    XCTAssertEqual(try o.identifier("sid"), "abc")
    XCTAssertEqual(message { _ = try o.identifier("h") }, "'h' must be a string or an integer, got 2.5")
    XCTAssertEqual(message { _ = try o.string("i") }, "'i' must be a string, got 3")
    // null and absent are absent, whatever the type.
    XCTAssertNil(try o.integer("x"))
    XCTAssertNil(try o.finiteNumber("absent"))
    XCTAssertNil(try o.box("x"))
  }

  func testBoxesAndPoints() throws {
    let o = try object(
      #"{"box": [1, 2.5, NaN, 4], "short": [1, 2, 3], "text": "1,2,3,4", "mixed": [1, "2", 3, 4], "points": [[1, 2, 1], [3, 4, 0]], "badlabel": [[1, 2, 2]], "badpoint": [[1, 2]]}"#
    )
    let box = try XCTUnwrap(try o.box("box"))
    XCTAssertEqual(box[1], 2.5)
    XCTAssertTrue(box[2].isNaN, "non-finite coordinates are for the geometry rule to reject")
    XCTAssertEqual(
      message { _ = try o.box("short") }, "'short' must be 4 numbers (x0, y0, x1, y1), got 3 values")
    XCTAssertEqual(
      message { _ = try o.box("text") }, "'text' must be 4 numbers (x0, y0, x1, y1), got \"1,2,3,4\"")
    XCTAssertEqual(
      message { _ = try o.box("mixed") }, "'mixed' must be 4 numbers (x0, y0, x1, y1), got \"2\" among them")
    XCTAssertEqual(
      try o.points("points"), [PromptPoint(x: 1, y: 2, label: 1), PromptPoint(x: 3, y: 4, label: 0)])
    XCTAssertEqual(
      message { _ = try o.points("badlabel") },
      "'badlabel' item 1 has label 2; labels are 1 (foreground) or 0 (background)")
    XCTAssertEqual(
      message { _ = try o.points("badpoint") }, "'badpoint' item 1 must be [x, y, label], got 2 values")
  }

  func testKeysAreChecked() throws {
    XCTAssertEqual(
      message { try object(#"{"box": 1, "boxes": 2}"#).checkKeys(allowed: ["box"]) },
      "unknown key 'boxes' (allowed: box)")
    XCTAssertEqual(
      message { try object(#"{"box": 1, "box": null}"#).checkKeys(allowed: ["box"]) }, "'box' appears twice")
  }

  func testCommandLineNumbersAreJSONNumbers() throws {
    XCTAssertEqual(
      try PromptFields.commandLineBox(" 1, 2.5,3e1 ,4"), PromptBox(x0: 1, y0: 2.5, x1: 30, y1: 4))
    XCTAssertEqual(try PromptFields.commandLinePoint("1,2,0"), PromptPoint(x: 1, y: 2, label: 0))
    XCTAssertTrue(try PromptFields.commandLineBox("NaN,0,1,1").x0.isNaN)
    XCTAssertThrowsError(try PromptFields.commandLineBox("nan,0,1,1")) {
      XCTAssertEqual($0.localizedDescription, "--box nan,0,1,1: 'nan' is not a number (write X0,Y0,X1,Y1)")
    }
    XCTAssertThrowsError(try PromptFields.commandLinePoint("1,2,1.5")) {
      XCTAssertEqual(
        $0.localizedDescription,
        "--point 1,2,1.5: has label 1.5; labels are 1 (foreground) or 0 (background) (write X,Y,LABEL)")
    }
  }
}

final class JSONWriterTests: XCTestCase {
  func testNumbersAsPythonWritesThem() throws {
    let text = try String(contentsOf: Fixtures.url("json/python_floats.txt"), encoding: .utf8)
    var checked = 0
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: " ")
      let value = Double(bitPattern: try XCTUnwrap(UInt64(parts[0], radix: 16)))
      XCTAssertEqual(JSONWriter.number(value), String(parts[1]), "bits \(parts[0])")
      checked += 1
    }
    XCTAssertGreaterThan(checked, 300)
  }

  func testIntegersAndFloatsAreTold() {
    let value: JSONValue = ["bbox": [.number(10), .number(2.5)], "area": .int(10), "none": .number(.nan)]
    XCTAssertEqual(JSONWriter.write(value), #"{"bbox":[10.0,2.5],"area":10,"none":null}"#)
    XCTAssertEqual(
      JSONWriter.write(value, style: .python, sortedKeys: true),
      #"{"area": 10, "bbox": [10.0, 2.5], "none": null}"#)
  }

  func testStringsAreEscapedAsPythonDoes() {
    XCTAssertEqual(JSONWriter.string("a\"b\\c\n\u{8}\u{c}\u{1}é/"), #""a\"b\\c\n\b\f\u0001é/""#)
  }

  func testWrittenTextReadsBack() throws {
    let value: JSONValue = [
      "s": "x\"\\\u{1}", "n": .number(0.1), "i": .int(-3),
      "list": [true, false, nil, [], .object(JSONObject())],
    ]
    var read = try JSONReader().parse(JSONWriter.write(value))
    // Lines are where the reader found the objects; compare without them.
    func clearLines(_ v: inout JSONValue) {
      switch v {
      case .object(var o):
        o.line = 0
        for i in o.entries.indices { clearLines(&o.entries[i].value) }
        v = .object(o)
      case .array(var items):
        for i in items.indices { clearLines(&items[i]) }
        v = .array(items)
      default: break
      }
    }
    clearLines(&read)
    XCTAssertEqual(read, value)
  }

  func testNativeValuesKeepBoolsAndIntsApart() {
    let native: [String: Any] = [
      "flag": true, "count": 1, "zero": 0, "score": 0.5, "f": Float(0.25), "list": [1, "a"],
    ]
    XCTAssertEqual(
      JSONWriter.write(JSONValue(native: native), sortedKeys: true),
      #"{"count":1,"f":0.25,"flag":true,"list":[1,"a"],"score":0.5,"zero":0}"#)
  }
}
