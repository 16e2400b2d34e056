import Foundation

#if os(Linux)
  import Glibc
#endif

/// Which OpenBLAS kernels run our GEMMs, and a fix for CPUs OpenBLAS does not recognise.
///
/// OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from the CPU model number at load
/// time. 0.3.21 does not know recent Xeons (family 6 model 207 here) and falls back to "Prescott",
/// its SSE3 kernels: 4-5x slower sgemm than its AVX-512 ones on the same CPU (measured 24-31 vs
/// 94-142 GFLOP/s per thread). Before the first GEMM we check for that fallback and, when the CPU
/// reports AVX-512 (or AVX2 + FMA), re-run OpenBLAS's own core selection with OPENBLAS_CORETYPE
/// set, exactly as if the variable had been set before the process started. A user-set
/// OPENBLAS_CORETYPE is left alone.
public enum BLASCore {
  /// OpenBLAS's kernel family in use (e.g. "SkylakeX", "Haswell", "Prescott"), or nil when the BLAS
  /// library does not say (not OpenBLAS).
  public static var name: String? {
    _ = selection
    return currentCoreName()
  }

  /// The core we switched OpenBLAS to, or nil when we left its choice alone.
  public static var upgradedTo: String? { selection }

  /// Runs once, before the first GEMM (swift_once makes concurrent first calls wait).
  static let selection: String? = upgradeFallbackCore()

  /// When the environment's OPENBLAS_CORETYPE holds OpenBLAS to kernels narrower than this CPU
  /// can run (e.g. "Haswell", AVX2, on an AVX-512 CPU): the value set and the kernels we would
  /// choose. Nil when the variable is unset, or when it does not hold the CPU back.
  public static var heldBackBy: (set: String, preferred: String)? {
    heldBack(
      coreType: ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], flags: cpuFlags(), current: name)
  }

  /// `heldBackBy`'s rule: OPENBLAS_CORETYPE `coreType`, the CPU's `flags`, OpenBLAS's `current` core.
  public static func heldBack(coreType: String?, flags: Set<String>, current: String?)
    -> (set: String, preferred: String)?
  {
    guard let coreType, !coreType.isEmpty, let preferred = preferredCore(forFlags: flags),
      let current = current?.lowercased()
    else { return nil }
    let avx512 = ["skylakex", "cooperlake", "sapphirerapids"]
    let enough = preferred == "SkylakeX" ? avx512 : avx512 + ["haswell", "zen"]
    return enough.contains(current) ? nil : (coreType, preferred)
  }

  /// The OpenBLAS core type for a CPU with these /proc/cpuinfo flags, or nil to keep OpenBLAS's
  /// choice: "SkylakeX" with AVX-512 (F, BW, DQ, VL), "Haswell" with AVX2 and FMA.
  public static func preferredCore(forFlags flags: Set<String>) -> String? {
    if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
    if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
    return nil
  }
}

private typealias CoreNameFunction = @convention(c) () -> UnsafeMutablePointer<CChar>?
private typealias VoidFunction = @convention(c) () -> Void

private func lookUp(_ symbol: String) -> UnsafeMutableRawPointer? {
  #if os(Linux)
    return dlsym(nil, symbol)
  #else
    return nil
  #endif
}

private func currentCoreName() -> String? {
  guard let symbol = lookUp("openblas_get_corename") else { return nil }
  let function = unsafeBitCast(symbol, to: CoreNameFunction.self)
  return function().map { String(cString: $0) }
}

private func upgradeFallbackCore() -> String? {
  #if os(Linux) && arch(x86_64)
    guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
      currentCoreName()?.lowercased() == "prescott",
      let target = BLASCore.preferredCore(forFlags: cpuFlags()),
      let quit = lookUp("gotoblas_dynamic_quit"), let initialize = lookUp("gotoblas_dynamic_init")
    else { return nil }
    setenv("OPENBLAS_CORETYPE", target, 1)
    // gotoblas_dynamic_quit only clears the kernel table pointer; init selects it again from
    // OPENBLAS_CORETYPE. No GEMM is running yet (this runs before our first one).
    unsafeBitCast(quit, to: VoidFunction.self)()
    unsafeBitCast(initialize, to: VoidFunction.self)()
    unsetenv("OPENBLAS_CORETYPE")
    return currentCoreName()?.lowercased() == target.lowercased() ? target : nil
  #else
    return nil
  #endif
}

/// The flags of the first processor in /proc/cpuinfo (empty when unreadable).
func cpuFlags() -> Set<String> {
  guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return [] }
  for line in text.split(separator: "\n") where line.hasPrefix("flags") {
    guard let colon = line.firstIndex(of: ":") else { continue }
    return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
  }
  return []
}
