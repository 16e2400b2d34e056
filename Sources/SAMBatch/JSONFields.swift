import Foundation
import MobileSAM

/// Why a field cannot be used, as a complete phrase: "'score' must be a finite number, got NaN".
public struct JSONFieldError: Error, Equatable, Sendable {
  public var message: String

  public init(_ message: String) {
    self.message = message
  }
}

/// The one rule for the fields of manifests and prompts files (Schemas/manifests.md, "Values"):
/// a field that is absent or `null` is absent; a field of the wrong type, or a number that is not
/// finite where a finite one is needed, is an error naming the field and the value. Nothing is
/// converted: `"0.1"` is not a score, `"2"` and `2.5` are not category ids.
extension JSONObject {
  /// Throws for a key written twice, and for a key not in `allowed` (a typo such as "boxes" would
  /// otherwise drop the box without a word).
  public func checkKeys(allowed: [String]) throws(JSONFieldError) {
    try checkDuplicateKeys()
    if let unknown = keys.first(where: { !allowed.contains($0) }) {
      throw JSONFieldError("unknown key '\(unknown)' (allowed: \(allowed.joined(separator: ", ")))")
    }
  }

  /// Throws for a key written twice (for objects whose other keys are free, as COCO's).
  public func checkDuplicateKeys() throws(JSONFieldError) {
    if let key = duplicateKey { throw JSONFieldError("'\(key)' appears twice") }
  }

  /// The value unless absent or null.
  public func present(_ key: String) -> JSONValue? {
    guard let value = self[key], value != .null else { return nil }
    return value
  }

  public func string(_ key: String) throws(JSONFieldError) -> String? {
    guard let value = present(key) else { return nil }
    guard let s = value.string else { throw wrongType(key, "a string", value) }
    return s
  }

  /// An integer: `3` or `3.0`, not `3.5` nor `"3"`.
  public func integer(_ key: String) throws(JSONFieldError) -> Int? {
    guard let value = present(key) else { return nil }
    guard let i = value.integer else { throw wrongType(key, "an integer", value) }
    return i
  }

  public func finiteNumber(_ key: String) throws(JSONFieldError) -> Double? {
    guard let value = present(key) else { return nil }
    guard let d = value.number, d.isFinite else { throw wrongType(key, "a finite number", value) }
    return d
  }

  /// An id: a string, or an integer kept as its decimal text (`7` and `"7"` are the same id).
  public func identifier(_ key: String) throws(JSONFieldError) -> String? {
    guard let value = present(key) else { return nil }
    if let s = value.string { return s }
    guard let i = value.integer else { throw wrongType(key, "a string or an integer", value) }
    return String(i)
  }

  public func list(_ key: String) throws(JSONFieldError) -> [JSONValue]? {
    guard let value = present(key) else { return nil }
    guard let list = value.array else { throw wrongType(key, "a list", value) }
    return list
  }

  /// A box: four numbers (non-finite ones included: the geometry rule rejects them, naming the box).
  public func box(_ key: String) throws(JSONFieldError) -> [Double]? {
    guard let value = present(key) else { return nil }
    do throws(JSONFieldError) {
      return try PromptFields.box(value)
    } catch {
      throw JSONFieldError("'\(key)' \(error.message)")
    }
  }

  /// Points: `[[x, y, label], ...]`.
  public func points(_ key: String) throws(JSONFieldError) -> [PromptPoint]? {
    guard let value = present(key) else { return nil }
    guard let list = value.array else { throw wrongType(key, "a list of [x, y, label]", value) }
    var points: [PromptPoint] = []
    for (i, item) in list.enumerated() {
      do throws(JSONFieldError) {
        points.append(try PromptFields.point(item))
      } catch {
        throw JSONFieldError("'\(key)' item \(i + 1) \(error.message)")
      }
    }
    return points
  }

  private func wrongType(_ key: String, _ expected: String, _ value: JSONValue) -> JSONFieldError {
    JSONFieldError("'\(key)' must be \(expected), got \(value.described)")
  }
}

/// Boxes and points, read one way from manifests, prompts files and the command line. Errors are
/// phrases to follow the field's name: "must be 4 numbers (x0, y0, x1, y1), got 3".
public enum PromptFields {
  /// Four numbers; non-finite values pass (the geometry rule rejects them with the box in view).
  public static func box(_ value: JSONValue) throws(JSONFieldError) -> [Double] {
    try numbers(value, count: 4, form: "x0, y0, x1, y1")
  }

  /// `[x, y, label]`: two numbers and a label 1 (foreground) or 0 (background).
  public static func point(_ value: JSONValue) throws(JSONFieldError) -> PromptPoint {
    guard let items = value.array, items.count == 3 else {
      throw JSONFieldError("must be [x, y, label], got \(count(value))")
    }
    guard let x = items[0].number, let y = items[1].number else {
      let bad = items[0].number == nil ? items[0] : items[1]
      throw JSONFieldError("must be [x, y, label], got \(bad.described) for a coordinate")
    }
    guard let label = items[2].integer, label == 0 || label == 1 else {
      throw JSONFieldError(
        "has label \(items[2].described); labels are 1 (foreground) or 0 (background)")
    }
    return PromptPoint(x: Float(x), y: Float(y), label: label)
  }

  /// Comma-separated numbers as typed on the command line (`--box 10,20,30.5,40`), each read as a
  /// JSON number (so `NaN` and `Infinity` as well), as a list for `box` or `point`.
  public static func commaSeparated(_ text: String) throws(JSONFieldError) -> JSONValue {
    var items: [JSONValue] = []
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      let trimmed = part.trimmingCharacters(in: .whitespaces)
      guard let value = try? JSONReader().parse(trimmed), value.number != nil else {
        throw JSONFieldError("'\(trimmed)' is not a number")
      }
      items.append(value)
    }
    return .array(items)
  }

  /// `--box X0,Y0,X1,Y1` as typed on the command line; `InputError.usage` naming the option.
  public static func commandLineBox(_ text: String) throws -> PromptBox {
    do throws(JSONFieldError) {
      let v = try box(try commaSeparated(text))
      return PromptBox(x0: Float(v[0]), y0: Float(v[1]), x1: Float(v[2]), y1: Float(v[3]))
    } catch {
      throw InputError.usage("--box \(text): \(error.message) (write X0,Y0,X1,Y1)")
    }
  }

  /// `--point X,Y,LABEL` as typed on the command line; `InputError.usage` naming the option.
  public static func commandLinePoint(_ text: String) throws -> PromptPoint {
    do throws(JSONFieldError) {
      return try point(try commaSeparated(text))
    } catch {
      throw InputError.usage("--point \(text): \(error.message) (write X,Y,LABEL)")
    }
  }

  private static func numbers(_ value: JSONValue, count expected: Int, form: String) throws(JSONFieldError)
    -> [Double]
  {
    guard let items = value.array, items.count == expected else {
      throw JSONFieldError("must be \(expected) numbers (\(form)), got \(count(value))")
    }
    var result: [Double] = []
    for item in items {
      guard let d = item.number else {
        throw JSONFieldError("must be \(expected) numbers (\(form)), got \(item.described) among them")
      }
      result.append(d)
    }
    return result
  }

  /// "3 values", or the value itself when it is no list.
  private static func count(_ value: JSONValue) -> String {
    guard let items = value.array else { return value.described }
    return items.count == 1 ? "1 value" : "\(items.count) values"
  }
}
