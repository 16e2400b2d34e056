#if os(Linux)
  import Glibc
#endif

/// Process-wide allocator tuning for tensor-sized buffers.
public enum TensorMemory {
  /// Asks glibc's malloc to serve large blocks from its heap and keep freed memory for reuse,
  /// instead of mapping fresh pages for every block above 32 MB and unmapping them on free.
  /// Every kernel returns a new tensor, so without this each 67 MB activation of the encoder's
  /// first stage costs ~16k page faults (measured: relu over 16.7M values 33 ms -> 11 ms CPU).
  /// The price is that the process keeps its peak heap size.
  ///
  /// It also keeps every thread on glibc's main arena (M_ARENA_MAX 1, unless the user set
  /// MALLOC_ARENA_MAX): the other arenas live in 64 MB heaps, so they serve blocks above that with
  /// fresh mappings whatever the threshold, and the pipeline's threads (Dispatch queues, workers)
  /// would pay those page faults on every activation, and hold a peak heap each. Measured on a
  /// 12-image job, side by side on 2 workers: 149 s with per-thread arenas, 114 s with one
  /// (one run, load average ~13). Call once at startup, from the executable; it does
  /// nothing where glibc's `mallopt` is unavailable. Returns whether it applied.
  @discardableResult
  public static func reuseLargeAllocations() -> Bool {
    #if os(Linux)
      // mallopt is declared in <malloc.h>, which the Glibc module does not export: look it up.
      guard let symbol = dlsym(nil, "mallopt") else { return false }
      typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
      let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
      let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
      let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
      let arenaMax: Int32 = -8  // M_ARENA_MAX
      let limit: Int32 = 1 << 30
      let oneArena = getenv("MALLOC_ARENA_MAX") != nil || mallopt(arenaMax, 1) == 1
      return mallopt(mmapThreshold, limit) == 1 && mallopt(trimThreshold, limit) == 1 && oneArena
    #else
      return false
    #endif
  }
}
