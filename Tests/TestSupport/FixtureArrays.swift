import Foundation

/// Reads a little-endian C-order float32 .npy (the reference's embeddings and logits). Test-only,
/// so that the model's tests need none of the batch layer.
public func readFloat32Npy(_ url: URL) throws -> (shape: [Int], values: [Float]) {
  let bytes = [UInt8](try Data(contentsOf: url))
  struct Malformed: Error, CustomStringConvertible { let description: String }
  guard bytes.count > 10, bytes[0] == 0x93, String(decoding: bytes[1..<6], as: UTF8.self) == "NUMPY" else {
    throw Malformed(description: "\(url.path): not a .npy file")
  }
  let headerStart = bytes[6] == 1 ? 10 : 12
  let headerLength =
    bytes[6] == 1
    ? Int(bytes[8]) | Int(bytes[9]) << 8
    : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
  let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
  guard header.contains("'<f4'"), header.contains("'fortran_order': False"),
    let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")")
  else {
    throw Malformed(description: "\(url.path): expected a C-order float32 array, header \(header)")
  }
  let shape = header[open.upperBound..<close].split(separator: ",").compactMap {
    Int($0.trimmingCharacters(in: .whitespaces))
  }
  let body = bytes[(headerStart + headerLength)...]
  guard body.count == shape.reduce(1, *) * 4 else {
    throw Malformed(description: "\(url.path): \(body.count) bytes for float32 shape \(shape)")
  }
  let values = body.withUnsafeBytes { raw in
    (0..<(body.count / 4)).map {
      Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self)))
    }
  }
  return (shape, values)
}

/// Decodes a COCO compressed RLE counts string (pycocotools' `rleFrString`; runs alternate 0s
/// and 1s, column-major) into row-major 0/1 pixels. Test-only, for the reference's masks.
public func decodeCOCORLE(_ counts: String, width: Int, height: Int) throws -> [UInt8] {
  struct Malformed: Error, CustomStringConvertible { let description: String }
  let chars = Array(counts.utf8)
  var runs: [Int] = []
  var p = 0
  while p < chars.count {
    var x = 0
    var k = 0
    var more = true
    while more {
      guard p < chars.count else { throw Malformed(description: "RLE cut off: \(counts.prefix(40))") }
      let c = Int(chars[p]) - 48
      x |= (c & 0x1f) << (5 * k)
      more = c & 0x20 != 0
      p += 1
      k += 1
      if !more && c & 0x10 != 0 { x |= -1 << (5 * k) }
    }
    if runs.count > 2 { x += runs[runs.count - 2] }
    runs.append(x)
  }
  guard runs.reduce(0, +) == width * height, runs.allSatisfy({ $0 >= 0 }) else {
    throw Malformed(description: "RLE runs do not cover \(width)x\(height)")
  }
  var pixels = [UInt8](repeating: 0, count: width * height)
  var index = 0
  for (i, run) in runs.enumerated() {
    if i % 2 == 1 {
      for j in index..<(index + run) { pixels[(j % height) * width + j / height] = 1 }
    }
    index += run
  }
  return pixels
}
