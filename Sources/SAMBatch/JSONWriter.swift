/// The JSON writer of the module: `predict`'s output, exports and every other JSON text written.
///
/// Deterministic, and as close to Python's `json.dumps(..., ensure_ascii=False)` as JSON allows,
/// so files compare byte for byte with what Python tools write:
/// - `.int` prints as an integer (`3`); `.number` as Python's `repr` of a float: the shortest text
///   that reads back to the same double, `3.0` for an integral value, exponent form below 1e-4 and
///   from 1e16 on (`1e-05`, `1e+16`);
/// - non-finite numbers print as `null` (JSON has no NaN; Python would write `NaN`);
/// - strings are UTF-8 with `"`, `\` and control characters escaped (`\n`, `\u0001`).
/// `.compact` writes no spaces; `.python` writes `json.dumps`'s default `", "` and `": "`.
public enum JSONWriter {
  public enum Style: Sendable {
    case compact
    case python
  }

  public static func write(_ value: JSONValue, style: Style = .compact, sortedKeys: Bool = false) -> String {
    var out = ""
    append(value, to: &out, style: style, sortedKeys: sortedKeys)
    return out
  }

  private static func append(_ value: JSONValue, to out: inout String, style: Style, sortedKeys: Bool) {
    let comma = style == .compact ? "," : ", "
    let colon = style == .compact ? ":" : ": "
    switch value {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .number(let d): out += d.isFinite ? number(d) : "null"
    case .string(let s): out += string(s)
    case .array(let items):
      out += "["
      for (i, item) in items.enumerated() {
        if i > 0 { out += comma }
        append(item, to: &out, style: style, sortedKeys: sortedKeys)
      }
      out += "]"
    case .object(let object):
      out += "{"
      let entries = sortedKeys ? object.entries.sorted { $0.key < $1.key } : object.entries
      for (i, entry) in entries.enumerated() {
        if i > 0 { out += comma }
        out += string(entry.key)
        out += colon
        append(entry.value, to: &out, style: style, sortedKeys: sortedKeys)
      }
      out += "}"
    }
  }

  /// A finite double as Python's `repr` writes it (`0.1`, `3.0`, `1e-05`, `1.5e+16`, `-0.0`).
  public static func number(_ value: Double) -> String {
    precondition(value.isFinite, "JSONWriter.number takes finite values")
    // Swift's description gives the shortest round-trip digits, as Python's repr does; only the
    // layout differs (Swift switches to exponent form at other magnitudes).
    let text = value.magnitude.description
    let parts = text.split(separator: "e", maxSplits: 1)
    let mantissa = parts[0]
    let exponent = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
    let point = mantissa.firstIndex(of: ".").map { mantissa.distance(from: mantissa.startIndex, to: $0) }
    var digits = Array(mantissa.filter { $0 != "." })
    var pointPosition = point ?? digits.count
    while digits.first == "0" {
      digits.removeFirst()
      pointPosition -= 1
    }
    while digits.last == "0" { digits.removeLast() }
    let sign = value.sign == .minus ? "-" : ""
    if digits.isEmpty { return sign + "0.0" }
    // The value is 0.d1d2d3... x 10^(pointPosition + exponent); in scientific form d1.d2d3... x 10^e.
    let e = pointPosition + exponent - 1
    if e >= -4 && e < 16 {
      if e < 0 { return sign + "0." + String(repeating: "0", count: -e - 1) + String(digits) }
      let integerDigits = digits.count > e + 1 ? digits[0...e] : digits[...]
      let integerPart = String(integerDigits) + String(repeating: "0", count: max(0, e + 1 - digits.count))
      let fraction = digits.count > e + 1 ? String(digits[(e + 1)...]) : "0"
      return sign + integerPart + "." + fraction
    }
    let head = String(digits[0]) + (digits.count > 1 ? "." + String(digits[1...]) : "")
    let magnitude = abs(e)
    return sign + head + (e < 0 ? "e-" : "e+") + (magnitude < 10 ? "0" : "") + String(magnitude)
  }

  /// A JSON string literal (COCO RLE counts include the backslash, which must be escaped).
  public static func string(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{08}": out += "\\b"
      case "\u{0C}": out += "\\f"
      case _ where scalar.value < 0x20:
        let hex = String(scalar.value, radix: 16)
        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
      default: out.unicodeScalars.append(scalar)
      }
    }
    return out + "\""
  }
}

/// `JSONWriter.string`, for callers written before the JSON layer.
func jsonString(_ text: String) -> String { JSONWriter.string(text) }
