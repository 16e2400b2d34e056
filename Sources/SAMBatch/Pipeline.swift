import Dispatch
import Foundation
import MobileSAM
import SAMImage
import SAMTensor

/// One image on its way through the pipeline.
private struct ImageWork<Embedding: Sendable>: Sendable {
  var rows: ImageResult
  var file: URL
  var image: RGBImage?
  var prepared: [PreparedPrompt] = []
  var embedding: Embedding?
  /// An everything image's masks, made in the encode stage (the generator embeds each crop).
  var generated: EverythingResult?
  var started: DispatchTime
  /// The image could not be read because the images folder itself is gone.
  var folderVanished = false
}

/// The images to do, handed out one at a time to the workers.
private final class WorkQueue: @unchecked Sendable {
  private let lock = NSLock()
  private let ids: [Int]
  private var position = 0

  init(_ ids: [Int]) { self.ids = ids }

  func next() -> Int? {
    lock.withLock {
      guard position < ids.count else { return nil }
      defer { position += 1 }
      return ids[position]
    }
  }
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
  /// Prompts per model call: bounds the low-resolution logits held at once (masks at original size
  /// are made and encoded one at a time, see Segmenter.predictMasks).
  static var promptsPerCall: Int { 16 }

  let runner: JobRunner
  let segmenter: S
  /// The images to do by id (their position in the job), with the objects to prompt.
  let images: [Int: ManifestImage]
  let store: ResultStore
  let runId: Int
  /// Held around every segmenter call when the calls take turns (see above).
  let computeLock = NSLock()
  /// False when each worker has the model to itself, one compute thread each (`runSideBySide`).
  var takesTurns = true

  /// `body` under the compute lock; adds the time spent waiting for the lock to `waited` (ms).
  private func withModel<T>(_ waited: inout Double, _ body: () throws -> T) rethrows -> T {
    guard takesTurns else { return try body() }
    let t = DispatchTime.now()
    computeLock.lock()
    waited += milliseconds(since: t)
    defer { computeLock.unlock() }
    return try body()
  }

  /// The thread plan (README, "Thread plan"): by default each of the `workers` threads takes
  /// whole images, one after another, with the model's loops inline on it, and when the images run
  /// out the last ones' loops split over all the threads (`SideBySideWorkers`). `--thread-plan
  /// turns` has the model's calls take turns on all threads while reading, RLE and writing overlap
  /// them, as everything jobs do unless told otherwise (`ThreadPlan.chosen`). Both give the same
  /// bits.
  func run(_ ids: [Int]) throws -> (processed: Int, failed: Int) {
    if ThreadPlan.chosen(runner.options.threadPlan, for: runner.job) == .sideBySide && runner.job.workers > 1
      && ids.count > 0
    {
      var sideBySide = self
      sideBySide.takesTurns = false
      return try sideBySide.runSideBySide(ids)
    }
    return try runTakingTurns(ids)
  }

  /// Each of `workers` threads reads, encodes, decodes and writes whole images, taking the next
  /// image to do as it finishes one; its parallel loops run inline while every worker is busy.
  private func runSideBySide(_ ids: [Int]) throws -> (processed: Int, failed: Int) {
    let state = PipelineState()
    let queue = WorkQueue(ids)
    let writer = NSLock()
    let workers = SideBySideWorkers()
    let group = DispatchGroup()
    let start = Date()
    // Fewer images than workers: no worker waits for another, so every loop splits over the threads.
    if ids.count < runner.job.workers { workers.finished() }
    for _ in 0..<min(runner.job.workers, ids.count) {
      group.enter()
      let thread = Thread {
        defer { group.leave() }
        workers.run {
          while state.fatal == nil, self.runner.options.stop.reason == nil, let id = queue.next() {
            let encoded = self.encode(self.read(id))
            let rows = self.decode(encoded)
            writer.withLock {
              self.finish(
                rows, vanished: encoded.folderVanished, state: state, start: start, total: ids.count)
            }
          }
        }
        workers.finished()
      }
      // As much stack as the main thread (Foundation gives secondary threads less).
      thread.stackSize = 8 << 20
      thread.start()
    }
    group.wait()
    if let error = state.fatal { throw error }
    return state.totals
  }

  /// Commits one image's rows and reports progress; called by one thread at a time.
  /// A finished image is committed even when another has stopped the run (side by side, the other
  /// worker's image can finish after it): its rows are complete, and a commit that fails again
  /// changes nothing (the first error is the one reported).
  private func finish(_ rows: ImageResult, vanished: Bool, state: PipelineState, start: Date, total: Int) {
    if vanished {
      // Stop here, leaving this image and the rest pending: every one would fail.
      state.fail(SAMBatchError.imagesFolderVanished(folder: runner.job.images.path))
      return
    }
    do {
      try store.commit(rows, runId: runId)
      let (processed, failed, masks) = state.record(failed: rows.failed != nil, masks: rows.masks.count)
      runner.progress(
        RunProgress(
          processed: processed, failed: failed, toDo: total, masks: masks,
          elapsed: Date().timeIntervalSince(start)))
    } catch {
      state.fail(error)
    }
  }

  private func runTakingTurns(_ ids: [Int]) throws -> (processed: Int, failed: Int) {
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
            self.finish(rows, vanished: vanished, state: state, start: start, total: total)
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
    if let parameters = runner.job.everything { return generate(input, parameters: parameters) }
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

  /// An everything image: the whole automatic mask generator in one model call (it embeds every
  /// crop, then decodes its points), so the stage that encodes does it all under the model lock.
  /// embed_ms is the generator's encoder time; predict_ms starts with its decoder and
  /// post-processing time (`everythingRows` adds the making of the rows).
  private func generate(_ input: ImageWork<S.Embedding>, parameters: EverythingParameters)
    -> ImageWork<S.Embedding>
  {
    var work = input
    guard work.rows.failed == nil, let image = work.image else { return work }
    work.image = nil
    var waited = 0.0
    do {
      let result = try withModel(&waited) { try segmenter.segmentEverything(image, parameters: parameters) }
      work.generated = result
      work.rows.embedMs = result.timings.embed
      work.rows.predictMs = result.timings.decode + result.timings.postprocess
    } catch {
      work.rows.failed = "the automatic mask generator failed: \(error.localizedDescription)"
    }
    work.rows.waitMs = waited
    return work
  }

  /// An everything image's rows: one prompt (the generator's grid: no category, box or points) and
  /// its masks in the generator's order, each with its point and crop box. No mask at all is an
  /// answer (nothing passed the filters): the image is done with zero masks.
  private func everythingRows(_ input: ImageWork<S.Embedding>, _ result: EverythingResult) -> ImageResult {
    var rows = input.rows
    guard rows.failed == nil else { return rows }
    let t = DispatchTime.now()
    rows.prompts = [
      PromptRecord(
        promptIndex: 0, sourceId: nil, categoryId: nil, category: nil, detectorScore: nil, box: nil,
        points: nil, warning: nil, error: nil)
    ]
    rows.masks = result.masks.enumerated().map { index, mask in
      MaskRecord(
        promptIndex: 0, maskIndex: index, score: Double(mask.predictedIou),
        stabilityScore: mask.stabilityScore.map(Double.init), area: mask.area,
        bbox: MaskRLE.bbox(runs: mask.runs, width: result.width, height: result.height), rle: mask.counts,
        point: [mask.pointX, mask.pointY], cropBox: mask.cropBox.xywh)
    }
    rows.predictMs = (rows.predictMs ?? 0) + milliseconds(since: t)
    return rows
  }

  /// Decode + post-process; total_ms runs from the start of reading to here (queue waits included).
  private func decode(_ input: ImageWork<S.Embedding>) -> ImageResult {
    var rows = input.generated.map { everythingRows(input, $0) } ?? decodePrompts(input)
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
    // Prompts go to the model in chunks, and each mask is turned into its RLE row as soon as it is
    // made: a 13000 x 13000 image with 16 boxes and multimask must not hold 48 full-size masks
    // (8 GB). (The engine gives every prompt the result it would have alone, so chunking changes
    // nothing.)
    let valid = rows.prompts.filter { $0.error == nil }.map(\.promptIndex)
    let multimask = runner.job.prompts.multimask
    for start in stride(from: 0, to: valid.count, by: Self.promptsPerCall) {
      var pending = Array(valid[start..<min(start + Self.promptsPerCall, valid.count)])
      while !pending.isEmpty {
        do {
          let prompts = pending.map { input.prepared[$0].prompt! }
          // Each mask becomes its RLE row as soon as it is made (see Segmenter.predictMasks).
          let positions = pending
          let made = try withModel(&waited) {
            try segmenter.predictMasks(
              embedding, prompts: prompts, multimask: multimask, wanted: masksToKeep
            ) { mask in
              maskRow(mask, promptIndex: positions[mask.promptIndex])
            }
          }
          rows.masks += made
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

  /// The masks of a prompt to make and store, by their scores: all of them, or (keep: best) the
  /// first of the highest score.
  private func masksToKeep(_ scores: [Float]) -> [Int] {
    guard runner.job.prompts.keep == .best, var best = scores.indices.first else {
      return Array(scores.indices)
    }
    for i in scores.indices where scores[i] > scores[best] { best = i }
    return [best]
  }

  // mask_index is the position in the reference's output (SamPredictor.predict): 0 with one
  // mask, 0-2 with multimask; keep: best keeps the index of the mask it keeps.
  private func maskRow(_ made: MadeMask, promptIndex: Int) -> MaskRecord {
    let encoded = MaskRLE.summarize(made.mask)
    return MaskRecord(
      promptIndex: promptIndex, maskIndex: made.maskIndex, score: Double(made.score),
      stabilityScore: made.stabilityScore.map(Double.init), area: encoded.area, bbox: encoded.bbox,
      rle: encoded.counts)
  }
}

/// Shortest text that reads back as the same Float.
func pointText(_ v: Float) -> String {
  v == v.rounded() && abs(v) < 1e7 ? String(Int(v)) : "\(v)"
}

func milliseconds(since start: DispatchTime) -> Double {
  Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e6
}
