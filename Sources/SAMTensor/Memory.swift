#if os(Linux)
  import Glibc
#endif

/// Process-wide allocator tuning for tensor-sized buffers.
public enum TensorMemory {
  /// Asks glibc's malloc to serve large blocks from its heap and keep freed memory for reuse,
  /// instead of mapping fresh pages for every block above 32 MB and unmapping them on free.
  /// Every kernel returns a new tensor, so without this each 67 MB activation of the encoder's
  /// first stage costs ~16k page faults (measured: relu over 16.7M values 33 ms -> 11 ms CPU).
  /// The price is that the process keeps its peak heap size. Call once at startup, from the
  /// executable; it does nothing where glibc's `mallopt` is unavailable. Returns whether it applied.
  @discardableResult
  public static func reuseLargeAllocations() -> Bool {
    #if os(Linux)
      // mallopt is declared in <malloc.h>, which the Glibc module does not export: look it up.
      guard let symbol = dlsym(nil, "mallopt") else { return false }
      typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
      let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
      let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
      let trimThreshold: Int32 = -1  // M_TRIM_THRESHOLD
      let limit: Int32 = 1 << 30
      return mallopt(mmapThreshold, limit) == 1 && mallopt(trimThreshold, limit) == 1
    #else
      return false
    #endif
  }
}
