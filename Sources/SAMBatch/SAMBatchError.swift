import Foundation

/// Everything the batch side of sambatch can refuse: job files, manifests, models, the store,
/// exports, and the inputs of single requests (RLE strings, .npy files, prompts). Messages name
/// the file (and line or key where there is one) and the cause, once.
public enum SAMBatchError: Error, LocalizedError, Equatable {
  // Inputs of one request: a COCO RLE string, a .npy file, a prompt or a prompts file.
  case rleInvalidCharacter(offset: Int, code: Int)
  case rleTruncated(offset: Int)
  case rleValueTooLong(offset: Int)
  case rleNegativeRun(Int)
  case rleRunTooLong(Int)
  case rleSizeMismatch(runTotal: Int, width: Int, height: Int)
  case rleInvalidSize(width: Int, height: Int)
  /// A .npy file that cannot be read, parsed or written.
  case npy(file: String, reason: String)
  /// A prompt given on the command line or in a prompts file; `source` names it.
  case prompt(source: String, reason: String)
  /// A prompts JSON file that cannot be read or does not have the expected structure.
  case promptsFile(file: String, reason: String)
  /// Options that do not go together.
  case usage(String)

  // Jobs.

  /// A job file problem; `line` is 1-based where known.
  case job(file: String, line: Int?, key: String?, message: String)
  /// A job file's parameter the user must correct (the `everything:` section): an unknown key, a
  /// wrong type, a value out of range. Reads as `job`; the command line exits 64 for it.
  case jobParameter(file: String, line: Int?, key: String?, message: String)
  /// A manifest that cannot be read at all (a bad line in a JSON Lines manifest is not thrown: it
  /// is recorded against the job and the rest goes on).
  case manifest(file: String, line: Int?, message: String)
  /// The manifests of the job list no image at all.
  case noImages(job: String, manifests: [String])
  /// An everything job's images folder holds no JPEG or PNG (`list` nil), or its image list names
  /// no image.
  case noImagesFound(job: String, folder: String, list: String?)
  /// The images folder the manifests' relative paths point into does not exist.
  case imagesFolderMissing(folder: String)
  /// The job's `images:` names a file (a list, an archive), not a folder.
  case imagesFolderIsFile(folder: String)
  /// The images folder disappeared during the run (an unmounted disk, a moved folder).
  case imagesFolderVanished(folder: String)
  /// The database exists but was written for another model, manifest or settings, and holds
  /// results that the change would invalidate.
  case jobChanged(database: String, changes: [String])
  /// Another process is running this job on this database.
  case busy(database: String, host: String, pid: Int?, since: String)
  /// The database cannot be opened, created or written.
  case store(database: String, message: String)
  /// A file an export or a merge writes cannot be written.
  case cannotWrite(path: String, cause: String)
  /// Export, merge or shard problems.
  case export(String)
  case merge(String)
  case shard(String)
  /// No model given: neither an option, nor SAMBATCH_MODEL, nor the job's `model:`.
  case noModel(job: String?)
  /// The model file cannot be read or is not a usable checkpoint; `cause` may name the path
  /// already (the checkpoint reader's messages do), then it is not repeated.
  case model(path: String, cause: String)
  /// A file `sambatch predict` needs (`what`: "model", "image", "--logits") is missing or unusable.
  case inputFile(what: String, path: String, cause: String)
  /// The image of `sambatch predict` cannot be decoded or encoded; the cause names the file.
  case image(String)
  /// A request `sambatch predict` cannot serve, found before the model loads (exit 64).
  case invalidRequest(String)
  /// The model failed on a request it had accepted.
  case prediction(String)

  public var errorDescription: String? {
    switch self {
    case .rleInvalidCharacter(let offset, let code):
      return "RLE counts: character \(code) at offset \(offset) is outside '0'...'o' (48...111)"
    case .rleTruncated(let offset):
      return "RLE counts: the value starting at offset \(offset) is cut off at the end of the string"
    case .rleValueTooLong(let offset):
      return "RLE counts: the value starting at offset \(offset) has more than 12 characters"
    case .rleNegativeRun(let value): return "RLE counts: a run has negative length \(value)"
    case .rleRunTooLong(let value): return "RLE counts: a run of \(value) pixels exceeds 2^32 - 1"
    case .rleSizeMismatch(let total, let width, let height):
      return
        "RLE counts: the runs cover \(total) pixels but the mask is \(width)x\(height) = \(width * height)"
    case .rleInvalidSize(let width, let height): return "RLE: invalid mask size \(width)x\(height)"
    case .npy(let file, let reason): return "\(file): \(reason)"
    case .prompt(let source, let reason): return "\(source): \(reason)"
    case .promptsFile(let file, let reason): return "\(file): \(reason)"
    case .usage(let message): return message
    case .job(let file, let line, let key, let message),
      .jobParameter(let file, let line, let key, let message):
      let place = line.map { "\(file):\($0)" } ?? file
      if let key { return "\(place): '\(key)': \(message)" }
      return "\(place): \(message)"
    case .manifest(let file, let line, let message):
      return "\(line.map { "\(file):\($0)" } ?? file): \(message)"
    case .noImages(let job, let manifests):
      return "\(job): the manifests list no images (\(manifests.joined(separator: ", "))): nothing to do"
    case .noImagesFound(let job, let folder, let list):
      if let list {
        return "\(job): the image list \(list) names no image: nothing to do"
      }
      return
        "\(job): the images folder \(folder) holds no .jpg, .jpeg or .png file (searched recursively, "
        + "names starting with '.' skipped): nothing to do"
    case .imagesFolderMissing(let folder):
      return "the images folder \(folder) does not exist (the job's 'images:'); nothing was recorded"
    case .imagesFolderIsFile(let folder):
      return
        "the job's 'images:' names \(folder), which is a file, not a folder (an image list goes in "
        + "'image_list:'); nothing was recorded"
    case .imagesFolderVanished(let folder):
      return
        "the images folder \(folder) disappeared during the run: stopped, and the images not processed are"
        + " left pending. Put it back (or mount it again) and run the same command to continue."
    case .jobChanged(let database, let changes):
      return "\(database) was written for a different job: \(changes.joined(separator: "; ")). "
        + "Delete \(database) (or point 'database:' elsewhere) to start afresh."
    case .busy(let database, let host, let pid, let since):
      return
        "\(database) is in use by another run of this job: \(pid.map { "pid \($0)" } ?? "a process") on \(host), "
        + "started \(since). Wait for it to finish, or stop it; a run whose process is gone is taken over."
    case .store(let database, let message): return "\(database): \(message)"
    case .cannotWrite(let path, let cause): return "cannot write \(path): \(cause)"
    case .export(let message), .merge(let message), .shard(let message):
      return message
    case .noModel(let job):
      guard let job else { return "no model: give --model PATH or set SAMBATCH_MODEL=/path/to/mobile_sam.pt" }
      return
        "\(job): no 'model:' in the job and SAMBATCH_MODEL is not set (add 'model: /path/to/mobile_sam.pt'"
        + " to the job, or set SAMBATCH_MODEL)"
    case .model(let path, let cause):
      return cause.contains(path) ? cause : "\(path): \(cause)"
    case .inputFile(let what, let path, let cause): return "\(what) \(path): \(cause)"
    case .image(let cause): return "image \(cause)"
    case .prediction(let cause), .invalidRequest(let cause): return cause
    }
  }
}

/// The name the input errors had before they joined SAMBatchError (one error type per module).
public typealias InputError = SAMBatchError

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

/// Why a file or folder could not be written, in plain words: a path component that is a file,
/// a missing or read-only folder, rather than "NSCocoaErrorDomain error 512".
func fileWriteCause(_ url: URL, _ error: Error) -> String {
  var path = url.standardizedFileURL
  while path.path != "/" {
    var isFolder: ObjCBool = false
    if FileManager.default.fileExists(atPath: path.path, isDirectory: &isFolder) {
      if !isFolder.boolValue && path != url.standardizedFileURL {
        return "\(path.path) is a file, not a folder"
      }
      break
    }
    path = path.deletingLastPathComponent()
  }
  return readableCause(error)
}

/// At most `limit` characters of a text from the user's input (a path, a line), for messages:
/// a 10 MB path must not become a 10 MB message.
public func quoted(_ text: String, limit: Int = 200) -> String {
  guard text.count > limit else { return text }
  return String(text.prefix(limit)) + "... (\(text.utf8.count) bytes)"
}

/// An error that is its message.
struct PlainError: Error, LocalizedError {
  var errorDescription: String?
  init(_ message: String) { errorDescription = message }
}
