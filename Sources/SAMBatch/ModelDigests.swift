import Crypto
import Foundation

/// SHA-256 of model files, remembered by what `stat` says of the file, so that a 2.5 GB
/// checkpoint is hashed once rather than by every `run`, `status` and `predict` (hashing ViT-H
/// costs more than loading it).
///
/// Remembered in memory for the process and, when the folder can be written, on disk: one small
/// file per model version in `$XDG_CACHE_HOME/sambatch/model-sha256/` (default
/// `~/.cache/sambatch/model-sha256/`), named by the file's device, inode, size, modification and
/// status-change times in nanoseconds. Any write to the model changes its status-change time,
/// which programs cannot set back, so a changed model never matches an old entry. A file changed
/// less than `settled` seconds before it was hashed is not remembered: file times are only as fine
/// as the kernel's clock tick, so a second write within the same tick could keep them. The cache
/// is never required: a missing, unreadable or read-only folder means the file is hashed.
public struct ModelDigests: Sendable {
  /// Where digests are kept between runs; nil: in memory only.
  public var directory: URL?
  public var settled: TimeInterval

  public init(directory: URL?, settled: TimeInterval = 2) {
    self.directory = directory
    self.settled = settled
  }

  /// The cache in `$XDG_CACHE_HOME/sambatch/model-sha256` or `~/.cache/sambatch/model-sha256`.
  public static let standard = ModelDigests(directory: defaultDirectory(ProcessInfo.processInfo.environment))

  static func defaultDirectory(_ environment: [String: String]) -> URL? {
    if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") {
      return URL(fileURLWithPath: cache).appendingPathComponent("sambatch/model-sha256")
    }
    guard let home = environment["HOME"], home.hasPrefix("/") else { return nil }
    return URL(fileURLWithPath: home).appendingPathComponent(".cache/sambatch/model-sha256")
  }

  /// The hex SHA-256 of the file at `url`. Throws `SAMBatchError.model` when it cannot be read.
  public func sha256(of url: URL) throws -> String {
    guard let before = FileVersion(url) else { return try Self.hash(url) }
    if let digest = Self.remembered(before) ?? readEntry(before) {
      Self.remember(digest, for: before)
      return digest
    }
    let digest = try Self.hash(url)
    // A file changed while it was read has no version to remember the digest by.
    let age = Date().timeIntervalSince1970 - Double(before.changed) / 1e9
    if FileVersion(url) == before && age >= settled {
      Self.remember(digest, for: before)
      writeEntry(digest, for: before, path: url.path)
    }
    return digest
  }

  private func readEntry(_ version: FileVersion) -> String? {
    guard let directory,
      let text = try? String(contentsOf: directory.appendingPathComponent(version.name), encoding: .utf8)
    else { return nil }
    let digest = String(text.prefix(64))
    guard digest.count == 64, digest.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
    return digest
  }

  /// The digest, then the path it was computed from (for a person looking at the folder).
  private func writeEntry(_ digest: String, for version: FileVersion, path: String) {
    guard let directory else { return }
    try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    try? Data((digest + "\n" + path + "\n").utf8).write(
      to: directory.appendingPathComponent(version.name), options: .atomic)
  }

  private static let memory = DigestMemory()

  private static func remembered(_ version: FileVersion) -> String? { memory.get(version) }
  private static func remember(_ digest: String, for version: FileVersion) {
    memory.set(digest, for: version)
  }

  static func hash(_ url: URL) throws -> String {
    let handle: FileHandle
    do { handle = try FileHandle(forReadingFrom: url) } catch {
      throw SAMBatchError.model(
        path: url.path, cause: "cannot read the model file (\(fileReadCause(url, error)))")
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
      let chunk = handle.readData(ofLength: 1 << 20)
      if chunk.isEmpty { break }
      hasher.update(data: chunk)
    }
    return hex(hasher.finalize())
  }
}

/// What identifies one version of a file's bytes without reading them.
struct FileVersion: Hashable, Sendable {
  var device: UInt64
  var inode: UInt64
  var size: Int64
  var modified: Int64
  var changed: Int64

  /// nil when the file cannot be examined (reading it will then say why).
  init?(_ url: URL) {
    var status = stat()
    guard stat(url.path, &status) == 0, status.st_mode & S_IFMT == S_IFREG else { return nil }
    device = UInt64(truncatingIfNeeded: status.st_dev)
    inode = UInt64(truncatingIfNeeded: status.st_ino)
    size = Int64(status.st_size)
    #if canImport(Darwin)
      modified = Int64(status.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(status.st_mtimespec.tv_nsec)
      changed = Int64(status.st_ctimespec.tv_sec) * 1_000_000_000 + Int64(status.st_ctimespec.tv_nsec)
    #else
      modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
      changed = Int64(status.st_ctim.tv_sec) * 1_000_000_000 + Int64(status.st_ctim.tv_nsec)
    #endif
  }

  /// The cache file's name: `device-inode-size-mtime-ctime`.
  var name: String { "\(device)-\(inode)-\(size)-\(modified)-\(changed)" }
}

private final class DigestMemory: @unchecked Sendable {
  private var digests: [FileVersion: String] = [:]
  private let lock = NSLock()

  func get(_ version: FileVersion) -> String? {
    lock.lock()
    defer { lock.unlock() }
    return digests[version]
  }

  func set(_ digest: String, for version: FileVersion) {
    lock.lock()
    digests[version] = digest
    lock.unlock()
  }
}
