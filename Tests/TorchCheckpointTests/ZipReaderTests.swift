import CSAMKernels
import Foundation
import TestSupport
import XCTest

@testable import TorchCheckpoint

/// Our own zip reader and CRC-32: the fixtures repacked by an independent writer (below, zip64
/// included) load to the same tensors; damaged and lying files are refused with messages naming
/// the file and the cause.
final class ZipReaderTests: XCTestCase {
  private let fixtures = [
    "reference/mobile_sam_random.pt", "vit/sam_vit_small_random.pth", "checkpoints/dtypes.pt",
  ]

  func testCRC32MatchesKnownVectors() {
    let vectors: [(String, UInt32)] = [
      ("", 0), ("a", 0xE8B7_BE43), ("abc", 0x3524_41C2), ("123456789", 0xCBF4_3926),
      ("The quick brown fox jumps over the lazy dog", 0x414F_A339),
    ]
    for (text, expected) in vectors {
      let bytes = Array(text.utf8)
      XCTAssertEqual(sam_crc32(0, bytes, bytes.count), expected, text)
      XCTAssertEqual(sam_crc32_tables(0, bytes, bytes.count), expected, text)
    }
  }

  /// Every length up to 300 (the folding path starts at 64 bytes) at four alignments, in one call
  /// and chained in two, and 1 MB, against the bitwise definition.
  func testCRC32MatchesTheBitwiseDefinition() {
    var generator = SplitMix64(seed: 7)
    let data = (0..<(1 << 20) + 8).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
    data.withUnsafeBytes { raw in
      for length in 0...300 {
        for offset in 0..<4 {
          let slice = UnsafeRawBufferPointer(rebasing: raw[offset..<offset + length])
          let expected = bitwiseCRC32(slice)
          XCTAssertEqual(
            sam_crc32(0, slice.baseAddress, length), expected, "length \(length) offset \(offset)")
          XCTAssertEqual(sam_crc32_tables(0, slice.baseAddress, length), expected, "length \(length)")
          let half = length / 3
          let chained = sam_crc32(
            sam_crc32(0, slice.baseAddress, half), slice.baseAddress.map { $0 + half }, length - half)
          XCTAssertEqual(chained, expected, "length \(length) offset \(offset) chained at \(half)")
        }
      }
      let whole = UnsafeRawBufferPointer(rebasing: raw[3..<raw.count - 5])
      XCTAssertEqual(sam_crc32(0, whole.baseAddress, whole.count), bitwiseCRC32(whole))
    }
  }

  func testZipDirectoryListsEveryEntryWithItsData() throws {
    let file = try CheckpointFile(path: Fixtures.url("checkpoints/dtypes.pt").path)
    let entries = try ZipDirectory.read(file).entries
    let pickle = try XCTUnwrap(entries.first { $0.key.hasSuffix("/data.pkl") }?.value)
    XCTAssertTrue(pickle.isStored)
    let start = try ZipDirectory.dataOffset(of: pickle, in: file)
    let bytes = try XCTUnwrap(try file.bytes(at: start, count: Int(pickle.uncompressedSize)))
    XCTAssertEqual(bytes.first, 0x80, "a pickle starts with PROTO")
    XCTAssertEqual(bytes.withUnsafeBytes { bitwiseCRC32($0) }, pickle.crc32)
  }

  func testFixturesRepackedAsZip64LoadTheSameTensors() throws {
    for fixture in fixtures {
      let original = try Checkpoint.load(contentsOf: Fixtures.url(fixture))
      let repacked = try writeTemporary(TestZip(entries: try entries(of: fixture), zip64: true).bytes())
      let loaded = try Checkpoint.load(contentsOf: repacked)
      XCTAssertEqual(Set(loaded.tensors.keys), Set(original.tensors.keys), fixture)
      for (key, tensor) in original.tensors {
        // Bit patterns: NaN is a stored value too.
        XCTAssertEqual(loaded.tensors[key]?.shape, tensor.shape, "\(fixture): \(key)")
        XCTAssertEqual(
          loaded.tensors[key]?.data.map(\.bitPattern), tensor.data.map(\.bitPattern), "\(fixture): \(key)")
        XCTAssertEqual(loaded.scalarTypes[key], original.scalarTypes[key], "\(fixture): \(key)")
      }
    }
  }

  /// One flipped bit in the middle of a float32 storage (the direct path into the tensor's buffer).
  func testFlippedByteInAStorageIsACRCErrorNamingTheEntry() throws {
    let fixture = "reference/mobile_sam_random.pt"
    var entries = try entries(of: fixture)
    let largest = try XCTUnwrap(entries.indices.max { entries[$0].data.count < entries[$1].data.count })
    let data = entries[largest].data
    let crc = sam_crc32(0, data, data.count)
    entries[largest].data[data.count / 2] ^= 0x10
    var zip = TestZip(entries: entries)
    zip.crc32[entries[largest].name] = crc  // the checksum of the data before the damage
    let url = try writeTemporary(zip.bytes())
    assertRefused(url, mentioning: [entries[largest].name, "CRC-32 mismatch"])
  }

  func testTruncatedFilesAreRefusedClearly() throws {
    let bytes = try Array(Data(contentsOf: Fixtures.url("checkpoints/dtypes.pt")))
    for length in [0, 1, 2, 21, 100, bytes.count / 2, bytes.count - 23, bytes.count - 1] {
      let url = try writeTemporary(Array(bytes[0..<length]))
      assertRefused(url, mentioning: ["not a PyTorch zip checkpoint", "truncated"])
    }
  }

  /// The directory is intact but the largest storage, last in the file, was cut off.
  func testStorageRunningPastTheEndIsRefused() throws {
    var entries = try entries(of: "reference/mobile_sam_random.pt")
    let largest = try XCTUnwrap(entries.indices.max { entries[$0].data.count < entries[$1].data.count })
    entries.append(entries.remove(at: largest))
    var zip = TestZip(entries: entries)
    zip.cutLastEntry = true
    let url = try writeTemporary(zip.bytes())
    assertRefused(url, mentioning: [entries[entries.count - 1].name, "do not fit in the file", "truncated"])
  }

  func testRandomBytesAreNotAZip() throws {
    var generator = SplitMix64(seed: 3)
    let url = try writeTemporary((0..<5000).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
    assertRefused(
      url, mentioning: ["not a PyTorch zip checkpoint", "no zip end-of-central-directory record"])
  }

  /// A storage entry claiming a petabyte is refused from its sizes, before anything is allocated.
  func testEntryClaimingAnAbsurdSizeIsRefused() throws {
    for zip64 in [false, true] {
      let entries = try entries(of: "checkpoints/dtypes.pt")
      var zip = TestZip(entries: entries, zip64: zip64)
      let storage = try XCTUnwrap(entries.first { $0.name.contains("/data/") }).name
      zip.declaredSize[storage] = zip64 ? 1 << 50 : 0xFFFF_FFF0
      let url = try writeTemporary(zip.bytes())
      assertRefused(url, mentioning: [storage, "do not fit in the file"])
    }
  }

  func testEntryCountBeyondTheDirectoryIsRefused() throws {
    var zip = TestZip(entries: try entries(of: "checkpoints/dtypes.pt"), zip64: true)
    zip.declaredEntryCount = 1 << 40
    let url = try writeTemporary(zip.bytes())
    assertRefused(url, mentioning: ["entries cannot fit in a central directory"])
  }

  func testDirectoryOutsideTheFileIsRefused() throws {
    var zip = TestZip(entries: try entries(of: "checkpoints/dtypes.pt"))
    zip.directoryOffsetShift = 1 << 20
    let url = try writeTemporary(zip.bytes())
    assertRefused(url, mentioning: ["central directory", "is not inside the file"])
  }

  // MARK: - Helpers

  /// The entries of a fixture in file order, as read by our reader.
  private func entries(of fixture: String) throws -> [(name: String, data: [UInt8])] {
    let file = try CheckpointFile(path: Fixtures.url(fixture).path)
    let entries = try ZipDirectory.read(file).entries.values.sorted {
      $0.localHeaderOffset < $1.localHeaderOffset
    }
    return try entries.map { entry in
      let start = try ZipDirectory.dataOffset(of: entry, in: file)
      return (entry.name, try XCTUnwrap(try file.bytes(at: start, count: Int(entry.compressedSize))))
    }
  }

  private func writeTemporary(_ bytes: [UInt8]) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent(
      "zip-reader-\(UUID().uuidString).pt")
    try Data(bytes).write(to: url)
    addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
  }

  private func assertRefused(
    _ url: URL, mentioning fragments: [String], file: StaticString = #filePath, line: UInt = #line
  ) {
    do {
      let checkpoint = try Checkpoint.load(contentsOf: url)
      XCTFail("loaded \(checkpoint.tensors.count) tensors; expected an error", file: file, line: line)
    } catch {
      let message = error.localizedDescription
      XCTAssertTrue(
        message.contains(url.path), "message does not name the file: \(message)", file: file, line: line)
      for fragment in fragments {
        XCTAssertTrue(
          message.contains(fragment), "message lacks \"\(fragment)\": \(message)", file: file, line: line)
      }
    }
  }
}

/// CRC-32 from its definition, one bit at a time: the reference for the fast versions.
func bitwiseCRC32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
  }
  return ~crc
}

struct SplitMix64 {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// A zip writer of stored entries, independent of the reader under test, with ways to lie.
struct TestZip {
  var entries: [(name: String, data: [UInt8])]
  /// Sizes in the zip64 extra fields and records, as large files need them.
  var zip64 = false
  /// Declared sizes (both compressed and uncompressed) instead of the true ones.
  var declaredSize: [String: UInt64] = [:]
  /// Checksums instead of the true ones.
  var crc32: [String: UInt32] = [:]
  var declaredEntryCount: UInt64?
  var directoryOffsetShift: UInt64 = 0
  /// Writes only the first half of the last entry's data (the directory still declares all of it).
  var cutLastEntry = false

  func bytes() -> [UInt8] {
    var out: [UInt8] = []
    var central: [UInt8] = []
    for (index, (name, data)) in entries.enumerated() {
      let offset = UInt64(out.count)
      let size = declaredSize[name] ?? UInt64(data.count)
      // sam_crc32 is checked against the bitwise definition above; it keeps large fixtures quick.
      let crc = crc32[name] ?? sam_crc32(0, data, data.count)
      let saturated = zip64 ? 0xFFFF_FFFF : UInt32(truncatingIfNeeded: size)
      let nameBytes = Array(name.utf8)
      // Local header: torch pads its extra field so that data is 64-byte aligned; so do we.
      var local: [UInt8] = []
      local.append32(0x0403_4b50)
      local.append16(zip64 ? 45 : 20)
      local.append16(0)
      local.append16(0)  // stored
      local.append16(0)
      local.append16(0)
      local.append32(crc)
      local.append32(saturated)
      local.append32(saturated)
      local.append16(UInt16(nameBytes.count))
      let unpadded = out.count + 30 + nameBytes.count + 4
      let padding = (64 - unpadded % 64) % 64
      local.append16(UInt16(4 + padding))
      local += nameBytes
      local.append16(0x4746)  // an unknown extra field the reader must skip
      local.append16(UInt16(padding))
      local += [UInt8](repeating: 0x5A, count: padding)
      out += local
      out += cutLastEntry && index == entries.count - 1 ? Array(data.prefix(data.count / 2)) : data

      central.append32(0x0201_4b50)
      central.append16(zip64 ? 45 : 20)
      central.append16(zip64 ? 45 : 20)
      central.append16(0)
      central.append16(0)
      central.append16(0)
      central.append16(0)
      central.append32(crc)
      central.append32(saturated)
      central.append32(saturated)
      central.append16(UInt16(nameBytes.count))
      central.append16(zip64 ? 28 : 0)
      central.append16(0)
      central.append16(0)
      central.append16(0)
      central.append32(0)
      central.append32(zip64 ? 0xFFFF_FFFF : UInt32(offset))
      central += nameBytes
      if zip64 {
        central.append16(1)
        central.append16(24)
        central.append64(size)
        central.append64(size)
        central.append64(offset)
      }
    }
    let directoryOffset = UInt64(out.count) + directoryOffsetShift
    let count = declaredEntryCount ?? UInt64(entries.count)
    out += central
    if zip64 {
      let recordOffset = UInt64(out.count)
      out.append32(0x0606_4b50)
      out.append64(44)
      out.append16(45)
      out.append16(45)
      out.append32(0)
      out.append32(0)
      out.append64(count)
      out.append64(count)
      out.append64(UInt64(central.count))
      out.append64(directoryOffset)
      out.append32(0x0706_4b50)
      out.append32(0)
      out.append64(recordOffset)
      out.append32(1)
    }
    out.append32(0x0605_4b50)
    out.append16(0)
    out.append16(0)
    out.append16(zip64 ? 0xFFFF : UInt16(count))
    out.append16(zip64 ? 0xFFFF : UInt16(count))
    out.append32(zip64 ? 0xFFFF_FFFF : UInt32(central.count))
    out.append32(zip64 ? 0xFFFF_FFFF : UInt32(directoryOffset))
    out.append16(0)
    return out
  }
}

extension [UInt8] {
  fileprivate mutating func append16(_ value: UInt16) {
    append(UInt8(value & 0xFF))
    append(UInt8(value >> 8))
  }

  fileprivate mutating func append32(_ value: UInt32) {
    append16(UInt16(value & 0xFFFF))
    append16(UInt16(value >> 16))
  }

  fileprivate mutating func append64(_ value: UInt64) {
    append32(UInt32(value & 0xFFFF_FFFF))
    append32(UInt32(value >> 32))
  }
}
