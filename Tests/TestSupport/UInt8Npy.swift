import Foundation

/// Reads a little-endian C-order uint8 .npy (the fixtures' images). Test-only: the product reads
/// float32 arrays through SAMBatch's `Npy`.
public func readUInt8Npy(_ url: URL) throws -> (shape: [Int], values: [UInt8]) {
  let data = try Data(contentsOf: url)
  let bytes = [UInt8](data)
  struct Malformed: Error, CustomStringConvertible { let description: String }
  guard bytes.count > 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
    throw Malformed(description: "\(url.path): not a .npy file")
  }
  let major = bytes[6]
  let headerLength: Int
  let headerStart: Int
  if major == 1 {
    headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
    headerStart = 10
  } else {
    headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
    headerStart = 12
  }
  let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
  guard header.contains("'|u1'"), header.contains("'fortran_order': False") else {
    throw Malformed(description: "\(url.path): expected a C-order uint8 array, header \(header)")
  }
  guard let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
  else {
    throw Malformed(description: "\(url.path): no shape in header \(header)")
  }
  let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
    Int($0.trimmingCharacters(in: .whitespaces))
  }
  let values = Array(bytes[(headerStart + headerLength)...])
  guard values.count == shape.reduce(1, *) else {
    throw Malformed(description: "\(url.path): \(values.count) bytes for shape \(shape)")
  }
  return (shape, values)
}
