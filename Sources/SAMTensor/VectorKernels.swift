import CSAMKernels

/// The vector width of the kernels written in C (Sources/CSAMKernels): each is compiled for AVX2 +
/// FMA and for AVX-512, and the widest the CPU and OS support is used, so the same binary runs on
/// any x86-64-v3 machine. Both versions do the same operations in the same order: their results
/// are identical bit for bit.
public enum VectorKernels {
  public enum Width: Int32, Sendable {
    /// AVX-512 where available, else AVX2 (the default).
    case automatic = 0
    case avx2 = 1
    /// Falls back to AVX2 where the CPU lacks AVX-512.
    case avx512 = 2
  }

  /// Float lanes per vector in use: 8 (AVX2) or 16 (AVX-512).
  public static var lanes: Int { Int(sam_kernels_lanes()) }

  /// Chooses the width (for tests and benchmarks); returns the lanes now in use.
  @discardableResult
  public static func use(_ width: Width) -> Int { Int(sam_kernels_set_isa(width.rawValue)) }
}
