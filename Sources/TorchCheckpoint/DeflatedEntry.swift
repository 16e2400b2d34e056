import CSAMKernels
import Foundation
import ZIPFoundation

/// Deflated entries, read through ZIPFoundation. torch.save stores every entry uncompressed (its
/// writer uses compression level 0), but a checkpoint repacked by another zip tool may be deflated;
/// such files load too, just without the direct path.
enum DeflatedEntry {
  /// The whole entry `name` of the zip at `url`: its declared size must be within deflate's reach of
  /// its compressed size, and what arrives must match that size and the CRC-32.
  static func read(_ name: String, from url: URL, fileSize: UInt64) throws -> [UInt8] {
    let file = url.path
    func unreadable(_ reason: String) -> TorchCheckpointError {
      .unreadableEntry(file: file, entry: name, reason: reason)
    }
    let archive: Archive
    do { archive = try Archive(url: url, accessMode: .read) } catch {
      throw unreadable("\(error)")
    }
    guard let entry = archive[name] else { throw unreadable("ZIPFoundation does not find it") }
    let declared = entry.uncompressedSize
    let reach = entry.compressedSize.multipliedReportingOverflow(by: CheckpointLimits.maximumDeflateRatio)
    guard entry.compressedSize <= fileSize, reach.overflow || declared <= reach.partialValue else {
      throw unreadable("its declared size (\(declared) bytes) does not fit in the file")
    }
    var bytes: [UInt8] = []
    // The declared size may be a lie: reserve only what the compressed bytes plausibly give and
    // let the array grow with the data that really arrives.
    bytes.reserveCapacity(Int(min(declared, entry.compressedSize * 8)))
    var crc: UInt32 = 0
    do {
      _ = try archive.extract(entry, bufferSize: CheckpointLimits.readChunkBytes, skipCRC32: true) { chunk in
        guard UInt64(bytes.count + chunk.count) <= declared else { throw EntryOverrun() }
        chunk.withUnsafeBytes { raw in
          crc = sam_crc32(crc, raw.baseAddress, raw.count)
          bytes.append(contentsOf: raw.bindMemory(to: UInt8.self))
        }
      }
    } catch is EntryOverrun {
      throw unreadable("it holds more data than its declared \(declared) bytes")
    } catch {
      throw unreadable("\(error)")
    }
    guard UInt64(bytes.count) == declared else {
      throw unreadable("only \(bytes.count) of its declared \(declared) bytes could be read (truncated?)")
    }
    guard crc == entry.checksum else { throw unreadable("CRC-32 mismatch (corrupt data)") }
    return bytes
  }
}

private struct EntryOverrun: Error {}
