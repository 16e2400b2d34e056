import Foundation

/// A new empty directory under the system's temporary folder, for one test. Every directory made
/// here is removed, with its contents, when the test process exits (an XCTest run ends with
/// `exit`, which runs `atexit` handlers), so repeated `make test` runs leave nothing behind.
public func temporaryDirectory() throws -> URL {
  let url = FileManager.default.temporaryDirectory.appendingPathComponent(
    "sambatch-tests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  TemporaryDirectories.shared.add(url)
  return url
}

/// The directories `temporaryDirectory()` made, removed at exit.
final class TemporaryDirectories: @unchecked Sendable {
  static let shared = TemporaryDirectories()

  private let lock = NSLock()
  private var urls: [URL] = []

  private init() {
    atexit { TemporaryDirectories.shared.removeAll() }
  }

  func add(_ url: URL) {
    lock.withLock { urls.append(url) }
  }

  func removeAll() {
    let all = lock.withLock { () -> [URL] in
      defer { urls = [] }
      return urls
    }
    for url in all { try? FileManager.default.removeItem(at: url) }
  }
}
