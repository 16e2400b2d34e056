import Foundation

/// Combines the databases of a job's shards (`sambatch run --shard I/N`) into one, as if the job
/// had run in one piece: image ids are positions in the whole job, so rows are copied as they
/// are; run ids are renumbered.
public enum ShardMerger {
  public struct Report: Sendable {
    public var shards: [Shard]
    public var missingShards: [Int]
    public var counts: StatusCounts
  }

  public static func merge(into output: URL, shards inputs: [URL]) throws -> Report {
    guard !inputs.isEmpty else { throw SAMBatchError.merge("no shard databases given") }
    guard !FileManager.default.fileExists(atPath: output.path) else {
      throw SAMBatchError.merge("\(output.path) exists already; merge into a new file")
    }
    // Check every shard first: same job, distinct shard indexes.
    var records: [(URL, JobRecord)] = []
    for url in inputs {
      let store = try ResultStore(url: url, access: .readWrite)
      defer { store.close() }
      guard let record = try store.jobRecord() else {
        throw SAMBatchError.merge("\(url.path) holds no job (was the shard ever run?)")
      }
      records.append((url, record))
    }
    let first = records[0].1
    for (url, record) in records.dropFirst() {
      var changes = JobPlan.changes(from: first, to: record).filter { !$0.hasPrefix("it holds shard") }
      if record.manifestSHA256 != first.manifestSHA256 { changes.append("the manifests differ") }
      if record.shard.count != first.shard.count {
        changes.append(
          "it is one of \(record.shard.count) shards, \(records[0].0.path) one of \(first.shard.count)")
      }
      if !changes.isEmpty {
        throw SAMBatchError.merge(
          "\(url.path) is not a shard of the same job as \(records[0].0.path): \(changes.joined(separator: "; "))"
        )
      }
    }
    var seen: [Int: URL] = [:]
    for (url, record) in records {
      if let other = seen[record.shard.index] {
        throw SAMBatchError.merge("\(url.path) and \(other.path) are both shard \(record.shard)")
      }
      seen[record.shard.index] = url
    }
    let missing = (0..<first.shard.count).filter { seen[$0] == nil }

    let merged = try ResultStore(url: output)
    defer { merged.close() }
    // A new file, deleted again if anything fails; each shard is copied in its own transaction.
    do {
      try merged.writeMergedJob(first, imageCount: records.map(\.1.imageCount).reduce(0, +))
      for (url, _) in records.sorted(by: { $0.1.shard.index < $1.1.shard.index }) {
        try merged.copyShard(from: url)
      }
    } catch {
      merged.close()
      for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: output.path + suffix) }
      throw SAMBatchError.merge("merging into \(output.path) failed: \(error.localizedDescription)")
    }
    return Report(shards: records.map(\.1.shard), missingShards: missing, counts: try merged.counts())
  }
}
