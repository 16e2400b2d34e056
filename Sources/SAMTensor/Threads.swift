import CBLAS
import CSAMKernels
import Dispatch
import Foundation

/// The number of threads our parallel loops use, GEMMs included: `sgemm` splits large products
/// into one block per thread and runs OpenBLAS single-threaded inside each (OpenBLAS's own thread
/// count stays 1).
public enum ComputeThreads {
  /// Sets the thread count; values below 1 mean 1.
  public static func set(_ count: Int) {
    let clamped = max(1, count)
    threadSetting.lock.lock()
    threadSetting.value = clamped
    threadSetting.lock.unlock()
  }

  /// Defaults to the active processor count.
  public static var count: Int {
    threadSetting.lock.lock()
    defer { threadSetting.lock.unlock() }
    return threadSetting.value
  }

  /// Whether the parallel loops of the calling thread run their chunks one after the other on it
  /// (inside an item of `sideBySide`, or of a `SideBySideWorkers` worker with others still busy).
  public static var runLoopsInline: Bool { SideBySide.isActive }
}

private final class ThreadSetting: @unchecked Sendable {
  let lock = NSLock()
  var value: Int

  init() {
    value = max(1, ProcessInfo.processInfo.activeProcessorCount)
    // GEMMs are parallelized by sgemm itself (GEMM.swift); OpenBLAS's pool would only compete.
    openblas_set_num_threads(1)
  }
}

private let threadSetting = ThreadSetting()

/// Runs `body(i)` for every `i` in `0..<count`, split into contiguous chunks over
/// `ComputeThreads.count` threads. Runs inline when there is one thread or one item.
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
  parallelForChunks(count) { range in
    for index in range { body(index) }
  }
}

/// Runs `body` on contiguous, disjoint ranges covering `0..<count`, one range per thread (so a
/// body can allocate scratch space once per range). Runs inline when there is one thread or one item.
/// Inside `sideBySide` the same ranges run one after the other on the calling thread: the work is
/// split exactly as it would be across the threads, so the results are the same bits.
public func parallelForChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
  guard count > 0 else { return }
  let threads = min(ComputeThreads.count, count)
  if threads <= 1 {
    body(0..<count)
    return
  }
  if SideBySide.isActive {
    for chunk in 0..<threads { body(chunkRange(chunk, of: threads, count: count)) }
    return
  }
  // The body is not Sendable (it captures raw pointers); running disjoint chunks of it at once is
  // exactly this function's contract, which the callers uphold.
  withoutActuallyEscaping(body) { escapable in
    var loop = PoolLoop(body: escapable, chunks: threads, count: count)
    // CSAMKernels' pool (thread_pool.c): workers that spin briefly between loops. When it is busy
    // (another thread's loop, or a loop inside one of its chunks), libdispatch's threads.
    let ran = withUnsafeMutablePointer(to: &loop) { sam_pool_run(threads, runPoolChunk, $0) }
    if ran != 0 {
      let shared = UncheckedSendableBody(body: escapable)
      DispatchQueue.concurrentPerform(iterations: threads) { chunk in
        shared.body(chunkRange(chunk, of: threads, count: count))
      }
    }
  }
}

/// How long the pool's threads spin for the next loop before they sleep (CSAMKernels'
/// `sam_pool_set_spin_microseconds`; 100 by default, 0 sleeps at once).
public func setThreadSpinMicroseconds(_ microseconds: Int) {
  sam_pool_set_spin_microseconds(UInt32(clamping: max(0, microseconds)))
}

private struct UncheckedSendableBody: @unchecked Sendable {
  let body: (Range<Int>) -> Void
}

/// A loop of `parallelForChunks` as the pool's chunks see it.
private struct PoolLoop {
  let body: (Range<Int>) -> Void
  let chunks: Int
  let count: Int
}

private func runPoolChunk(_ context: UnsafeMutableRawPointer?, _ chunk: Int) {
  let loop = context!.assumingMemoryBound(to: PoolLoop.self)
  loop.pointee.body(chunkRange(chunk, of: loop.pointee.chunks, count: loop.pointee.count))
}

/// The `chunk`-th of `chunks` near-equal contiguous ranges of `0..<count`.
@inline(__always)
func chunkRange(_ chunk: Int, of chunks: Int, count: Int) -> Range<Int> {
  let base = count / chunks
  let extra = count % chunks
  let start = chunk * base + min(chunk, extra)
  return start..<(start + base + (chunk < extra ? 1 : 0))
}

/// Runs `body(i)` for every `i` in `0..<count`, the items side by side: each of
/// `ComputeThreads.count` threads takes the next item as it finishes one, and every parallel loop
/// inside an item runs its chunks one after the other on that thread (`parallelForChunks`).
///
/// For many small, independent items (a prompt's decode, a mask's post-processing) this keeps
/// every core busy through the items' serial parts and saves a wake-up of the threads per loop,
/// while an item gives the same bits as when run alone with its loops split over the threads.
/// Runs in order on the calling thread when there is one thread or one item.
///
/// When the last round would leave at least half the threads idle (`count % threads` items, at
/// most `threads / 2`), those items run one after the other with their loops split over the
/// threads instead (3 prompts on 2 threads: two side by side, then the third on both, not alone on
/// one while the other waits). A fuller last round stays side by side, where it keeps more
/// threads busy. The bits are the same either way.
///
/// `atMost` caps how many items run at once (items that each hold much memory); 1 runs them one
/// after the other, each on all threads.
public func sideBySide(_ count: Int, atMost limit: Int = .max, _ body: (Int) -> Void) {
  guard count > 0 else { return }
  let threads = min(ComputeThreads.count, count, max(1, limit))
  if threads <= 1 || SideBySide.isActive {
    for index in 0..<count { body(index) }
    return
  }
  let tail = count % threads
  let together = tail <= threads / 2 ? count - tail : count
  let next = SideBySide.Counter()
  withoutActuallyEscaping(body) { escapable in
    let shared = UncheckedSendableItem(body: escapable)
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
      // The calling thread takes part, and may be a `SideBySideWorkers` worker: restore its mark.
      let mark = SideBySide.mark
      SideBySide.mark = SideBySide.itemMark
      defer { SideBySide.mark = mark }
      while let index = next.take(below: together) { shared.body(index) }
    }
  }
  for index in together..<count { body(index) }
}

/// `(0..<count).map(body)`, the items run `sideBySide` (at most `atMost` at once).
public func sideBySideMap<T>(_ count: Int, atMost limit: Int = .max, _ body: (Int) -> T) -> [T] {
  var results = [T?](repeating: nil, count: count)
  results.withUnsafeMutableBufferPointer { slots in
    sideBySide(count, atMost: limit) { slots[$0] = body($0) }
  }
  return results.map { $0! }
}

private struct UncheckedSendableItem: @unchecked Sendable {
  let body: (Int) -> Void
}

/// Threads that each run whole pieces of work of their own (a job's images, one per worker), with
/// every parallel loop inside run inline, as in an item of `sideBySide`, while the others are busy
/// too: no loop waits at a barrier for another thread, so a core taken away by another process
/// slows one worker instead of all of them. When the work runs out, a worker that stops calls
/// `finished()`, and from then on the other workers' loops split over all the threads again, so
/// the last pieces do not run on one core while the rest idle. A loop's chunks are those of
/// `ComputeThreads.count` threads either way, so the results are the same bits.
public final class SideBySideWorkers: @unchecked Sendable {
  private let lock = NSLock()
  private var allBusy = true

  public init() {}

  /// Runs `body` on the calling thread as one of the workers.
  public func run<T>(_ body: () throws -> T) rethrows -> T {
    let mark = SideBySide.mark
    SideBySide.mark = Unmanaged.passUnretained(self).toOpaque()
    defer { SideBySide.mark = mark }
    return try body()
  }

  /// Called by a worker that has nothing more to take: the others' loops use every thread now.
  public func finished() { lock.withLock { allBusy = false } }

  /// Whether the workers' loops still run inline.
  fileprivate var inline: Bool { lock.withLock { allBusy } }
}

/// Whether the current thread's loops run inline: a per-thread mark, `itemMark` inside an item of
/// `sideBySide`, a `SideBySideWorkers` inside one of its workers, none elsewhere.
enum SideBySide {
  static var isActive: Bool {
    guard let mark else { return false }
    return mark == itemMark || Unmanaged<SideBySideWorkers>.fromOpaque(mark).takeUnretainedValue().inline
  }

  static var mark: UnsafeMutableRawPointer? {
    get { pthread_getspecific(key) }
    set { pthread_setspecific(key, newValue) }
  }

  /// The mark of a `sideBySide` item (no object lives at this address).
  static var itemMark: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 1)! }

  private static let key: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
  }()

  /// Hands out 0, 1, 2, ... to the threads.
  final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0

    func take(below limit: Int) -> Int? {
      lock.withLock {
        guard value < limit else { return nil }
        defer { value += 1 }
        return value
      }
    }
  }
}
