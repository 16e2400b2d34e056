// Hot loops of the loader: storage bytes to float32, strided gathers (CRC-32 is in CSAMKernels). Small named
// functions over pointers (see TOOLCHAIN.md: closures in generic maps are not inlined).

/// Converts `count` little-endian elements of `type` at `source` (any alignment) to float32.
func convertToFloat(
  _ source: UnsafeRawPointer, type: ScalarType, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  switch type {
  case .float32: convertFloat32(source, count: count, into: destination)
  case .float16: convertFloat16(source, count: count, into: destination)
  case .bfloat16: convertBFloat16(source, count: count, into: destination)
  case .float64: convertFloat64(source, count: count, into: destination)
  case .int64: convertInt64(source, count: count, into: destination)
  case .int32: convertInt32(source, count: count, into: destination)
  case .int16: convertInt16(source, count: count, into: destination)
  case .int8: convertInt8(source, count: count, into: destination)
  case .uint8: convertUInt8(source, count: count, into: destination)
  case .bool: convertBool(source, count: count, into: destination)
  }
}

private func convertFloat32(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    let bits = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self))
    destination[index] = Float(bitPattern: bits)
  }
}

/// IEEE binary16 to binary32, exact for every bit pattern (NaN payloads kept). Written with
/// bits rather than `Float16`, which is unavailable on Intel macOS.
@inline(__always)
func floatFromHalfBits(_ half: UInt16) -> Float {
  let sign = UInt32(half & 0x8000) << 16
  let exponent = UInt32(half >> 10) & 0x1F
  let mantissa = UInt32(half & 0x3FF)
  if exponent == 0 {
    // Zero or subnormal: mantissa * 2^-24, exact in float32.
    let magnitude = Float(mantissa) * 0x1p-24
    return sign == 0 ? magnitude : -magnitude
  }
  if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
  return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
}

private func convertFloat16(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
    destination[index] = floatFromHalfBits(bits)
  }
}

/// bfloat16 is the upper half of a float32.
private func convertBFloat16(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self))
    destination[index] = Float(bitPattern: UInt32(bits) << 16)
  }
}

private func convertFloat64(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * index, as: UInt64.self))
    destination[index] = Float(Double(bitPattern: bits))
  }
}

private func convertInt64(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    destination[index] = Float(
      Int64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * index, as: Int64.self)))
  }
}

private func convertInt32(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    destination[index] = Float(
      Int32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * index, as: Int32.self)))
  }
}

private func convertInt16(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count {
    destination[index] = Float(
      Int16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * index, as: Int16.self)))
  }
}

private func convertInt8(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  let bytes = source.assumingMemoryBound(to: Int8.self)
  for index in 0..<count { destination[index] = Float(bytes[index]) }
}

private func convertUInt8(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  let bytes = source.assumingMemoryBound(to: UInt8.self)
  for index in 0..<count { destination[index] = Float(bytes[index]) }
}

private func convertBool(
  _ source: UnsafeRawPointer, count: Int, into destination: UnsafeMutablePointer<Float>
) {
  let bytes = source.assumingMemoryBound(to: UInt8.self)
  for index in 0..<count { destination[index] = bytes[index] != 0 ? 1 : 0 }
}

/// True when `strides` are the row-major strides of `sizes` (dimensions of size 1 may have any stride).
func isRowMajor(sizes: [Int], strides: [Int]) -> Bool {
  var expected = 1
  for dimension in stride(from: sizes.count - 1, through: 0, by: -1) {
    if sizes[dimension] != 1 && strides[dimension] != expected { return false }
    expected *= sizes[dimension]
  }
  return true
}

/// Copies a strided view (already checked to lie inside the storage) into row-major order.
/// `source` points at the view's first element.
func gatherStrided(
  _ source: UnsafePointer<Float>, sizes: [Int], strides: [Int], into destination: UnsafeMutablePointer<Float>
) {
  let rank = sizes.count
  if rank == 0 {
    destination[0] = source[0]
    return
  }
  let innerSize = sizes[rank - 1]
  let innerStride = strides[rank - 1]
  let outerCount = sizes.dropLast().reduce(1, *)
  var counters = [Int](repeating: 0, count: rank - 1)
  var sourceOffset = 0
  var output = destination
  for _ in 0..<outerCount {
    copyStridedRow(source + sourceOffset, count: innerSize, stride: innerStride, into: output)
    output += innerSize
    // Odometer over the outer dimensions.
    var dimension = rank - 2
    while dimension >= 0 {
      counters[dimension] += 1
      sourceOffset += strides[dimension]
      if counters[dimension] < sizes[dimension] { break }
      sourceOffset -= strides[dimension] * sizes[dimension]
      counters[dimension] = 0
      dimension -= 1
    }
  }
}

private func copyStridedRow(
  _ source: UnsafePointer<Float>, count: Int, stride: Int, into destination: UnsafeMutablePointer<Float>
) {
  for index in 0..<count { destination[index] = source[index * stride] }
}
