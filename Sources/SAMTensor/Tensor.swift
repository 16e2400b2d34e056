/// A dense float32 tensor in row-major order. The model keeps activations channels-last
/// (tokens x channels), so a 1x1 convolution or a linear layer is one GEMM.
public struct Tensor: Sendable, Equatable {
  /// Dimensions, outermost first.
  public var shape: [Int]
  /// `shape.reduce(1, *)` values, row-major.
  public var data: [Float]

  public init(shape: [Int], data: [Float]) {
    precondition(
      shape.reduce(1, *) == data.count,
      "Tensor: shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
    self.shape = shape
    self.data = data
  }

  public init(zeros shape: [Int]) {
    self.shape = shape
    self.data = [Float](repeating: 0, count: shape.reduce(1, *))
  }

  public var count: Int { data.count }
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

  /// The same values under another shape with the same element count (torch's `reshape`).
  public func reshaped(_ newShape: [Int]) -> Tensor {
    Tensor(shape: newShape, data: data)
  }
}
