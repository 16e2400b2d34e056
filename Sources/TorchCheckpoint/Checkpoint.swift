import CSAMKernels
import Foundation
import SAMTensor

/// A `torch.save`d state dict read from PyTorch's zip format (torch 1.6 and later).
///
/// The zip holds `<prefix>/data.pkl` (the pickled dict, where each tensor names a storage by key)
/// and `<prefix>/data/<key>` (raw little-endian storages). The prefix is the stem of the file
/// name the checkpoint was first saved under (`archive`, `mobile_sam`, ...), so we look for the
/// single entry ending in `/data.pkl` rather than for a fixed name.
public struct Checkpoint: Sendable {
  /// Every tensor of the state dict, converted to float32 (integers too; they are small here),
  /// contiguous row-major whatever the stored strides were.
  public let tensors: [String: Tensor]
  /// The element type each tensor had in the file.
  public let scalarTypes: [String: ScalarType]

  /// A checkpoint built in memory (for tests of code that consumes checkpoints); every tensor
  /// counts as float32 unless `scalarTypes` says otherwise.
  public init(tensors: [String: Tensor], scalarTypes: [String: ScalarType] = [:]) {
    self.tensors = tensors
    var types = scalarTypes
    for key in tensors.keys where types[key] == nil { types[key] = .float32 }
    self.scalarTypes = types
  }

  /// Reads the checkpoint at `url`. Throws `TorchCheckpointError` naming the file and the cause
  /// for anything that is not a plain state dict of tensors.
  /// `memoryLimit` (default: the machine's physical memory) bounds the float32 bytes the tensors
  /// may take; a file declaring more is refused before anything large is allocated.
  /// Large float32 tensors borrow their values from the file mapped into memory (see `Tensor`):
  /// the mapping lives as long as any of them.
  public static func load(
    contentsOf url: URL, memoryLimit: UInt64 = ProcessInfo.processInfo.physicalMemory
  ) throws -> Checkpoint {
    return try load(
      contentsOf: url, memoryLimit: memoryLimit, smallestBorrowed: CheckpointLimits.smallestBorrowedBytes)
  }

  /// `smallestBorrowed`: the size in bytes from which a float32 storage is used in place (tests
  /// lower it to reach small fixtures).
  static func load(contentsOf url: URL, memoryLimit: UInt64, smallestBorrowed: Int) throws -> Checkpoint {
    return try CheckpointReader(url: url, smallestBorrowed: smallestBorrowed).read(memoryLimit: memoryLimit)
  }
}

/// Limits that keep a hostile file from making us allocate without bound.
enum CheckpointLimits {
  /// data.pkl of a 400-tensor state dict is ~40 KB; a large language model's is a few MB.
  static let maximumPickleBytes: UInt64 = 64 << 20
  /// Deflate cannot expand data by more than ~1032:1, so a compressed entry declaring more is lying.
  static let maximumDeflateRatio: UInt64 = 1032
  /// Views may share storages, but all tensors together may not hold more elements than this
  /// multiple of the storages they come from (plus a small allowance for tiny files).
  static let maximumSharingFactor = 8
  static let sharingAllowance = 1 << 20
  static let maximumRank = 32
  /// Float32 storages of at least 1 MB are used in place in the file's mapping: they hold all but
  /// ~1% of a model's bytes. Smaller ones (biases, norms, tables read value by value while a model
  /// is built) are copied into arrays.
  static let smallestBorrowedBytes = 1 << 20
  /// Deflated entries are inflated in chunks of this size.
  static let readChunkBytes = 1 << 19
}

private struct CheckpointReader {
  let url: URL
  /// The file's path, for messages.
  let file: String
  let handle: CheckpointFile
  /// The whole file in memory: every stored entry is checked and read from here.
  let mapping: CheckpointMapping
  let smallestBorrowed: Int
  /// Every file entry by its full path, read once from the central directory.
  let entries: [String: ZipEntry]
  /// `<prefix>/` for data.pkl and the storages.
  let prefix: String
  let dataPickle: ZipEntry

  init(url: URL, smallestBorrowed: Int) throws {
    self.url = url
    self.smallestBorrowed = smallestBorrowed
    file = url.path
    handle = try CheckpointFile(path: url.path)
    do {
      entries = try ZipDirectory.read(handle).entries
    } catch TorchCheckpointError.notAZipArchive(_, let detail) {
      // The pre-1.6 format is a bare pickle stream: it starts with PROTO 2.
      if try handle.bytes(at: 0, count: 2) == [0x80, 0x02] {
        throw TorchCheckpointError.legacyFormat(file: file)
      }
      throw TorchCheckpointError.notAZipArchive(file: file, detail: detail)
    }
    let pickles = entries.keys.filter { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }.sorted()
    guard let pickleName = pickles.first, let pickle = entries[pickleName] else {
      throw TorchCheckpointError.missingDataPickle(file: file)
    }
    guard pickles.count == 1 else {
      throw TorchCheckpointError.ambiguousDataPickle(file: file, entries: pickles)
    }
    prefix = String(pickleName.dropLast("data.pkl".count))
    dataPickle = pickle
    mapping = try handle.map()
  }

  func read(memoryLimit: UInt64) throws -> Checkpoint {
    try refuseBigEndian()
    let pickleBytes = try readEntry(dataPickle, limit: CheckpointLimits.maximumPickleBytes)
    let references = try RestrictedUnpickler.unpickle(pickleBytes, file: file, stateDict(from:))
    try refuseMoreThanMemory(references, limit: memoryLimit)
    return try materialize(references)
  }

  /// The storages as float32 must fit in `limit`: checked from the pickle's declarations, before
  /// any storage is read.
  private func refuseMoreThanMemory(_ references: [(String, TensorReference)], limit: UInt64) throws {
    var seen: Set<String> = []
    var bytes: UInt64 = 0
    for (_, reference) in references where seen.insert(reference.storage.key).inserted {
      let (size, overflow) = UInt64(max(0, reference.storage.elementCount)).multipliedReportingOverflow(by: 4)
      let (sum, overflow2) = bytes.addingReportingOverflow(size)
      bytes = overflow || overflow2 ? .max : sum
    }
    guard bytes <= limit else {
      throw TorchCheckpointError.exceedsMemory(file: file, bytes: bytes, limit: limit)
    }
  }

  /// Newer torch writes `<prefix>/byteorder`; its absence means little-endian (older torch only
  /// ran on little-endian hosts when saving to this format in practice).
  private func refuseBigEndian() throws {
    guard let entry = entries[prefix + "byteorder"] else { return }
    let bytes = try readEntry(entry, limit: 64)
    let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    if text == "big" { throw TorchCheckpointError.bigEndian(file: file) }
  }

  /// The top-level object must be a dict (or OrderedDict) from str to tensor.
  private func stateDict(from root: PickleValue) throws -> [(String, TensorReference)] {
    guard case .dict(let dict) = root else {
      throw TorchCheckpointError.notAStateDict(
        file: file, reason: "the pickle holds a \(root.kindName), not a dict")
    }
    var result: [(String, TensorReference)] = []
    result.reserveCapacity(dict.entries.count)
    for (key, value) in dict.entries {
      guard case .string(let name) = key else {
        throw TorchCheckpointError.notAStateDict(file: file, reason: "a key is a \(key.kindName), not a str")
      }
      guard case .tensor(let tensor) = value else {
        throw TorchCheckpointError.notAStateDict(
          file: file, reason: "key \(name) holds a \(value.kindName), not a tensor")
      }
      result.append((name, tensor))
    }
    return result
  }

  // MARK: - Tensors

  private func materialize(_ references: [(String, TensorReference)]) throws -> Checkpoint {
    // 1. Layouts and storages from the pickle's declarations alone.
    var storageReferences: [String: StorageReference] = [:]
    var firstUser: [String: String] = [:]  // storage key -> the first tensor using it, for messages
    var storageOrder: [String] = []
    var counts: [Int] = []
    var storageElements = 0
    var tensorElements = 0
    for (key, reference) in references {
      let storage = reference.storage
      let count = try checkLayout(reference, key: key)
      counts.append(count)
      if let known = storageReferences[storage.key] {
        guard known == storage else {
          throw TorchCheckpointError.invalidTensorLayout(
            file: file, key: key,
            reason:
              "storage \(storage.key) is declared as \(storage.elementCount) \(storage.scalarType) here but as \(known.elementCount) \(known.scalarType) by another tensor"
          )
        }
      } else {
        storageReferences[storage.key] = storage
        firstUser[storage.key] = key
        storageOrder.append(storage.key)
        storageElements += storage.elementCount
      }
      // Bounds the output by the storages: views of one storage may repeat its elements
      // (stride 0), but not without limit.
      let budget = CheckpointLimits.maximumSharingFactor * storageElements + CheckpointLimits.sharingAllowance
      guard count <= budget - tensorElements else {
        throw TorchCheckpointError.invalidTensorLayout(
          file: file, key: key,
          reason:
            "size \(reference.sizes) holds \(count) elements; with the tensors before it that is more than \(CheckpointLimits.maximumSharingFactor)x the \(storageElements) elements of the storages read"
        )
      }
      tensorElements += count
    }
    // 2. The storages, checked in place in the mapping on two threads (the CRC-32 is the only pass
    // over a borrowed storage's bytes at load), then borrowed or converted.
    let jobs = storageOrder.map { key in
      StorageJob(storage: storageReferences[key]!, tensorKey: firstUser[key] ?? key)
    }
    let storages = try readStorages(jobs)
    // 3. Tensors: views of the storages (no copy when a tensor is its whole storage).
    var tensors: [String: Tensor] = [:]
    var scalarTypes: [String: ScalarType] = [:]
    for ((key, reference), count) in zip(references, counts) {
      let values = storages[reference.storage.key] ?? Tensor(zeros: [0])
      tensors[key] = gatherTensor(reference, from: values, count: count)
      scalarTypes[key] = reference.storage.scalarType
    }
    return Checkpoint(tensors: tensors, scalarTypes: scalarTypes)
  }

  private struct StorageJob {
    var storage: StorageReference
    var tensorKey: String
  }

  /// Reads every job's storage, splitting them into two groups of about equal bytes read in
  /// parallel. The first error (in storage order) is thrown.
  private func readStorages(_ jobs: [StorageJob]) throws -> [String: Tensor] {
    let workers = jobs.count > 1 ? 2 : 1
    var groups = [[Int]](repeating: [], count: workers)
    var groupBytes = [Int](repeating: 0, count: workers)
    for (index, job) in jobs.enumerated() {
      let target = groupBytes[0] <= groupBytes[workers - 1] ? 0 : workers - 1
      groups[target].append(index)
      groupBytes[target] += job.storage.elementCount * job.storage.scalarType.itemSize
    }
    let results = StorageResults(count: jobs.count)
    // The reader is only read by the workers (its mapping is read-only, its file handle reads with
    // pread): safe to hand over despite its non-Sendable members.
    let shared = UncheckedSendable(value: (reader: self, jobs: jobs, groups: groups))
    DispatchQueue.concurrentPerform(iterations: workers) { worker in
      let (reader, jobs, groups) = shared.value
      for index in groups[worker] {
        let job = jobs[index]
        results.set(index, Result { try reader.readStorage(job.storage, key: job.tensorKey) })
      }
    }
    var storages: [String: Tensor] = [:]
    for (index, job) in jobs.enumerated() {
      storages[job.storage.key] = try results.get(index)
    }
    return storages
  }

  /// Checks sizes, strides and offset against the storage's declared element count with
  /// overflow-safe arithmetic; returns the tensor's element count.
  private func checkLayout(_ reference: TensorReference, key: String) throws -> Int {
    func invalid(_ reason: String) -> TorchCheckpointError {
      .invalidTensorLayout(file: file, key: key, reason: reason)
    }
    let sizes = reference.sizes
    let strides = reference.strides
    guard sizes.count == strides.count else {
      throw invalid("\(sizes.count) sizes \(sizes) but \(strides.count) strides \(strides)")
    }
    guard sizes.count <= CheckpointLimits.maximumRank else { throw invalid("rank \(sizes.count) is absurd") }
    guard sizes.allSatisfy({ $0 >= 0 }) else { throw invalid("negative size in \(sizes)") }
    guard strides.allSatisfy({ $0 >= 0 }) else { throw invalid("negative stride in \(strides)") }
    guard reference.storageOffset >= 0 else {
      throw invalid("negative storage offset \(reference.storageOffset)")
    }
    var count = 1
    for size in sizes {
      let (product, overflow) = count.multipliedReportingOverflow(by: size)
      guard !overflow else { throw invalid("size \(sizes) overflows") }
      count = product
    }
    let storageCount = reference.storage.elementCount
    if count == 0 {
      guard reference.storageOffset <= storageCount else {
        throw invalid(
          "storage offset \(reference.storageOffset) is past the storage's \(storageCount) elements")
      }
      return 0
    }
    // The last element a view touches: offset + sum((size - 1) * stride).
    var last = reference.storageOffset
    for (size, stride) in zip(sizes, strides) {
      let (step, overflow) = (size - 1).multipliedReportingOverflow(by: stride)
      let (sum, overflow2) = last.addingReportingOverflow(step)
      guard !overflow, !overflow2 else { throw invalid("size \(sizes) with stride \(strides) overflows") }
      last = sum
    }
    guard last < storageCount else {
      throw invalid(
        "offset \(reference.storageOffset), size \(sizes) and stride \(strides) reach element \(last), outside its storage of \(storageCount)"
      )
    }
    return count
  }

  /// `<prefix>/data/<key>` as float32 values, [elementCount]: borrowed from the mapping when it is
  /// a large, aligned float32 storage, else converted into an array.
  private func readStorage(_ storage: StorageReference, key: String) throws -> Tensor {
    let name = prefix + "data/" + storage.key
    guard let entry = entries[name] else {
      throw TorchCheckpointError.missingStorage(file: file, key: key, entry: name)
    }
    let itemSize = storage.scalarType.itemSize
    let (byteCount, overflow) = storage.elementCount.multipliedReportingOverflow(by: itemSize)
    guard !overflow else {
      throw TorchCheckpointError.invalidTensorLayout(
        file: file, key: key,
        reason: "storage \(storage.key) declares an absurd \(storage.elementCount) elements")
    }
    let declared = entry.uncompressedSize
    guard declared >= UInt64(byteCount) else {
      throw TorchCheckpointError.storageTooShort(
        file: file, key: key, entry: name, expectedBytes: UInt64(byteCount), actualBytes: declared)
    }
    let count = storage.elementCount
    guard entry.isStored else {
      // Deflated entries (torch never writes them): the entry's bytes, then float32.
      let bytes = try readEntry(entry, limit: .max)
      guard bytes.count >= byteCount else {
        throw TorchCheckpointError.storageTooShort(
          file: file, key: key, entry: name, expectedBytes: UInt64(byteCount),
          actualBytes: UInt64(bytes.count))
      }
      return bytes.withUnsafeBytes { converted($0, type: storage.scalarType, count: count) }
    }
    let bytes = try checkedStoredBytes(entry)
    guard count > 0, let source = bytes.baseAddress else { return Tensor(zeros: [0]) }
    if storage.scalarType == .float32 && Self.littleEndianHost && byteCount >= smallestBorrowed
      && Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0
    {
      // Everything torch.save writes for a float model: the file's bytes are the values.
      let values = UnsafeBufferPointer(start: source.assumingMemoryBound(to: Float.self), count: count)
      return Tensor(shape: [count], borrowing: BorrowedFloats(values, owner: mapping))
    }
    return converted(bytes, type: storage.scalarType, count: count)
  }

  /// The first `count` elements of `type` at `bytes` as float32, [count].
  private func converted(_ bytes: UnsafeRawBufferPointer, type: ScalarType, count: Int) -> Tensor {
    let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      if let source = bytes.baseAddress, let destination = buffer.baseAddress {
        convertToFloat(source, type: type, count: count, into: destination)
      }
      initialized = count
    }
    return Tensor(shape: [count], data: values)
  }

  private static let littleEndianHost = 1.littleEndian == 1

  /// The tensor `reference` views in `storage` (its storage as [elementCount]), row-major.
  private func gatherTensor(_ reference: TensorReference, from storage: Tensor, count: Int) -> Tensor {
    let sizes = reference.sizes
    let offset = reference.storageOffset
    if count == 0 { return Tensor(shape: sizes, data: []) }
    if isRowMajor(sizes: sizes, strides: reference.strides) && offset == 0 && count == storage.count {
      return storage.reshaped(sizes)  // shares the values, no copy
    }
    let values = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      storage.withUnsafeBufferPointer { source in
        guard let source = source.baseAddress, let destination = buffer.baseAddress else { return }
        if isRowMajor(sizes: sizes, strides: reference.strides) {
          destination.update(from: source + offset, count: count)
        } else {
          gatherStrided(source + offset, sizes: sizes, strides: reference.strides, into: destination)
        }
      }
      initialized = count
    }
    return Tensor(shape: sizes, data: values)
  }

  // MARK: - Zip entries

  /// An entry's bytes, whole, after checking its size against `limit` and the file and its CRC-32.
  private func readEntry(_ entry: ZipEntry, limit: UInt64) throws -> [UInt8] {
    guard entry.uncompressedSize <= limit else {
      throw TorchCheckpointError.entryTooLarge(
        file: file, entry: entry.name, bytes: entry.uncompressedSize, limit: limit)
    }
    guard entry.isStored else {
      return try DeflatedEntry.read(entry.name, from: url, fileSize: handle.size)
    }
    return Array(try checkedStoredBytes(entry))
  }

  /// Where a stored entry's data starts, once its sizes are known to agree and to fit in the file.
  private func storedDataOffset(_ entry: ZipEntry) throws -> UInt64 {
    guard entry.compressedSize == entry.uncompressedSize else {
      throw TorchCheckpointError.unreadableEntry(
        file: file, entry: entry.name,
        reason:
          "it is stored uncompressed but declares \(entry.compressedSize) bytes in the file for \(entry.uncompressedSize) bytes of data"
      )
    }
    return try ZipDirectory.dataOffset(of: entry, in: handle)
  }

  /// A stored entry's bytes in the mapping, after checking them against its CRC-32.
  private func checkedStoredBytes(_ entry: ZipEntry) throws -> UnsafeRawBufferPointer {
    let start = try storedDataOffset(entry)
    let bytes = mapping.slice(at: start, count: Int(entry.uncompressedSize))
    guard sam_crc32(0, bytes.baseAddress, bytes.count) == entry.crc32 else {
      throw TorchCheckpointError.unreadableEntry(
        file: file, entry: entry.name, reason: "CRC-32 mismatch (corrupt data)")
    }
    return bytes
  }
}

private struct UncheckedSendable<Value>: @unchecked Sendable {
  let value: Value
}

/// Per-storage results of the parallel reads, each slot written by one worker.
private final class StorageResults: @unchecked Sendable {
  private var slots: [Result<Tensor, Error>?]
  private let lock = NSLock()

  init(count: Int) { slots = Array(repeating: nil, count: count) }

  func set(_ index: Int, _ result: Result<Tensor, Error>) {
    lock.lock()
    slots[index] = result
    lock.unlock()
  }

  func get(_ index: Int) throws -> Tensor {
    lock.lock()
    defer { lock.unlock() }
    return try slots[index]?.get() ?? Tensor(zeros: [0])
  }
}
