import Foundation

/// Why a text is not JSON, with the 1-based line and column (in characters) where it breaks.
public struct JSONSyntaxError: Error, Equatable, Sendable {
  public var line: Int
  public var column: Int
  public var reason: String

  /// "line 3, column 14: expected ',' or '}' after a value"
  public var description: String { "line \(line), column \(column): \(reason)" }
}

/// The JSON reader of the module: manifests, prompts files and job data all go through it, so
/// they share one syntax and one rule for numbers.
///
/// Standard JSON (RFC 8259), with three leniencies:
/// - Python's `NaN`, `Infinity` and `-Infinity` tokens, which `json.dumps` writes for non-finite
///   floats, are read as numbers: a detector's NaN then reaches the field it belongs to, whose
///   rule rejects it with a message naming the field, instead of making the whole file unreadable;
/// - a UTF-8 byte order mark at the start is skipped;
/// - values under the keys in `ignoring` are checked for syntax but not kept (a COCO file's
///   `segmentation` polygons are most of its bytes and no prompt needs them).
/// Duplicated keys are kept in `JSONObject.entries`; readers of fields refuse them.
/// A number literal too large for a double (`1e999`) is a syntax error, not an infinity.
public struct JSONReader {
  public var ignoring: Set<String>

  public init(ignoring: Set<String> = []) {
    self.ignoring = ignoring
  }

  public func parse(_ data: Data) throws(JSONSyntaxError) -> JSONValue {
    // Read in place: a manifest can be tens of megabytes.
    let result = data.withUnsafeBytes { raw -> Result<JSONValue, JSONSyntaxError> in
      var scanner = Scanner(bytes: raw.bindMemory(to: UInt8.self), ignoring: ignoring)
      do throws(JSONSyntaxError) {
        return .success(try scanner.document())
      } catch {
        return .failure(error)
      }
    }
    return try result.get()
  }

  public func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue {
    try parse(Data(text.utf8))
  }
}

/// Recursive descent over the bytes; the line counter advances on the newlines of whitespace
/// (a valid string holds no raw newline).
private struct Scanner {
  let bytes: UnsafeBufferPointer<UInt8>
  let ignoring: Set<String>
  var position = 0
  var line = 1
  var lineStart = 0
  var depth = 0

  /// Far deeper than any manifest needs (COCO nests 4 levels); keeps the recursion within a
  /// secondary thread's stack on a hostile file.
  static let maximumDepth = 128

  init(bytes: UnsafeBufferPointer<UInt8>, ignoring: Set<String>) {
    self.bytes = bytes
    self.ignoring = ignoring
  }

  mutating func document() throws(JSONSyntaxError) -> JSONValue {
    if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF { position = 3 }
    skipWhitespace()
    guard position < bytes.count else { throw error("no JSON value (the text is empty)") }
    let value = try self.value(keep: true)
    skipWhitespace()
    guard position == bytes.count else { throw error("unexpected \(found()) after the JSON value") }
    return value
  }

  func error(_ reason: String, at offset: Int? = nil) -> JSONSyntaxError {
    let at = offset ?? position
    // Columns count characters, not bytes: UTF-8 continuation bytes are skipped.
    var column = 1
    var i = lineStart
    while i < at && i < bytes.count {
      if bytes[i] & 0xC0 != 0x80 { column += 1 }
      i += 1
    }
    return JSONSyntaxError(line: line, column: at < lineStart ? 1 : column, reason: reason)
  }

  /// The character at the current position, for messages.
  func found() -> String {
    guard position < bytes.count else { return "end of text" }
    let b = bytes[position]
    if b >= 0x20 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
    return "byte 0x\(String(b, radix: 16, uppercase: true))"
  }

  mutating func skipWhitespace() {
    while position < bytes.count {
      switch bytes[position] {
      case 0x20, 0x09, 0x0D: position += 1
      case 0x0A:
        position += 1
        line += 1
        lineStart = position
      default: return
      }
    }
  }

  /// One value; `keep: false` checks its syntax and returns `.null` without building it.
  mutating func value(keep: Bool) throws(JSONSyntaxError) -> JSONValue {
    guard position < bytes.count else { throw error("expected a value, found the end of the text") }
    switch bytes[position] {
    case UInt8(ascii: "{"): return try object(keep: keep)
    case UInt8(ascii: "["): return try array(keep: keep)
    case UInt8(ascii: "\""):
      let s = try string()
      return keep ? .string(s) : .null
    case UInt8(ascii: "t"):
      try word("true")
      return .bool(true)
    case UInt8(ascii: "f"):
      try word("false")
      return .bool(false)
    case UInt8(ascii: "n"):
      try word("null")
      return .null
    case UInt8(ascii: "N"):
      try word("NaN")
      return .number(.nan)
    case UInt8(ascii: "I"):
      try word("Infinity")
      return .number(.infinity)
    case UInt8(ascii: "-") where position + 1 < bytes.count && bytes[position + 1] == UInt8(ascii: "I"):
      position += 1
      try word("Infinity")
      return .number(-.infinity)
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
    default: throw error("expected a value, found \(found())")
    }
  }

  mutating func word(_ text: StaticString) throws(JSONSyntaxError) {
    let start = position
    let count = text.utf8CodeUnitCount
    var matches = position + count <= bytes.count
    if matches {
      for i in 0..<count where bytes[position + i] != text.utf8Start[i] {
        matches = false
        break
      }
    }
    guard matches else { throw error("expected a value, found \(found())", at: start) }
    position += count
  }

  mutating func enter() throws(JSONSyntaxError) {
    depth += 1
    if depth > Self.maximumDepth { throw error("nested deeper than \(Self.maximumDepth) levels") }
  }

  mutating func object(keep: Bool) throws(JSONSyntaxError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    let objectLine = line
    position += 1  // {
    var entries: [JSONObject.Entry] = []
    skipWhitespace()
    if position < bytes.count && bytes[position] == UInt8(ascii: "}") {
      position += 1
      return keep ? .object(JSONObject(entries, line: objectLine)) : .null
    }
    while true {
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else {
        throw error("expected a key in double quotes, found \(found())")
      }
      let key = try string()
      skipWhitespace()
      guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else {
        throw error("expected ':' after the key \"\(key)\", found \(found())")
      }
      position += 1
      skipWhitespace()
      let keepValue = keep && !ignoring.contains(key)
      let value = try self.value(keep: keepValue)
      if keepValue { entries.append(JSONObject.Entry(key, value)) }
      skipWhitespace()
      guard position < bytes.count else {
        throw error("the object opened on line \(objectLine) is not closed")
      }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
        continue
      }
      guard bytes[position] == UInt8(ascii: "}") else {
        throw error("expected ',' or '}' after the value of \"\(key)\", found \(found())")
      }
      position += 1
      return keep ? .object(JSONObject(entries, line: objectLine)) : .null
    }
  }

  mutating func array(keep: Bool) throws(JSONSyntaxError) -> JSONValue {
    try enter()
    defer { depth -= 1 }
    let arrayLine = line
    position += 1  // [
    var items: [JSONValue] = []
    skipWhitespace()
    if position < bytes.count && bytes[position] == UInt8(ascii: "]") {
      position += 1
      return keep ? .array(items) : .null
    }
    while true {
      skipWhitespace()
      let item = try value(keep: keep)
      if keep { items.append(item) }
      skipWhitespace()
      guard position < bytes.count else { throw error("the list opened on line \(arrayLine) is not closed") }
      if bytes[position] == UInt8(ascii: ",") {
        position += 1
        continue
      }
      guard bytes[position] == UInt8(ascii: "]") else {
        throw error("expected ',' or ']' after a list item, found \(found())")
      }
      position += 1
      return keep ? .array(items) : .null
    }
  }

  mutating func number() throws(JSONSyntaxError) -> JSONValue {
    let start = position
    func digit(_ i: Int) -> Bool {
      i < bytes.count && bytes[i] >= UInt8(ascii: "0") && bytes[i] <= UInt8(ascii: "9")
    }
    var integral = true
    if bytes[position] == UInt8(ascii: "-") { position += 1 }
    guard digit(position) else { throw error("expected a digit after '-', found \(found())") }
    if bytes[position] == UInt8(ascii: "0") {
      position += 1
      if digit(position) { throw error("a number cannot start with 0 followed by digits", at: start) }
    } else {
      while digit(position) { position += 1 }
    }
    if position < bytes.count && bytes[position] == UInt8(ascii: ".") {
      integral = false
      position += 1
      guard digit(position) else { throw error("expected a digit after '.', found \(found())") }
      while digit(position) { position += 1 }
    }
    if position < bytes.count && (bytes[position] | 0x20) == UInt8(ascii: "e") {
      integral = false
      position += 1
      if position < bytes.count
        && (bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-"))
      {
        position += 1
      }
      guard digit(position) else { throw error("expected a digit in the exponent, found \(found())") }
      while digit(position) { position += 1 }
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<position]), as: UTF8.self)
    if integral, let i = Int(text) { return .int(i) }
    guard let d = Double(text), d.isFinite else {
      throw error("the number \(text) is out of range (it does not fit a double)", at: start)
    }
    return .number(d)
  }

  mutating func string() throws(JSONSyntaxError) -> String {
    let start = position
    position += 1  // "
    var utf8: [UInt8] = []
    var escaped = false
    var runStart = position
    while true {
      guard position < bytes.count else { throw error("the string is not closed", at: start) }
      let b = bytes[position]
      if b == UInt8(ascii: "\"") {
        let run = UnsafeBufferPointer(rebasing: bytes[runStart..<position])
        position += 1
        // Most strings have no escape: validated straight from the input.
        if !escaped {
          guard let text = String(validating: run, as: UTF8.self) else {
            throw error("a string that is not valid UTF-8", at: start)
          }
          return text
        }
        utf8.append(contentsOf: run)
        break
      }
      if b < 0x20 {
        throw error("a control character (0x\(String(b, radix: 16))) inside a string: escape it")
      }
      guard b == UInt8(ascii: "\\") else {
        position += 1
        continue
      }
      escaped = true
      utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position]))
      position += 1
      guard position < bytes.count else { throw error("the string is not closed", at: start) }
      let escape = bytes[position]
      position += 1
      switch escape {
      case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
      case UInt8(ascii: "b"): utf8.append(0x08)
      case UInt8(ascii: "f"): utf8.append(0x0C)
      case UInt8(ascii: "n"): utf8.append(0x0A)
      case UInt8(ascii: "r"): utf8.append(0x0D)
      case UInt8(ascii: "t"): utf8.append(0x09)
      case UInt8(ascii: "u"):
        var scalar = try hex4()
        if (0xD800..<0xDC00).contains(scalar) {
          // A high surrogate must be followed by an escaped low one.
          guard position + 1 < bytes.count, bytes[position] == UInt8(ascii: "\\"),
            bytes[position + 1] == UInt8(ascii: "u")
          else { throw error("an unpaired surrogate \\u\(String(scalar, radix: 16)) in a string") }
          position += 2
          let low = try hex4()
          guard (0xDC00..<0xE000).contains(low) else {
            throw error("an unpaired surrogate \\u\(String(scalar, radix: 16)) in a string")
          }
          scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
        } else if (0xDC00..<0xE000).contains(scalar) {
          throw error("an unpaired surrogate \\u\(String(scalar, radix: 16)) in a string")
        }
        guard let unicode = Unicode.Scalar(scalar) else { throw error("an invalid \\u escape") }
        utf8.append(contentsOf: Array(String(Character(unicode)).utf8))
      default:
        throw error(
          "an invalid escape '\\\(Character(Unicode.Scalar(escape)))' in a string", at: position - 2)
      }
      runStart = position
    }
    guard let text = String(validating: utf8, as: UTF8.self) else {
      throw error("a string that is not valid UTF-8", at: start)
    }
    return text
  }

  mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
    guard position + 4 <= bytes.count else { throw error("a \\u escape needs 4 hex digits") }
    var value: UInt32 = 0
    for _ in 0..<4 {
      let b = bytes[position]
      let digit: UInt32
      switch b {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(b - UInt8(ascii: "0"))
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(b - UInt8(ascii: "a") + 10)
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(b - UInt8(ascii: "A") + 10)
      default: throw error("a \\u escape needs 4 hex digits, found \(found())")
      }
      value = value << 4 | digit
      position += 1
    }
    return value
  }
}
