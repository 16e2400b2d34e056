import Dispatch
import Foundation
import MobileSAM
import SAMImage

/// One image on its way through the pipeline.
private struct ImageWork<Embedding: Sendable>: Sendable {
  var rows: ImageResult
  var file: URL
  var image: RGBImage?
  var prepared: [PreparedPrompt] = []
  var embedding: Embedding?
  var started: DispatchTime
  /// The image could not be read because the images folder itself is gone.
  var folderVanished = false
}

/// Counters shared by the stages; written by the writer, read at the end.
private final class PipelineState: @unchecked Sendable {
  private let lock = NSLock()
  private var _processed = 0
  private var _failed = 0
  private var _masks = 0
  private var _fatal: Error?

  func record(failed: Bool, masks: Int) -> (Int, Int, Int) {
    lock.lock()
    defer { lock.unlock() }
    _processed += 1
    if failed { _failed += 1 }
    _masks += masks
    return (_processed, _failed, _masks)
  }

  func fail(_ error: Error) {
    lock.lock()
    if _fatal == nil { _fatal = error }
    lock.unlock()
  }

  var fatal: Error? {
    lock.lock()
    defer { lock.unlock() }
    return _fatal
  }

  var totals: (Int, Int) {
    lock.lock()
    defer { lock.unlock() }
    return (_processed, _failed)
  }
}

/// Read + prepare (the calling thread), encode, decode + post-process, write: one serial queue
/// per stage, so each stage keeps image order, and a semaphore that bounds the images between
/// reading and writing, so memory stays flat however long the job. The model calls (embed and
/// predict) take one lock: each uses all of the job's `workers` compute threads, so encoding
/// image N+1 while decoding image N would run twice as many; reading, RLE and writing still
/// overlap them. Every image's results depend
/// only on that image and its prompts, so any interleaving gives the same rows.
struct Pipeline<S: Segmenter>: Sendable {
  /// Prompts per model call: bounds the full-resolution masks alive at once (16 x 3 masks of a
  /// 2241x1500 image is 160 MB) while keeping the engine's batches useful.
  static var promptsPerCall: Int { 16 }

  let runner: JobRunner
  let segmenter: S
  /// The images to do by id (their position in the job), with the objects to prompt.
  let images: [Int: ManifestImage]
  let store: ResultStore
  let runId: Int
  /// Held around every segmenter call (see above).
  let computeLock = NSLock()

  /// `body` under the compute lock; adds the time spent waiting for the lock to `waited` (ms).
  private func withModel<T>(_ waited: inout Double, _ body: () throws -> T) rethrows -> T {
    let t = DispatchTime.now()
    computeLock.lock()
    waited += milliseconds(since: t)
    defer { computeLock.unlock() }
    return try body()
  }

  func run(_ ids: [Int]) throws -> (processed: Int, failed: Int) {
    let encodeQueue = DispatchQueue(label: "sambatch.encode")
    let decodeQueue = DispatchQueue(label: "sambatch.decode")
    let writeQueue = DispatchQueue(label: "sambatch.write")
    let slots = DispatchSemaphore(value: max(1, runner.options.inFlight))
    let group = DispatchGroup()
    let state = PipelineState()
    let start = Date()
    let total = ids.count
    for id in ids {
      if runner.options.stop.reason != nil { break }
      slots.wait()
      if state.fatal != nil || runner.options.stop.reason != nil {
        slots.signal()
        break
      }
      group.enter()
      let work = read(id)
      encodeQueue.async {
        let encoded = self.encode(work)
        decodeQueue.async {
          let rows = self.decode(encoded)
          let vanished = encoded.folderVanished
          writeQueue.async {
            defer {
              slots.signal()
              group.leave()
            }
            guard state.fatal == nil else { return }
            if vanished {
              // Stop here, leaving this image and the rest pending: every one would fail.
              state.fail(SAMBatchError.imagesFolderVanished(folder: self.runner.job.images.path))
              return
            }
            do {
              try self.store.commit(rows, runId: self.runId)
              let (processed, failed, masks) = state.record(
                failed: rows.failed != nil, masks: rows.masks.count)
              self.runner.progress(
                RunProgress(
                  processed: processed, failed: failed, toDo: total, masks: masks,
                  elapsed: Date().timeIntervalSince(start)))
            } catch {
              state.fail(error)
            }
          }
        }
      }
    }
    group.wait()
    if let error = state.fatal { throw error }
    return state.totals
  }

  private func read(_ id: Int) -> ImageWork<S.Embedding> {
    let started = DispatchTime.now()
    let entry = images[id] ?? ManifestImage(path: "", objects: [])
    let file =
      entry.path.hasPrefix("/")
      ? URL(fileURLWithPath: entry.path) : runner.job.images.appendingPathComponent(entry.path)
    var work = ImageWork<S.Embedding>(
      rows: ImageResult(imageId: id, exifApplied: runner.job.exif), file: file, started: started)
    do {
      let image = try ImageDecoder.decode(
        contentsOf: file, applyEXIFOrientation: runner.job.exif, maxPixels: runner.job.maxImagePixels)
      work.image = image
      work.rows.width = image.width
      work.rows.height = image.height
      work.prepared = entry.objects.map {
        PromptBuilder.prepare($0, width: image.width, height: image.height)
      }
    } catch let error as ImageError where !imagesFolderExists(for: entry.path) {
      work.rows.failed = error.localizedDescription
      work.folderVanished = true
    } catch let error as ImageError {
      // The decoder's messages name the file: say it once, and at most its first 200 characters.
      var message = error.localizedDescription
      if case .tooManyPixels = error { message += " (the job's max_image_pixels)" }
      work.rows.failed =
        file.path.count > 200 ? message.replacingOccurrences(of: file.path, with: quoted(file.path)) : message
    } catch {
      work.rows.failed = "\(quoted(file.path)): cannot read the image: \(error.localizedDescription)"
    }
    work.rows.readMs = milliseconds(since: started)
    return work
  }

  /// Whether the folder a manifest path is read from still exists (an absolute path has none).
  private func imagesFolderExists(for path: String) -> Bool {
    guard !path.hasPrefix("/") else { return true }
    var isFolder: ObjCBool = false
    return FileManager.default.fileExists(atPath: runner.job.images.path, isDirectory: &isFolder)
      && isFolder.boolValue
  }

  private func encode(_ input: ImageWork<S.Embedding>) -> ImageWork<S.Embedding> {
    var work = input
    // No embedding needed when nothing is left to decode.
    guard work.rows.failed == nil, let image = work.image, work.prepared.contains(where: { $0.prompt != nil })
    else {
      work.image = nil
      return work
    }
    var waited = 0.0
    var embedMs = 0.0
    do {
      work.embedding = try withModel(&waited) {
        let t = DispatchTime.now()
        defer { embedMs = milliseconds(since: t) }
        return try segmenter.embed(image)
      }
    } catch {
      work.rows.failed = "the image encoder failed: \(error.localizedDescription)"
    }
    work.image = nil
    work.rows.embedMs = embedMs
    work.rows.waitMs = waited
    return work
  }

  /// Decode + post-process; total_ms runs from the start of reading to here (queue waits included).
  private func decode(_ input: ImageWork<S.Embedding>) -> ImageResult {
    var rows = decodePrompts(input)
    rows.totalMs = milliseconds(since: input.started)
    return rows
  }

  private func decodePrompts(_ input: ImageWork<S.Embedding>) -> ImageResult {
    var rows = input.rows
    guard rows.failed == nil else { return rows }
    let t = DispatchTime.now()
    var waited = 0.0
    rows.prompts = input.prepared.enumerated().map { promptRecord($1, index: $0) }
    guard let embedding = input.embedding else { return rows }
    // Prompts go to the model in chunks, each chunk's full-resolution masks turned into RLE rows
    // before the next: an image with hundreds of boxes must not hold hundreds of full-size masks.
    // (The engine gives every prompt the result it would have alone, so chunking changes nothing.)
    let valid = rows.prompts.filter { $0.error == nil }.map(\.promptIndex)
    let multimask = runner.job.prompts.multimask
    for start in stride(from: 0, to: valid.count, by: Self.promptsPerCall) {
      var pending = Array(valid[start..<min(start + Self.promptsPerCall, valid.count)])
      while !pending.isEmpty {
        do {
          let prompts = pending.map { input.prepared[$0].prompt! }
          let result = try withModel(&waited) {
            try segmenter.predict(embedding, prompts: prompts, multimask: multimask)
          }
          for (index, prediction) in zip(pending, result) {
            rows.masks += maskRows(prediction, promptIndex: index)
          }
          pending = []
        } catch MobileSAMError.invalidPrompt(let position, let reason)
          where pending.indices.contains(position)
        {
          // The model refused one prompt before doing any work: record it, retry the rest.
          rows.prompts[pending[position]].error = "the model refused the prompt: \(reason)"
          pending.remove(at: position)
        } catch {
          rows.failed = "the mask decoder failed: \(error.localizedDescription)"
          rows.prompts = []
          rows.masks = []
          return rows
        }
      }
    }
    // Its own work only: the time waiting for another image's model calls is wait_ms.
    rows.predictMs = milliseconds(since: t) - waited
    rows.waitMs = (rows.waitMs ?? 0) + waited
    return rows
  }

  private func promptRecord(_ prepared: PreparedPrompt, index: Int) -> PromptRecord {
    let o = prepared.object
    let points =
      o.points.isEmpty
      ? nil
      : "[" + o.points.map { "[\(pointText($0.x)), \(pointText($0.y)), \($0.label)]" }.joined(separator: ", ")
        + "]"
    return PromptRecord(
      promptIndex: index, sourceId: o.sourceId, categoryId: o.categoryId, category: o.category,
      detectorScore: o.detectorScore, box: prepared.usedBox, points: points, warning: prepared.warning,
      error: prepared.error)
  }

  private func maskRows(_ prediction: Prediction, promptIndex: Int) -> [MaskRecord] {
    var keep = Array(prediction.masks.indices)
    if runner.job.prompts.keep == .best, var best = keep.first {
      for i in keep where prediction.scores[i] > prediction.scores[best] { best = i }
      keep = [best]
    }
    // mask_index is the position in the reference's output (SamPredictor.predict): 0 with one
    // mask, 0-2 with multimask; keep: best keeps the index of the mask it keeps.
    return keep.map { i in
      let encoded = MaskRLE.summarize(prediction.masks[i])
      return MaskRecord(
        promptIndex: promptIndex, maskIndex: i, score: Double(prediction.scores[i]),
        stabilityScore: prediction.stabilityScores[i].map(Double.init), area: encoded.area,
        bbox: encoded.bbox, rle: encoded.counts)
    }
  }
}

/// Shortest text that reads back as the same Float.
func pointText(_ v: Float) -> String {
  v == v.rounded() && abs(v) < 1e7 ? String(Int(v)) : "\(v)"
}

func milliseconds(since start: DispatchTime) -> Double {
  Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}
