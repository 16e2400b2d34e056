/// A dense float32 tensor in row-major order. The model keeps activations channels-last
/// (tokens x channels), so a 1x1 convolution or a linear layer is one GEMM.
///
/// Its values live in a Swift array, or, for large weights loaded from a checkpoint, in read-only
/// memory it borrows (the checkpoint's file mapping, kept alive while any tensor uses it: loading
/// then copies nothing, see TorchCheckpoint). Kernels read values through
/// `withUnsafeBufferPointer`, which never copies. `data` reads as an array, which for borrowed
/// values is a copy of all of them; writing through `data` first copies borrowed values into an
/// array of the tensor's own (copy-on-write), so borrowed memory is never written.
public struct Tensor: Sendable, Equatable {
  /// Dimensions, outermost first.
  public var shape: [Int]
  private var storage: Storage

  private enum Storage: Sendable {
    case array([Float])
    case borrowed(BorrowedFloats)
  }

  public init(shape: [Int], data: [Float]) {
    precondition(
      shape.reduce(1, *) == data.count,
      "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
    self.shape = shape
    self.storage = .array(data)
  }

  /// A tensor whose values are `values`, used in place (not copied).
  public init(shape: [Int], borrowing values: BorrowedFloats) {
    precondition(
      shape.reduce(1, *) == values.count,
      "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
    self.shape = shape
    self.storage = .borrowed(values)
  }

  public init(zeros shape: [Int]) {
    self.init(shape: shape, data: [Float](repeating: 0, count: shape.reduce(1, *)))
  }

  /// `shape.reduce(1, *)` values, row-major. A copy when the values are borrowed.
  public var data: [Float] {
    get {
      switch storage {
      case .array(let values): return values
      case .borrowed(let values): return Array(values.buffer)
      }
    }
    set { storage = .array(newValue) }
    _modify {
      var values = data
      // Our own reference goes first, so that `values` is unique and writes to it do not copy.
      storage = .array([])
      defer { storage = .array(values) }
      yield &values
    }
  }

  public var count: Int {
    switch storage {
    case .array(let values): return values.count
    case .borrowed(let values): return values.count
    }
  }

  /// Whether the values are borrowed memory rather than an array of the tensor's own.
  public var isBorrowed: Bool {
    if case .borrowed = storage { return true }
    return false
  }

  /// Calls `body` with the values, in place (never a copy).
  public func withUnsafeBufferPointer<Result>(
    _ body: (UnsafeBufferPointer<Float>) throws -> Result
  ) rethrows -> Result {
    switch storage {
    case .array(let values): return try values.withUnsafeBufferPointer(body)
    case .borrowed(let values): return try withExtendedLifetime(values) { try body(values.buffer) }
    }
  }

  public static func == (lhs: Tensor, rhs: Tensor) -> Bool {
    guard lhs.shape == rhs.shape else { return false }
    if case .array(let left) = lhs.storage, case .array(let right) = rhs.storage { return left == right }
    return lhs.withUnsafeBufferPointer { left in rhs.withUnsafeBufferPointer { left.elementsEqual($0) } }
  }
}

/// Read-only float32 values in memory that `owner` keeps valid for as long as it lives (a
/// checkpoint's file mapping). A class, so that a tensor holding it stays one word of storage.
public final class BorrowedFloats: @unchecked Sendable {
  /// The values; never written.
  public let buffer: UnsafeBufferPointer<Float>
  private let owner: AnyObject

  public init(_ buffer: UnsafeBufferPointer<Float>, owner: AnyObject) {
    self.buffer = buffer
    self.owner = owner
  }

  public var count: Int { buffer.count }
}

extension Tensor {
  /// Builds a tensor whose storage `fill` initializes completely (no zero-filling first).
  init(shape: [Int], filling fill: (UnsafeMutablePointer<Float>) -> Void) {
    let count = shape.reduce(1, *)
    let data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
      if count > 0 { fill(buffer.baseAddress!) }
      initialized = count
    }
    self.init(shape: shape, data: data)
  }

  /// The same values under another shape with the same element count (torch's `reshape`); they
  /// are shared, not copied.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    precondition(
      newShape.reduce(1, *) == count, "reshaped: shape \(newShape) for \(count) values of shape \(shape)")
    var result = self
    result.shape = newShape
    return result
  }
}

/// Calls `body` with the values of `tensor` in place, or with nil when there is no tensor.
func withValues<Result>(
  of tensor: Tensor?, _ body: (UnsafePointer<Float>?) throws -> Result
) rethrows -> Result {
  guard let tensor else { return try body(nil) }
  return try tensor.withUnsafeBufferPointer { try body($0.baseAddress) }
}
