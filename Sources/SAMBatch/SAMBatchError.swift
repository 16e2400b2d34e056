import Foundation

/// Everything the batch side of sambatch can refuse: job files, manifests, the store, exports.
/// Messages name the file (and line or key where there is one) and the cause.
public enum SAMBatchError: Error, LocalizedError, Equatable {
  /// A job file problem; `line` is 1-based where known.
  case job(file: String, line: Int?, key: String?, message: String)
  /// A manifest that cannot be read at all (a bad line in a JSON Lines manifest is not thrown: it
  /// is recorded against the job and the rest goes on).
  case manifest(file: String, line: Int?, message: String)
  /// The database exists but was written for another model, manifest or settings.
  case jobChanged(database: String, changes: [String])
  /// The database cannot be opened, created or written.
  case store(database: String, message: String)
  /// Export, merge or shard problems.
  case export(String)
  case merge(String)
  case shard(String)
  /// No model given, or the model cannot be loaded.
  case model(String)

  public var errorDescription: String? {
    switch self {
    case .job(let file, let line, let key, let message):
      let place = line.map { "\(file):\($0)" } ?? file
      if let key { return "\(place): '\(key)': \(message)" }
      return "\(place): \(message)"
    case .manifest(let file, let line, let message):
      return "\(line.map { "\(file):\($0)" } ?? file): \(message)"
    case .jobChanged(let database, let changes):
      return "\(database) was written for a different job: \(changes.joined(separator: "; ")). "
        + "Delete \(database) (or point 'database:' elsewhere) to start afresh."
    case .store(let database, let message): return "\(database): \(message)"
    case .export(let message), .merge(let message), .shard(let message), .model(let message):
      return message
    }
  }
}

/// Why a file could not be read, in plain words: "no such file", "it is a folder, not a file",
/// "permission denied", rather than Foundation's "NSCocoaErrorDomain error 256".
func fileReadCause(_ url: URL, _ error: Error) -> String {
  var isFolder: ObjCBool = false
  if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
    return "it is a folder, not a file"
  }
  let ns = error as NSError
  if ns.domain == NSCocoaErrorDomain && ns.code == NSFileReadInapplicableStringEncodingError {
    return "it is not UTF-8 text"
  }
  return readableCause(error)
}
