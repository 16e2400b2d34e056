import Crypto
import Foundation

/// The images of an everything job without manifests: every JPEG and PNG under the job's images
/// folder, or the ones its `image_list` names. They take the place of a manifest's images (each
/// without objects), so planning, resuming, shards, `status` and `validate` treat them as they
/// treat a manifest's.
enum ImageListing {
  static let extensions: Set<String> = ["jpg", "jpeg", "png"]

  static func load(_ job: JobFile) throws -> LoadedManifests {
    var hasher = SHA256()
    var problems: [ManifestProblem] = []
    var images: [ManifestImage]
    var notes: [String] = []
    if let list = job.imageList {
      let data: Data
      do { data = try Data(contentsOf: list) } catch {
        throw SAMBatchError.manifest(
          file: list.path, line: nil, message: "cannot read the image list (\(fileReadCause(list, error)))")
      }
      hasher.update(data: Data("image_list|\(data.count)|".utf8))
      hasher.update(data: data)
      images = listed(data, file: list.path, imagesFolder: job.images, problems: &problems)
    } else {
      var others: [String: Int] = [:]
      var repeats: [(path: String, first: String)] = []
      let paths = try folderImages(in: job.images, otherFiles: &others, repeats: &repeats)
      if let note = otherFilesNote(others, folder: job.images) { notes.append(note) }
      if let note = repeatsNote(repeats, folder: job.images) { notes.append(note) }
      hasher.update(data: Data("folder|\(paths.count)|".utf8))
      for path in paths { hasher.update(data: Data((path + "\n").utf8)) }
      images = paths.map { ManifestImage(path: $0, objects: []) }
    }
    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    return LoadedManifests(images: images, problems: problems, belowMinScore: 0, sha256: digest, notes: notes)
  }

  /// The images an image list names, one path a line (relative to the images folder, or
  /// absolute), in its order; blank lines and lines starting with `#` are skipped. A path listed
  /// twice (under any spelling: `a.png`, `./a.png`, its absolute path) is a problem and left out
  /// the second time. A listed file that does not exist is kept: it fails when it is read, as an
  /// image a manifest names does, and `--retry-failed` does it once it is there (leaving it out
  /// would move every later image's position). Windows files read the same (CRLF, byte order mark).
  static func listed(_ data: Data, file: String, imagesFolder: URL, problems: inout [ManifestProblem])
    -> [ManifestImage]
  {
    var images: [ManifestImage] = []
    var firstLine: [String: Int] = [:]
    var text = String(decoding: data, as: UTF8.self)
    if text.hasPrefix("\u{FEFF}") { text.removeFirst() }
    // isNewline, not "\n": a CRLF is one Character, which "\n" never equals.
    let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
    for (index, raw) in lines.enumerated() {
      let line = index + 1
      let path = raw.trimmingCharacters(in: .whitespacesAndNewlines)
      if path.isEmpty || path.hasPrefix("#") { continue }
      guard let normalized = ImagePath.normalize(path) else {
        problems.append(ManifestProblem(file: file, line: line, message: "'\(quoted(path))' names no file"))
        continue
      }
      let key = ImagePath.resolve(normalized, in: imagesFolder)
      if let first = firstLine[key] {
        problems.append(
          ManifestProblem(
            file: file, line: line, message: "'\(quoted(path))' is listed on line \(first) already: left out")
        )
        continue
      }
      firstLine[key] = line
      images.append(ManifestImage(path: path, objects: [], line: line))
    }
    return images
  }

  /// The relative path of every file under `folder` whose name ends in .jpg, .jpeg or .png (in any
  /// case), sorted by their UTF-8 bytes (as `LC_ALL=C sort`), so the order is the same on every
  /// machine. Names starting with `.` are skipped, files and folders alike. Symbolic links are
  /// followed, each real folder listed once (under the first path that reaches it, walking in sorted
  /// order), so a link that loops ends the walk there; a broken link named like an image is listed
  /// (it fails when read).
  /// A file reached under several names (links to one image) is listed once, under the name that
  /// sorts first, as an image list lists it once: the same pixels are not segmented twice.
  static func folderImages(in folder: URL) throws -> [String] {
    var others: [String: Int] = [:]
    var repeats: [(path: String, first: String)] = []
    return try folderImages(in: folder, otherFiles: &others, repeats: &repeats)
  }

  /// As `folderImages(in:)`, counting the files left out for their type by lowercased extension
  /// ("" for none): a folder of JPEGs and TIFFs must not look fully processed when half of it was
  /// never read; and naming in `repeats` each name left out as another name of a listed file.
  static func folderImages(
    in folder: URL, otherFiles: inout [String: Int], repeats: inout [(path: String, first: String)]
  ) throws -> [String] {
    var isFolder: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isFolder) else {
      throw SAMBatchError.imagesFolderMissing(folder: folder.path)
    }
    guard isFolder.boolValue else { throw SAMBatchError.imagesFolderIsFile(folder: folder.path) }
    var found: [(path: String, file: String)] = []  // file: the resolved path, links followed
    var seen: Set<String> = []
    var pending: [(url: URL, relative: String)] = [(folder, "")]
    while let (url, relative) = pending.popLast() {
      guard seen.insert(url.resolvingSymlinksInPath().path).inserted else { continue }
      let names: [String]
      do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
        throw SAMBatchError.manifest(
          file: url.path, line: nil,
          message:
            "cannot list the images folder (\(fileReadCause(url, error))): no image would be left out silently"
        )
      }
      // Smallest name first (popLast), so which path a folder linked twice is listed under does
      // not depend on the order the file system returns names in.
      let sorted = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
      var folders: [(url: URL, relative: String)] = []
      for name in sorted where !name.hasPrefix(".") {
        let child = url.appendingPathComponent(name)
        let path = relative.isEmpty ? name : relative + "/" + name
        var childIsFolder: ObjCBool = false
        let isImageName = extensions.contains((name as NSString).pathExtension.lowercased())
        guard FileManager.default.fileExists(atPath: child.path, isDirectory: &childIsFolder) else {
          // A link to an image that is not there (an unmounted disk): listed, so that it fails
          // when read and says so, rather than the image being left out without a word.
          if isImageName, (try? FileManager.default.destinationOfSymbolicLink(atPath: child.path)) != nil {
            found.append((path, child.path))
          }
          continue
        }
        if childIsFolder.boolValue {
          folders.append((child, path))
        } else if isImageName {
          found.append((path, child.resolvingSymlinksInPath().path))
        } else {
          otherFiles[(name as NSString).pathExtension.lowercased(), default: 0] += 1
        }
      }
      pending += folders.reversed()
    }
    found.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
    var firstName: [String: String] = [:]
    var images: [String] = []
    for (path, file) in found {
      if let first = firstName[file] {
        repeats.append((path, first))
      } else {
        firstName[file] = path
        images.append(path)
      }
    }
    return images
  }
}

extension ImageListing {
  /// "the images folder /data holds 3 other files, not read (.tif 2, no extension 1): only .jpg,
  /// .jpeg and .png are", the five commonest types named; nil when there are none.
  static func otherFilesNote(_ others: [String: Int], folder: URL) -> String? {
    let total = others.values.reduce(0, +)
    guard total > 0 else { return nil }
    let types = others.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
    var named = types.prefix(5).map { "\($0.key.isEmpty ? "no extension" : "." + $0.key) \($0.value)" }
    if types.count > 5 { named.append("...") }
    return "the images folder \(folder.path) holds \(count(total, "other file")), not read "
      + "(\(named.joined(separator: ", "))): only .jpg, .jpeg and .png are"
  }
}

extension ImageListing {
  /// "the images folder /data holds 2 more names of images listed already (links): ... each
  /// image is segmented once", naming the first three; nil when there are none.
  static func repeatsNote(_ repeats: [(path: String, first: String)], folder: URL) -> String? {
    guard !repeats.isEmpty else { return nil }
    var named = repeats.prefix(3).map { "\(quoted($0.path)) is \(quoted($0.first))" }
    if repeats.count > 3 { named.append("...") }
    return
      "the images folder \(folder.path) holds \(count(repeats.count, "more name")) of images listed already "
      + "(links: \(named.joined(separator: ", "))): each image is segmented once, under its first name"
  }
}

extension SAMBatchError {
  /// What `run` and `validate` say when a job has no image: which folder, list or manifests were
  /// empty.
  static func noImages(in job: JobFile) -> SAMBatchError {
    if job.everything != nil && job.manifests.isEmpty {
      return .noImagesFound(job: job.url.path, folder: job.images.path, list: job.imageList?.path)
    }
    return .noImages(job: job.url.path, manifests: job.manifests.map(\.path.path))
  }
}
