import Foundation
import XCTest

@testable import SAMTensor

final class ThreadsTests: XCTestCase {
  override func tearDown() {
    ComputeThreads.set(ProcessInfo.processInfo.activeProcessorCount)
    super.tearDown()
  }

  func testParallelForVisitsEveryIndexOnceForAnyThreadCount() {
    for threads in [1, 2, 3, 7] {
      ComputeThreads.set(threads)
      XCTAssertEqual(ComputeThreads.count, threads)
      for count in [0, 1, 2, 5, 64, 1001] {
        var visits = [Int](repeating: 0, count: count)
        visits.withUnsafeMutableBufferPointer { vp in
          parallelFor(count) { i in vp[i] += 1 }
        }
        XCTAssertEqual(visits, [Int](repeating: 1, count: count), "threads \(threads), count \(count)")
      }
    }
  }

  func testParallelForChunksAreContiguousAndDisjoint() {
    ComputeThreads.set(3)
    var owner = [Int](repeating: -1, count: 100)
    var chunks = [Int](repeating: 0, count: 1)
    let lock = NSLock()
    owner.withUnsafeMutableBufferPointer { op in
      parallelForChunks(100) { range in
        lock.lock()
        chunks[0] += 1
        lock.unlock()
        for i in range { op[i] = range.lowerBound }
      }
    }
    XCTAssertEqual(chunks[0], 3)
    XCTAssertEqual(Set(owner), [0, 34, 67])
  }

  func testSideBySideRunsEveryItemOnceAndMapKeepsOrder() {
    for threads in [1, 2, 3] {
      ComputeThreads.set(threads)
      for count in [0, 1, 2, 7, 100] {
        var visits = [Int](repeating: 0, count: count)
        visits.withUnsafeMutableBufferPointer { vp in
          sideBySide(count) { vp[$0] += 1 }
        }
        XCTAssertEqual(visits, [Int](repeating: 1, count: count), "threads \(threads), count \(count)")
        XCTAssertEqual(sideBySideMap(count) { $0 * $0 }, (0..<count).map { $0 * $0 })
      }
    }
  }

  /// Inside an item, a parallel loop gets the ranges it gets across the threads, one after the
  /// other on the item's thread (so its results are the same bits); a nested sideBySide runs inline.
  func testLoopsInsideSideBySideSplitAsAcrossThreads() {
    ComputeThreads.set(3)
    let lock = NSLock()
    var across: [Range<Int>] = []
    parallelForChunks(100) { range in lock.withLock { across.append(range) } }
    let inside = sideBySideMap(6) { _ -> ([Range<Int>], Set<Int>, [Int]) in
      var ranges: [Range<Int>] = []
      var threadIDs = Set<Int>()
      parallelForChunks(100) { range in
        ranges.append(range)  // one thread: no lock needed, and a race would show as a crash
        threadIDs.insert(Int(bitPattern: pthread_self()))
      }
      var nested: [Int] = []
      sideBySide(3) { nested.append($0) }
      return (ranges, threadIDs, nested)
    }
    for (ranges, threadIDs, nested) in inside {
      XCTAssertEqual(ranges, across.sorted { $0.lowerBound < $1.lowerBound })
      XCTAssertEqual(threadIDs.count, 1, "an item's loop ran on more than its own thread")
      XCTAssertEqual(nested, [0, 1, 2])
    }
  }

  /// Items of a last round that would leave half the threads or more idle (count % threads of
  /// them, at most threads / 2) run after the others, each with its loops split over the threads
  /// as when run alone; a fuller last round stays side by side.
  func testLastFewItemsRunOnAllThreads() {
    ComputeThreads.set(4)
    let lock = NSLock()
    for (count, sideBySideCount) in [(10, 8), (9, 8), (11, 11), (8, 8)] {
      var inside = [Bool](repeating: false, count: count)
      inside.withUnsafeMutableBufferPointer { slots in
        sideBySide(count) { index in
          var chunks = 0
          parallelForChunks(90) { _ in lock.withLock { chunks += 1 } }
          slots[index] = SideBySide.isActive
          XCTAssertEqual(chunks, 4, "item \(index) of \(count)")
        }
      }
      let expected = (0..<count).map { $0 < sideBySideCount }
      XCTAssertEqual(inside, expected, "\(count) items")
      XCTAssertFalse(SideBySide.isActive)
    }
  }

  /// `atMost: 1` runs the items one after the other, each on all threads; `atMost: 2` keeps at
  /// most two running at once.
  func testAtMostCapsTheItemsRunningAtOnce() {
    ComputeThreads.set(3)
    let lock = NSLock()
    var inside = [Bool](repeating: true, count: 5)
    inside.withUnsafeMutableBufferPointer { slots in
      sideBySide(5, atMost: 1) { index in slots[index] = SideBySide.isActive }
    }
    XCTAssertEqual(inside, [Bool](repeating: false, count: 5))
    var (running, most) = (0, 0)
    let squares = sideBySideMap(9, atMost: 2) { index -> Int in
      lock.withLock {
        running += 1
        most = max(most, running)
      }
      usleep(2_000)
      lock.withLock { running -= 1 }
      return index * index
    }
    XCTAssertEqual(squares, (0..<9).map { $0 * $0 })
    XCTAssertLessThanOrEqual(most, 2)
  }

  /// Workers run their loops inline, with the chunks of all the threads, while all are busy; once
  /// one has finished, the others' loops split over the threads again (same chunks), and a
  /// `sideBySide` inside a worker leaves the worker's mark as it found it.
  func testSideBySideWorkersRunInlineUntilOneFinishes() {
    ComputeThreads.set(2)
    let across = LoopRecord.ofOneLoop()
    let workers = SideBySideWorkers()
    let bothStarted = DispatchGroup()
    let firstDone = DispatchSemaphore(value: 0)
    let beforeDone = DispatchSemaphore(value: 0)
    bothStarted.enter()
    bothStarted.enter()
    let finisherLoop = LoopRecord()
    let finisher = Thread {
      workers.run {
        bothStarted.leave()
        bothStarted.wait()
        finisherLoop.record()
        beforeDone.wait()
      }
      workers.finished()
      firstDone.signal()
    }
    finisher.start()
    let (before, after) = (LoopRecord(), LoopRecord())
    var markKept = false
    workers.run {
      bothStarted.leave()
      bothStarted.wait()
      before.record()
      beforeDone.signal()
      firstDone.wait()
      after.record()
      sideBySide(4) { _ in }
      markKept = SideBySide.mark == Unmanaged.passUnretained(workers).toOpaque()
    }
    XCTAssertFalse(ComputeThreads.runLoopsInline, "the mark ends with the worker's run")
    for (name, loop) in [("finisher", finisherLoop), ("before", before)] {
      XCTAssertEqual(loop.inline, true, name)
      XCTAssertEqual(loop.threads, 1, name)
      XCTAssertEqual(loop.ranges, across.ranges, name)
    }
    XCTAssertEqual(after.inline, false)
    XCTAssertEqual(after.ranges, across.ranges)
    XCTAssertTrue(markKept, "sideBySide gave the worker its mark back")
  }

  /// Many short loops in a row, as a decode runs them: a worker that misses a loop it has no chunk
  /// in, or sees a new loop while another is set up, must neither skip nor repeat a chunk. Loops
  /// of 2, 3 and 4 chunks alternate (a worker idle in one is needed in the next); with spinning and
  /// without it (every wait sleeps).
  func testPoolRunsEveryChunkOnceOverManyShortLoops() {
    defer { setThreadSpinMicroseconds(100) }
    for spin in [100, 0] {
      setThreadSpinMicroseconds(spin)
      for round in 0..<3000 {
        let threads = 2 + round % 3
        ComputeThreads.set(threads)
        var visits = [Int](repeating: 0, count: 5)
        visits.withUnsafeMutableBufferPointer { vp in
          parallelForChunks(5) { range in
            for i in range { vp[i] += 1 }
          }
        }
        guard visits == [1, 1, 1, 1, 1] else {
          return XCTFail("spin \(spin) us, loop \(round) (\(threads) threads): visits \(visits)")
        }
      }
    }
  }

  /// A loop inside a chunk, and loops started by several threads at once, run another way
  /// (libdispatch) while the pool is taken: every index still once.
  func testNestedAndConcurrentLoopsEachVisitEveryIndexOnce() {
    ComputeThreads.set(2)
    var visits = [Int](repeating: 0, count: 6 * 10)
    visits.withUnsafeMutableBufferPointer { vp in
      parallelForChunks(6) { outer in
        for i in outer {
          parallelFor(10) { j in vp[i * 10 + j] += 1 }
        }
      }
    }
    XCTAssertEqual(visits, [Int](repeating: 1, count: 60))

    let callers = 4
    var counts = [Int](repeating: 0, count: callers * 1000)
    counts.withUnsafeMutableBufferPointer { cp in
      let shared = UncheckedPointer(base: cp.baseAddress!)
      DispatchQueue.concurrentPerform(iterations: callers) { caller in
        for _ in 0..<50 {
          parallelFor(1000) { shared.base[caller * 1000 + $0] += 1 }
        }
      }
    }
    XCTAssertEqual(counts, [Int](repeating: 50, count: callers * 1000))
  }

  func testSetClampsToOneThread() {
    ComputeThreads.set(0)
    XCTAssertEqual(ComputeThreads.count, 1)
  }

  func testReuseLargeAllocationsAppliesOnLinux() {
    #if os(Linux)
      XCTAssertTrue(TensorMemory.reuseLargeAllocations())
      // Allocations still work and are independent after the change.
      var a = Tensor(zeros: [1 << 24])
      let b = Tensor(zeros: [1 << 24])
      a.data[0] = 1
      XCTAssertEqual(b.data[0], 0)
    #else
      XCTAssertFalse(TensorMemory.reuseLargeAllocations())
    #endif
  }
}

/// The chunks one parallel loop ran, on how many threads, and whether loops ran inline.
private final class LoopRecord: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var ranges: [Range<Int>] = []
  private var threadIDs = Set<Int>()
  private(set) var inline: Bool?
  var threads: Int { threadIDs.count }

  static func ofOneLoop() -> LoopRecord {
    let record = LoopRecord()
    record.record()
    return record
  }

  /// Runs a parallel loop of 100 items (1 ms a chunk, so that threads could overlap) and records it.
  func record() {
    parallelForChunks(100) { range in
      lock.withLock {
        ranges.append(range)
        threadIDs.insert(Int(bitPattern: pthread_self()))
      }
      usleep(1_000)
    }
    lock.withLock {
      ranges.sort { $0.lowerBound < $1.lowerBound }
      inline = ComputeThreads.runLoopsInline
    }
  }
}

/// A buffer the concurrent callers of a test write at disjoint places.
private struct UncheckedPointer: @unchecked Sendable {
  let base: UnsafeMutablePointer<Int>
}
