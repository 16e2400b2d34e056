import Foundation

/// A float32 array read from or written to a .npy file: C (row-major) order.
public struct NpyArray: Sendable, Equatable {
  public var shape: [Int]
  public var values: [Float]

  public init(shape: [Int], values: [Float]) {
    self.shape = shape
    self.values = values
  }
}

/// NumPy's .npy format, for float32 little-endian C-order arrays only (what the mask inputs and
/// logits are). Reads header versions 1.0, 2.0 and 3.0; writes exactly what `numpy.save` writes
/// for such an array (version 1.0, header padded with spaces to a multiple of 64 bytes, with
/// numpy's spare room for growing the first axis).
public enum Npy {
  private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  /// Reads a float32 array from `url`; errors name the file.
  public static func read(contentsOf url: URL) throws -> NpyArray {
    let data: Data
    do {
      data = try Data(contentsOf: url)
    } catch {
      throw InputError.npy(file: url.path, reason: "cannot be read (\(readableCause(error)))")
    }
    return try read(data: data, name: url.path)
  }

  /// Reads a float32 array from the bytes of a .npy file; `name` is used in error messages.
  public static func read(data: Data, name: String) throws -> NpyArray {
    let bytes = [UInt8](data)
    func fail(_ reason: String) -> InputError { .npy(file: name, reason: reason) }
    guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
      throw fail("not a .npy file (no \\x93NUMPY magic)")
    }
    let major = bytes[6]
    let headerStart: Int
    let headerLength: Int
    switch major {
    case 1:
      headerStart = 10
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
    case 2, 3:
      guard bytes.count >= 12 else { throw fail("truncated header") }
      headerStart = 12
      headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
    default:
      throw fail("unsupported .npy format version \(major).\(bytes[7])")
    }
    guard headerStart + headerLength <= bytes.count else { throw fail("truncated header") }
    guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8)
    else {
      throw fail("the header is not text")
    }
    let fields: [String: HeaderValue]
    do {
      var parser = HeaderParser(header)
      fields = try parser.parseDictionary()
    } catch let error as HeaderParser.Failure {
      throw fail(
        "malformed header (\(error.reason)): \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
    }
    guard case .string(let descr)? = fields["descr"] else { throw fail("the header has no 'descr' string") }
    guard descr == "<f4" else {
      throw fail("dtype '\(descr)' is not supported; expected little-endian float32 '<f4'")
    }
    guard case .bool(let fortranOrder)? = fields["fortran_order"] else {
      throw fail("the header has no 'fortran_order' flag")
    }
    guard !fortranOrder else { throw fail("Fortran-order arrays are not supported; save a C-order array") }
    guard case .tuple(let shape)? = fields["shape"] else { throw fail("the header has no 'shape' tuple") }
    var count = 1
    for dimension in shape {
      guard dimension >= 0 else { throw fail("negative dimension in shape \(shape)") }
      let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
      guard !overflow else { throw fail("shape \(shape) is too large") }
      count = product
    }
    let dataStart = headerStart + headerLength
    let available = bytes.count - dataStart
    guard count <= available / 4, available == count * 4 else {
      let needed = count.multipliedReportingOverflow(by: 4)
      throw fail(
        "shape \(shape) needs \(needed.overflow ? "more than \(Int.max)" : "\(needed.partialValue)") bytes of data"
          + " but the file holds \(available)" + (count > available / 4 ? " (truncated)" : ""))
    }
    var values = [Float](repeating: 0, count: count)
    values.withUnsafeMutableBytes { destination in
      bytes.withUnsafeBytes { source in
        destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[dataStart..<bytes.count]))
      }
    }
    #if _endian(big)
      for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
    #endif
    return NpyArray(shape: shape, values: values)
  }

  /// The bytes of a .npy file holding `values` with `shape` (float32, C order).
  public static func encode(_ array: NpyArray) -> Data {
    let shape = array.shape
    precondition(
      shape.reduce(1, *) == array.values.count, "Npy.encode: shape \(shape) vs \(array.values.count) values")
    let shapeText: String
    switch shape.count {
    case 0: shapeText = "()"
    case 1: shapeText = "(\(shape[0]),)"
    default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }
    var header = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
    // numpy leaves room to rewrite the first dimension with up to 21 digits in place.
    if let first = shape.first { header += String(repeating: " ", count: max(0, 21 - String(first).count)) }
    let unpadded = magic.count + 4 + header.utf8.count + 1
    header += String(repeating: " ", count: 64 - unpadded % 64) + "\n"
    var data = Data(magic)
    let length = UInt16(header.utf8.count)
    data.append(contentsOf: [1, 0, UInt8(length & 0xff), UInt8(length >> 8)])
    data.append(contentsOf: Array(header.utf8))
    array.values.withUnsafeBytes { raw in
      #if _endian(big)
        for v in array.values {
          withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
      #else
        data.append(contentsOf: raw)
      #endif
    }
    return data
  }

  /// Writes `array` as a .npy file at `url`.
  public static func write(_ array: NpyArray, to url: URL) throws {
    do {
      try encode(array).write(to: url, options: .atomic)
    } catch {
      throw InputError.npy(file: url.path, reason: "cannot be written (\(readableCause(error)))")
    }
  }
}

/// "No such file or directory" rather than Foundation's long wrapper around it.
func readableCause(_ error: Error) -> String {
  let ns = error as NSError
  if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
    let code = POSIXErrorCode(rawValue: Int32(underlying.code))
  {
    return String(cString: strerror(code.rawValue))
  }
  if ns.domain == NSCocoaErrorDomain {
    switch ns.code {
    case NSFileReadNoSuchFileError: return "no such file"
    case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
    default: break
    }
  }
  return error.localizedDescription
}

// MARK: - The header: a Python dict literal

private enum HeaderValue {
  case string(String)
  case bool(Bool)
  case none
  case int(Int)
  case tuple([Int])
}

/// Parses the small subset of Python literals numpy writes in a header: a dict with string
/// keys whose values are strings, True/False/None, integers or tuples of integers.
private struct HeaderParser {
  struct Failure: Error { let reason: String }
  private let characters: [Character]
  private var index = 0

  init(_ text: String) { characters = Array(text) }

  mutating func parseDictionary() throws -> [String: HeaderValue] {
    try expect("{")
    var result: [String: HeaderValue] = [:]
    while true {
      skipSpace()
      if peek() == "}" {
        index += 1
        break
      }
      let key = try parseString()
      try expect(":")
      result[key] = try parseValue()
      skipSpace()
      if peek() == "," {
        index += 1
      } else {
        try expect("}")
        break
      }
    }
    skipSpace()
    guard index == characters.count else { throw Failure(reason: "text after the closing brace") }
    return result
  }

  private mutating func parseValue() throws -> HeaderValue {
    skipSpace()
    switch peek() {
    case "'", "\"": return .string(try parseString())
    case "(":
      index += 1
      var items: [Int] = []
      while true {
        skipSpace()
        if peek() == ")" {
          index += 1
          return .tuple(items)
        }
        items.append(try parseInt())
        skipSpace()
        if peek() == "," {
          index += 1
        } else {
          try expect(")")
          return .tuple(items)
        }
      }
    case let c? where c.isLetter:
      var word = ""
      while let c = peek(), c.isLetter {
        word.append(c)
        index += 1
      }
      switch word {
      case "True": return .bool(true)
      case "False": return .bool(false)
      case "None": return .none
      default: throw Failure(reason: "unexpected word \(word)")
      }
    default: return .int(try parseInt())
    }
  }

  private mutating func parseInt() throws -> Int {
    skipSpace()
    var digits = ""
    while let c = peek(), c.isASCII, c.isNumber || (digits.isEmpty && c == "-") {
      digits.append(c)
      index += 1
    }
    if peek() == "L" { index += 1 }  // Python 2 long literal
    guard let value = Int(digits) else { throw Failure(reason: "expected an integer at offset \(index)") }
    return value
  }

  private mutating func parseString() throws -> String {
    skipSpace()
    guard let quote = peek(), quote == "'" || quote == "\"" else {
      throw Failure(reason: "expected a quoted string at offset \(index)")
    }
    index += 1
    var value = ""
    while let c = peek(), c != quote {
      value.append(c)
      index += 1
    }
    try expect(quote)
    return value
  }

  private mutating func expect(_ c: Character) throws {
    skipSpace()
    guard peek() == c else { throw Failure(reason: "expected '\(c)' at offset \(index)") }
    index += 1
  }

  private mutating func skipSpace() {
    while let c = peek(), c.isWhitespace { index += 1 }
  }

  private func peek() -> Character? { index < characters.count ? characters[index] : nil }
}
