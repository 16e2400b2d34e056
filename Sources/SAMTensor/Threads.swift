import CBLAS
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
public func parallelForChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
  guard count > 0 else { return }
  let threads = min(ComputeThreads.count, count)
  if threads <= 1 {
    body(0..<count)
    return
  }
  // The body is not Sendable (it captures raw pointers); running disjoint chunks of it at once is
  // exactly this function's contract, which the callers uphold.
  withoutActuallyEscaping(body) { escapable in
    let shared = UncheckedSendableBody(body: escapable)
    DispatchQueue.concurrentPerform(iterations: threads) { chunk in
      shared.body(chunkRange(chunk, of: threads, count: count))
    }
  }
}

private struct UncheckedSendableBody: @unchecked Sendable {
  let body: (Range<Int>) -> Void
}

/// The `chunk`-th of `chunks` near-equal contiguous ranges of `0..<count`.
@inline(__always)
func chunkRange(_ chunk: Int, of chunks: Int, count: Int) -> Range<Int> {
  let base = count / chunks
  let extra = count % chunks
  let start = chunk * base + min(chunk, extra)
  return start..<(start + base + (chunk < extra ? 1 : 0))
}
