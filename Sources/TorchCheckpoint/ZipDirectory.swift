import Foundation

/// One file entry of a zip's central directory.
struct ZipEntry: Sendable {
  var name: String
  /// 0 = stored (all torch.save writes), 8 = deflated, anything else is refused when read.
  var method: UInt16
  var crc32: UInt32
  var compressedSize: UInt64
  var uncompressedSize: UInt64
  var localHeaderOffset: UInt64

  var isStored: Bool { method == 0 }
}

/// The central directory of a zip file, read by us rather than by ZIPFoundation because loading
/// needs each stored entry's data offset, to read storages straight into their final buffers
/// (ZIPFoundation hands out copies chunk by chunk and does not expose offsets). Zip64 is
/// understood (sizes and offsets past 4 GB, as large checkpoints have); split archives are not.
struct ZipDirectory: Sendable {
  /// File entries by full name (directories are left out).
  var entries: [String: ZipEntry]

  private static let endRecordSize = 22
  private static let zip64LocatorSize = 20
  private static let zip64EndRecordSize = 56
  private static let centralHeaderSize = 46
  private static let localHeaderSize = 30
  private static let maximumCommentSize = 0xFFFF

  /// Reads the end-of-central-directory record (zip64 where present) and every central entry.
  /// Throws `notAZipArchive` naming what is missing or inconsistent.
  static func read(_ file: CheckpointFile) throws -> ZipDirectory {
    func broken(_ detail: String) -> TorchCheckpointError { .notAZipArchive(file: file.path, detail: detail) }
    // The end record sits in the last 22 bytes plus at most a 64 KB comment.
    let tailCount = Int(min(file.size, UInt64(endRecordSize + maximumCommentSize)))
    guard let tail = try file.bytes(at: file.size - UInt64(tailCount), count: tailCount),
      let endIndex = lastEndRecord(in: tail)
    else { throw broken("no zip end-of-central-directory record") }
    let endOffset = file.size - UInt64(tailCount) + UInt64(endIndex)
    let end = ByteReader(tail, at: endIndex)
    var entryCount = UInt64(end.u16(10))
    var directorySize = UInt64(end.u32(12))
    var directoryOffset = UInt64(end.u32(16))
    var directoryEnd = endOffset

    // Zip64: a locator just before the end record points at a larger end record.
    if endOffset >= UInt64(zip64LocatorSize),
      let locatorBytes = try file.bytes(at: endOffset - UInt64(zip64LocatorSize), count: zip64LocatorSize),
      ByteReader(locatorBytes, at: 0).u32(0) == 0x0706_4b50
    {
      let recordOffset = ByteReader(locatorBytes, at: 0).u64(8)
      guard let recordBytes = try file.bytes(at: recordOffset, count: zip64EndRecordSize),
        ByteReader(recordBytes, at: 0).u32(0) == 0x0606_4b50
      else { throw broken("the zip64 end record is missing (truncated?)") }
      let record = ByteReader(recordBytes, at: 0)
      entryCount = record.u64(32)
      directorySize = record.u64(40)
      directoryOffset = record.u64(48)
      directoryEnd = recordOffset
    }
    guard directoryOffset <= directoryEnd, directorySize <= directoryEnd - directoryOffset else {
      throw broken(
        "the central directory (\(directorySize) bytes at offset \(directoryOffset)) is not inside the file")
    }
    // Each entry takes at least 46 bytes: a count beyond that is a lie, refused before reserving.
    guard entryCount <= directorySize / UInt64(centralHeaderSize) else {
      throw broken("\(entryCount) entries cannot fit in a central directory of \(directorySize) bytes")
    }
    guard let directory = try file.bytes(at: directoryOffset, count: Int(directorySize)) else {
      throw broken("the central directory runs past the end of the file")
    }
    var entries: [String: ZipEntry] = [:]
    entries.reserveCapacity(Int(entryCount))
    var position = 0
    for index in 0..<Int(entryCount) {
      guard let entry = try centralEntry(in: directory, at: &position) else {
        throw broken("central directory entry \(index) of \(entryCount) is malformed")
      }
      if !entry.name.hasSuffix("/") { entries[entry.name] = entry }
    }
    return ZipDirectory(entries: entries)
  }

  /// The offset of the last end record signature whose comment ends at the end of the file.
  private static func lastEndRecord(in tail: [UInt8]) -> Int? {
    var index = tail.count - endRecordSize
    while index >= 0 {
      let reader = ByteReader(tail, at: index)
      if reader.u32(0) == 0x0605_4b50 && index + endRecordSize + Int(reader.u16(20)) == tail.count {
        return index
      }
      index -= 1
    }
    return nil
  }

  /// Parses the central entry at `position` and moves past it; nil when malformed.
  private static func centralEntry(in directory: [UInt8], at position: inout Int) throws -> ZipEntry? {
    guard directory.count - position >= centralHeaderSize else { return nil }
    let header = ByteReader(directory, at: position)
    guard header.u32(0) == 0x0201_4b50 else { return nil }
    let nameLength = Int(header.u16(28))
    let extraLength = Int(header.u16(30))
    let commentLength = Int(header.u16(32))
    let next = position + centralHeaderSize + nameLength + extraLength + commentLength
    guard next <= directory.count else { return nil }
    let nameStart = position + centralHeaderSize
    var entry = ZipEntry(
      name: String(decoding: directory[nameStart..<nameStart + nameLength], as: UTF8.self),
      method: header.u16(10), crc32: header.u32(16), compressedSize: UInt64(header.u32(20)),
      uncompressedSize: UInt64(header.u32(24)), localHeaderOffset: UInt64(header.u32(42)))
    // Zip64 extra field (id 1): the 8-byte values of the fields saturated at 0xFFFFFFFF, in this order.
    var extra = nameStart + nameLength
    let extraEnd = extra + extraLength
    while extra + 4 <= extraEnd {
      let field = ByteReader(directory, at: extra)
      let id = field.u16(0)
      let size = Int(field.u16(2))
      guard extra + 4 + size <= extraEnd else { return nil }
      if id == 1 {
        var offset = 4
        func next64() -> UInt64? {
          guard offset + 8 <= 4 + size else { return nil }
          defer { offset += 8 }
          return field.u64(offset)
        }
        if entry.uncompressedSize == 0xFFFF_FFFF {
          guard let value = next64() else { return nil }
          entry.uncompressedSize = value
        }
        if entry.compressedSize == 0xFFFF_FFFF {
          guard let value = next64() else { return nil }
          entry.compressedSize = value
        }
        if entry.localHeaderOffset == 0xFFFF_FFFF {
          guard let value = next64() else { return nil }
          entry.localHeaderOffset = value
        }
      }
      extra += 4 + size
    }
    position = next
    return entry
  }

  /// Where `entry`'s data starts, from its local header (whose name and extra field lengths may
  /// differ from the central ones: torch pads the local extra field to align storages). Throws
  /// `unreadableEntry` when the header is missing or the data would run past the end of the file.
  static func dataOffset(of entry: ZipEntry, in file: CheckpointFile) throws -> UInt64 {
    func broken(_ reason: String) -> TorchCheckpointError {
      .unreadableEntry(file: file.path, entry: entry.name, reason: reason)
    }
    guard let bytes = try file.bytes(at: entry.localHeaderOffset, count: localHeaderSize),
      ByteReader(bytes, at: 0).u32(0) == 0x0403_4b50
    else { throw broken("no local header at offset \(entry.localHeaderOffset) (truncated or corrupt file?)") }
    let header = ByteReader(bytes, at: 0)
    let start =
      entry.localHeaderOffset + UInt64(localHeaderSize) + UInt64(header.u16(26)) + UInt64(header.u16(28))
    guard start <= file.size, entry.compressedSize <= file.size - start else {
      throw broken(
        "its \(entry.compressedSize) bytes at offset \(start) do not fit in the file of \(file.size) bytes (truncated?)"
      )
    }
    return start
  }
}

/// Little-endian integers at fixed offsets from `base` (bounds are the caller's business).
private struct ByteReader {
  let bytes: [UInt8]
  let base: Int

  init(_ bytes: [UInt8], at base: Int) {
    self.bytes = bytes
    self.base = base
  }

  func u16(_ offset: Int) -> UInt16 {
    UInt16(bytes[base + offset]) | UInt16(bytes[base + offset + 1]) << 8
  }

  func u32(_ offset: Int) -> UInt32 { UInt32(u16(offset)) | UInt32(u16(offset + 2)) << 16 }

  func u64(_ offset: Int) -> UInt64 { UInt64(u32(offset)) | UInt64(u32(offset + 4)) << 32 }
}
