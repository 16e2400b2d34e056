import Crypto
import Foundation

/// The images of a job with the prompts each gets (after `min_score`), and how they compare with
/// what a database already holds. `run` and `status` both decide through `compare`, so that
/// status never advises what run refuses.
struct JobPlan: Sendable {
  /// Every image of the job, at its position (its id), with the objects kept.
  var images: [ManifestImage]
  /// The images of this run's shard, as the store plans them.
  var planned: [ImagePlan]
  var problems: [ManifestProblemRecord]
  var belowMinScore: Int
  var manifestSHA256: String
  /// The images are the listing of the images folder (an everything job without manifests or
  /// image list): the refusal of a reordered listing says how to keep the done work.
  var listsFolder = false
  /// An everything job: its images have no prompts, so growth is only new images.
  var imagesOnly = false
  /// How the images were found, for the run's log (`LoadedManifests.notes`).
  var notes: [String] = []

  init(job: JobFile, shard: Shard) throws {
    // min_score is applied here, per image, so that each image records what it left out.
    var unfiltered = job
    unfiltered.prompts.minScore = nil
    let manifests = try LoadedManifests.load(unfiltered)
    var images: [ManifestImage] = []
    var planned: [ImagePlan] = []
    var below = 0
    images.reserveCapacity(manifests.images.count)
    for (id, image) in manifests.images.enumerated() {
      var kept = image
      var dropped = 0
      if let minScore = job.prompts.minScore {
        kept.objects = image.objects.filter { object in
          guard let score = object.detectorScore, score < minScore else { return true }
          dropped += 1
          return false
        }
      }
      below += dropped
      images.append(kept)
      if shard.contains(id) {
        planned.append(
          ImagePlan(
            id: id, path: kept.path, sourceImageId: kept.sourceImageId,
            // An everything image is one prompt: the generator's grid of points.
            promptCount: job.everything == nil ? kept.objects.count : 1,
            belowMinScore: dropped, promptsSHA256: Self.fingerprint(kept)))
      }
    }
    self.images = images
    self.planned = planned
    self.problems = manifests.problems.map {
      ManifestProblemRecord(file: $0.file, line: $0.line, message: $0.message)
    }
    self.belowMinScore = below
    self.manifestSHA256 = manifests.sha256
    self.listsFolder = job.everything != nil && job.manifests.isEmpty && job.imageList == nil
    self.imagesOnly = job.everything != nil
    self.notes = manifests.notes
  }

  /// Lets go of the plan's images and problems once the run has taken what it needs.
  mutating func release() {
    images = []
    planned = []
    problems = []
  }

  /// The size and modification time of every file the job's manifests are read from, with how
  /// each is read: while this text is the one stored with the plan, the manifests are taken as
  /// unchanged without reading them (as make and rsync do). nil when a file cannot be looked at.
  /// An everything job listing its images folder has no such file: it is listed every run.
  static func manifestStats(_ job: JobFile) -> String? {
    var lines: [String] = []
    if job.everything != nil && job.manifests.isEmpty {
      guard let list = job.imageList,
        let attributes = try? FileManager.default.attributesOfItem(atPath: list.path),
        let size = attributes[.size] as? Int, let modified = attributes[.modificationDate] as? Date
      else { return nil }
      return "image_list \(list.path) \(size) \(Int((modified.timeIntervalSince1970 * 1000).rounded()))"
    }
    for spec in job.manifests {
      for url in [spec.path] + (spec.images.map { [$0] } ?? []) {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: url.path),
          let size = attributes[.size] as? Int, let modified = attributes[.modificationDate] as? Date
        else { return nil }
        // Milliseconds: what every file system keeps, and what a copy that keeps times restores.
        lines.append("\(spec) \(url.path) \(size) \(Int((modified.timeIntervalSince1970 * 1000).rounded()))")
      }
    }
    return lines.joined(separator: "\n")
  }

  /// What decides an image's results besides the settings: every field of every object that
  /// reaches the prompts table (not the line it was read from: a line moved by an edit elsewhere
  /// changes nothing), and the image's source id. Written out field by field: reflection
  /// (`"\(objects)"`) costs milliseconds per image on a 100,000-image job.
  static func fingerprint(_ image: ManifestImage) -> String {
    var text = image.sourceImageId.map(String.init) ?? "-"
    func optional(_ value: String?) -> String { value.map { "\($0.utf8.count):\($0)" } ?? "-" }
    for o in image.objects {
      text += "|" + optional(o.sourceId) + "," + optional(o.categoryId.map(String.init)) + ","
      text += optional(o.category) + "," + optional(o.detectorScore.map { "\($0)" }) + ","
      text +=
        optional(o.box.map { $0.map { "\($0)" }.joined(separator: " ") }) + "," + o.boxConvention.rawValue
      for p in o.points { text += ",\(p.x) \(p.y) \(p.label)" }
    }
    return hex(SHA256.hash(data: Data(text.utf8)))
  }

  /// How a database's plan relates to this one.
  enum Comparison: Equatable {
    /// The database holds no job yet.
    case fresh
    /// The same job; `missing` are images the database lacks (a merge of only some shards).
    case same(missing: [ImagePlan])
    /// The manifests grew or changed, and done work can be kept: `added` images are new,
    /// `changed` ones have other prompts and are redone.
    case grown(added: [ImagePlan], changed: [ImagePlan], changes: [String])
    /// The job changed, but the database holds no result yet (no image done): the plan is
    /// replaced, nothing is lost.
    case replace(changes: [String])
    /// The job changed in a way that invalidates the database's results.
    case refused(changes: [String])
  }

  func compare(stored: JobRecord?, storedImages: [ImageRecord], record: JobRecord) -> Comparison {
    guard let stored else { return .fresh }
    var changes = Self.changes(from: stored, to: record)
    let byId = Dictionary(storedImages.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    let manifestsChanged = stored.manifestSHA256 != record.manifestSHA256
    if !manifestsChanged && changes.isEmpty {
      return .same(missing: planned.filter { byId[$0.id] == nil })
    }
    var added: [ImagePlan] = []
    var changed: [ImagePlan] = []
    var moved: [String] = []
    for image in planned {
      guard let old = byId[image.id] else {
        added.append(image)
        continue
      }
      if old.path != image.path {
        moved.append("position \(image.id) was '\(quoted(old.path))', is now '\(quoted(image.path))'")
      } else if old.promptsSHA256 != image.promptsSHA256 {
        changed.append(image)
      }
    }
    let plannedIds = Set(planned.map(\.id))
    let removed = storedImages.filter { !plannedIds.contains($0.id) }
    if manifestsChanged {
      if let first = moved.first ?? removed.first.map({ "'\(quoted($0.path))' is no longer listed" }) {
        let more = moved.count + removed.count - 1
        let what = "images were removed or reordered (\(first)\(more > 0 ? " and \(more) more" : ""))"
        changes.append(
          listsFolder
            ? "the images folder's listing changed: \(what); only images sorting after all the others keep "
              + "the done work as it is. To keep it, list the images in their stored order "
              + "(sqlite3 DATABASE \"SELECT path FROM images ORDER BY id\" > images.txt), append the new ones "
              + "and add 'image_list: images.txt' to the job"
            : "the manifests changed: \(what); "
              + "only appending images and prompts, or changing an image's prompts, keeps the done work")
      }
    }
    if !storedImages.contains(where: { $0.status == .done }) {
      var all = changes
      if manifestsChanged && moved.isEmpty && removed.isEmpty {
        all.append(growthDescription(added: added.count, changed: changed.count))
      }
      return .replace(changes: all)
    }
    if !changes.isEmpty { return .refused(changes: changes) }
    return .grown(
      added: added, changed: changed,
      changes: [growthDescription(added: added.count, changed: changed.count)])
  }

  func growthDescription(added: Int, changed: Int) -> String {
    if imagesOnly && changed == 0 { return "the images changed: \(count(added, "new image"))" }
    return
      "the manifests changed: \(count(added, "new image")), \(count(changed, "image")) with other prompts"
  }

  /// Differences between two job records other than the manifests (compared image by image).
  static func changes(from old: JobRecord, to new: JobRecord) -> [String] {
    var changes: [String] = []
    if old.modelSHA256 != new.modelSHA256 {
      changes.append(
        "the model changed (\(old.modelPath), sha256 \(old.modelSHA256.prefix(12))... then; \(new.modelPath), sha256 \(new.modelSHA256.prefix(12))... now)"
      )
    }
    if old.settings != new.settings {
      changes.append("the settings changed (\(settingsDifference(old.settings, new.settings)))")
    }
    if old.shard != new.shard {
      changes.append("it holds shard \(old.shard), this run is shard \(new.shard)")
    }
    return changes
  }

  /// "images: /a then, /b now; exif: true then, false now", or both JSON texts when they are not
  /// flat objects (a database written by another version).
  static func settingsDifference(_ old: String, _ new: String) -> String {
    func values(_ text: String) -> [String: String]? {
      (try? JSONDecoder().decode([String: SettingValue].self, from: Data(text.utf8)))?.mapValues(\.text)
    }
    guard let then = values(old), let now = values(new) else { return "\(old) then, \(new) now" }
    let keys = Set(then.keys).union(now.keys).sorted().filter { then[$0] != now[$0] }
    return keys.map { "\($0): \(then[$0] ?? "unset") then, \(now[$0] ?? "unset") now" }.joined(
      separator: "; ")
  }
}

/// One value of the settings JSON, as text for messages: an integer as an integer
/// (`points_per_side: 3 then, 5 now`, not 3.0), as the job file has it.
private struct SettingValue: Decodable {
  var text: String

  init(from decoder: Decoder) throws {
    let value = try decoder.singleValueContainer()
    if value.decodeNil() {
      text = "null"
    } else if let b = try? value.decode(Bool.self) {
      text = String(b)
    } else if let i = try? value.decode(Int.self) {
      text = String(i)
    } else if let d = try? value.decode(Double.self) {
      text = "\(d)"
    } else {
      text = try value.decode(String.self)
    }
  }
}

/// "1 image", "2 images", "0 images".
public func count(_ n: Int, _ noun: String, plural: String? = nil) -> String {
  "\(n) \(n == 1 ? noun : plural ?? noun + "s")"
}
