import Foundation

/// Everything that can go wrong while reading a `torch.save` file or consuming its tensors.
/// Each message names the file and, where there is one, the zip entry, state-dict key, pickle
/// opcode or global involved.
public enum TorchCheckpointError: Error, LocalizedError, Equatable {
  /// The file could not be opened or read at all.
  case unreadable(file: String, reason: String)
  /// No zip central directory: not a zip file, or a truncated one.
  case notAZipArchive(file: String, detail: String)
  /// A pickle stream at the top level: the pre-1.6 `torch.save` format, which we do not read.
  case legacyFormat(file: String)
  /// A zip entry exists but could not be extracted (corrupt data, bad checksum, ...).
  case unreadableEntry(file: String, entry: String, reason: String)
  case missingDataPickle(file: String)
  case ambiguousDataPickle(file: String, entries: [String])
  /// An entry is larger than we are prepared to hold in memory for its role.
  case entryTooLarge(file: String, entry: String, bytes: UInt64, limit: UInt64)
  /// The `byteorder` entry says "big": storages would need byte swapping.
  case bigEndian(file: String)
  case truncatedPickle(file: String, offset: Int, opcode: String)
  case unknownOpcode(file: String, offset: Int, opcode: UInt8)
  /// A GLOBAL outside the small set torch.save writes for a state dict (`os.system`, ...).
  case foreignGlobal(file: String, offset: Int, global: String)
  case malformedPickle(file: String, offset: Int, reason: String)
  /// The pickle is well formed but is not a flat dictionary of tensors.
  case notAStateDict(file: String, reason: String)
  case missingStorage(file: String, key: String, entry: String)
  case storageTooShort(file: String, key: String, entry: String, expectedBytes: UInt64, actualBytes: UInt64)
  /// Sizes, strides or offset are negative, absurd, or reach outside the tensor's storage.
  case invalidTensorLayout(file: String, key: String, reason: String)
  /// The tensors as float32 would take more memory than the machine has (or the caller allows).
  case exceedsMemory(file: String, bytes: UInt64, limit: UInt64)
  case missingKey(file: String, key: String)
  case shapeMismatch(file: String, key: String, actual: [Int], expected: [Int])
  case keyTakenTwice(file: String, key: String)
  case unusedKeys(file: String, keys: [String], count: Int)

  public var errorDescription: String? {
    switch self {
    case .unreadable(let file, let reason):
      return "cannot read checkpoint \(file): \(reason)"
    case .notAZipArchive(let file, let detail):
      return
        "\(file) is not a PyTorch zip checkpoint (\(detail)); the file may be truncated or of another kind"
    case .legacyFormat(let file):
      return
        "\(file) uses the legacy (pre-1.6) torch.save format, which is not supported; re-save it with a current torch"
    case .unreadableEntry(let file, let entry, let reason):
      return "cannot read zip entry \(entry) in \(file): \(reason)"
    case .missingDataPickle(let file):
      return "\(file) has no <prefix>/data.pkl entry, so it is not a torch.save checkpoint"
    case .ambiguousDataPickle(let file, let entries):
      return "\(file) has several data.pkl entries (\(entries.joined(separator: ", "))); expected exactly one"
    case .entryTooLarge(let file, let entry, let bytes, let limit):
      return "zip entry \(entry) in \(file) is too large (\(bytes) bytes, limit \(limit))"
    case .bigEndian(let file):
      return "\(file) was saved on a big-endian machine (byteorder entry says \"big\"); not supported"
    case .truncatedPickle(let file, let offset, let opcode):
      return "truncated pickle in \(file): opcode \(opcode) at byte \(offset) runs past the end of data.pkl"
    case .unknownOpcode(let file, let offset, let opcode):
      let hex = String(opcode, radix: 16)
      return
        "unsupported pickle opcode 0x\(hex.count == 1 ? "0" + hex : hex) at byte \(offset) in \(file) (only what torch.save writes is accepted)"
    case .foreignGlobal(let file, let offset, let global):
      return
        "refusing pickle global \(global) at byte \(offset) in \(file): only collections.OrderedDict, torch._utils rebuild functions and torch storage types are allowed"
    case .malformedPickle(let file, let offset, let reason):
      return "malformed pickle in \(file) at byte \(offset): \(reason)"
    case .notAStateDict(let file, let reason):
      return "\(file) does not hold a state dict of tensors: \(reason)"
    case .missingStorage(let file, let key, let entry):
      return "tensor \(key) in \(file) refers to storage entry \(entry), which is missing"
    case .storageTooShort(let file, let key, let entry, let expected, let actual):
      return
        "storage entry \(entry) for tensor \(key) in \(file) is too short: \(actual) bytes, the pickle declares \(expected)"
    case .invalidTensorLayout(let file, let key, let reason):
      return "tensor \(key) in \(file) has an invalid layout: \(reason)"
    case .exceedsMemory(let file, let bytes, let limit):
      func megabytes(_ value: UInt64) -> String { value == .max ? "an absurd amount" : "\(value >> 20) MB" }
      return
        "\(file) declares tensors of \(megabytes(bytes)) as float32, more than the \(megabytes(limit)) of memory"
        + " available; refusing it before allocating"
    case .missingKey(let file, let key):
      return "missing key \(key) in \(file)"
    case .shapeMismatch(let file, let key, let actual, let expected):
      return "\(key) in \(file) has shape \(actual), expected \(expected)"
    case .keyTakenTwice(let file, let key):
      return "\(key) in \(file) was taken twice (each checkpoint key should feed exactly one weight)"
    case .unusedKeys(let file, let keys, let count):
      let more = count > keys.count ? ", ... (\(count - keys.count) more)" : ""
      return "\(count) unused key(s) in \(file): \(keys.joined(separator: ", "))\(more)"
    }
  }
}
