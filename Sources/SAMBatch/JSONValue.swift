/// A JSON value as `JSONReader` reads it and `JSONWriter` writes it: the one JSON model of the
/// module (manifests, prompts files, every output).
///
/// Numbers keep the difference the text makes: a literal without fraction or exponent that fits
/// an `Int` is `.int`, any other number (and Python's `NaN`, `Infinity`, `-Infinity` tokens) is
/// `.number`. Readers accept either where a number is expected (`JSONValue.number`); the writer
/// prints `.int` as `3` and `.number` as Python's `json` prints a float (`3.0`).
public enum JSONValue: Sendable, Equatable {
  case null
  case bool(Bool)
  case int(Int)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object(JSONObject)

  /// The value of a number of either kind (non-finite included); nil for anything else.
  public var number: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .number(let d): return d
    default: return nil
    }
  }

  /// An integer: an integral number, `3` or `3.0`, of magnitude at most 2^53 when written with a
  /// fraction or exponent (beyond it a double no longer holds every integer); nil otherwise.
  public var integer: Int? {
    switch self {
    case .int(let i): return i
    case .number(let d):
      guard d.isFinite, d == d.rounded(), abs(d) <= 9_007_199_254_740_992 else { return nil }
      return Int(d)
    default: return nil
    }
  }

  public var string: String? {
    if case .string(let s) = self { return s }
    return nil
  }

  public var array: [JSONValue]? {
    if case .array(let a) = self { return a }
    return nil
  }

  public var object: JSONObject? {
    if case .object(let o) = self { return o }
    return nil
  }

  /// The value as messages show it: strings quoted, numbers as written out, NaN and Infinity by
  /// name, containers by kind ("a list", "an object") so a message stays one short line.
  public var described: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .int(let i): return String(i)
    case .number(let d):
      if d.isNaN { return "NaN" }
      if d.isInfinite { return d > 0 ? "Infinity" : "-Infinity" }
      return JSONWriter.number(d)
    case .string(let s): return JSONWriter.string(s)
    case .array: return "a list"
    case .object: return "an object"
    }
  }
}

/// A JSON object: its entries in the order written (duplicated keys included, so that readers can
/// refuse them), and the line of its opening brace for messages.
public struct JSONObject: Sendable, Equatable {
  public struct Entry: Sendable, Equatable {
    public var key: String
    public var value: JSONValue

    public init(_ key: String, _ value: JSONValue) {
      self.key = key
      self.value = value
    }
  }

  public var entries: [Entry]
  /// 1-based line of the opening brace in the text read; 0 for an object built in code.
  public var line: Int

  public init(_ entries: [Entry] = [], line: Int = 0) {
    self.entries = entries
    self.line = line
  }

  /// The value of the first entry with this key.
  public subscript(key: String) -> JSONValue? {
    entries.first(where: { $0.key == key })?.value
  }

  public var keys: [String] { entries.map(\.key) }

  /// The first key that appears more than once, if any.
  public var duplicateKey: String? {
    var seen = Set<String>()
    for entry in entries where !seen.insert(entry.key).inserted { return entry.key }
    return nil
  }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
  ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
  ExpressibleByDictionaryLiteral
{
  public init(nilLiteral: ()) { self = .null }
  public init(booleanLiteral value: Bool) { self = .bool(value) }
  public init(integerLiteral value: Int) { self = .int(value) }
  public init(floatLiteral value: Double) { self = .number(value) }
  public init(stringLiteral value: String) { self = .string(value) }
  public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
  public init(dictionaryLiteral elements: (String, JSONValue)...) {
    self = .object(JSONObject(elements.map { JSONObject.Entry($0.0, $0.1) }))
  }
}

extension JSONValue {
  /// An optional value, `null` when absent.
  public static func optional(_ value: Double?) -> JSONValue { value.map(JSONValue.number) ?? .null }
  public static func optional(_ value: Int?) -> JSONValue { value.map(JSONValue.int) ?? .null }
  public static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

  /// Converts plain Swift values built in code (`String`, `Bool`, `Int`, `Double`, `Float`, arrays,
  /// `[String: Any]` dictionaries, `nil`) for writers that assemble `[String: Any]` documents.
  /// Dictionary entries keep no order: write them with `sortedKeys`. Anything else becomes null.
  public init(native value: Any?) {
    switch value {
    case nil: self = .null
    case let v as JSONValue: self = v
    case let s as String: self = .string(s)
    case let b as Bool: self = .bool(b)
    case let i as Int: self = .int(i)
    case let d as Double: self = .number(d)
    case let f as Float: self = .number(Double(f))
    case let list as [Any?]: self = .array(list.map(JSONValue.init(native:)))
    case let dictionary as [String: Any?]:
      self = .object(JSONObject(dictionary.map { JSONObject.Entry($0.key, JSONValue(native: $0.value)) }))
    default: self = .null
    }
  }
}
