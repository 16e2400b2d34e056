import SAMTensor
import XCTest

/// Tensors whose values are borrowed (a checkpoint's file mapping, here a buffer of the test's
/// own) behave as array tensors: kernels give bit-identical results without copying them, and a
/// write copies them first so that the borrowed memory is never changed.
final class TensorStorageTests: XCTestCase {
  /// Memory a borrowed tensor points into; counts its own deinit to show who keeps it alive.
  final class Owner {
    let buffer: UnsafeMutableBufferPointer<Float>
    nonisolated(unsafe) static var freed = 0

    init(_ values: [Float]) {
      buffer = .allocate(capacity: values.count)
      _ = buffer.initialize(from: values)
    }

    deinit {
      buffer.deallocate()
      Owner.freed += 1
    }

    func tensor(_ shape: [Int]) -> Tensor {
      Tensor(shape: shape, borrowing: BorrowedFloats(UnsafeBufferPointer(buffer), owner: self))
    }
  }

  func testBorrowedTensorReadsLikeAnArrayTensor() {
    var random = SeededRandom(seed: 40)
    let array = random.tensor([6, 5])
    let borrowed = Owner(array.data).tensor([6, 5])
    XCTAssertTrue(borrowed.isBorrowed)
    XCTAssertFalse(array.isBorrowed)
    XCTAssertEqual(borrowed.count, 30)
    XCTAssertEqual(borrowed.data, array.data)
    XCTAssertEqual(borrowed, array)
    XCTAssertNotEqual(borrowed.reshaped([5, 6]), array, "same values, other shape")
    let reshaped = borrowed.reshaped([3, 10])
    XCTAssertTrue(reshaped.isBorrowed, "reshaping shares the values")
    XCTAssertEqual(reshaped.data, array.data)
  }

  func testKernelsGiveTheSameResultsOnBorrowedWeights() {
    var random = SeededRandom(seed: 41)
    let x = random.tensor([7, 12])
    let weight = random.tensor([9, 12])
    let bias = random.tensor([9])
    let (weightOwner, biasOwner) = (Owner(weight.data), Owner(bias.data))
    let (borrowedWeight, borrowedBias) = (weightOwner.tensor([9, 12]), biasOwner.tensor([9]))
    let residual = random.tensor([7, 9])
    XCTAssertEqual(
      linear(x, weight: borrowedWeight, bias: borrowedBias, activation: .gelu, residual: residual),
      linear(x, weight: weight, bias: bias, activation: .gelu, residual: residual))
    XCTAssertEqual(linear(x, weight: borrowedWeight, bias: nil), linear(x, weight: weight, bias: nil))
    XCTAssertEqual(permute(borrowedWeight, [1, 0]), permute(weight, [1, 0]))
    let image = random.tensor([5, 5, 3])
    let convWeight = random.tensor([4, 3, 3, 3])
    let convOwner = Owner(convWeight.data)
    XCTAssertEqual(
      conv2d(image, weight: convOwner.tensor([4, 3, 3, 3]), bias: nil, stride: 1, padding: 1),
      conv2d(image, weight: convWeight, bias: nil, stride: 1, padding: 1))
    let (normWeight, normBias) = (random.tensor([12]), random.tensor([12]))
    let (normWeightOwner, normBiasOwner) = (Owner(normWeight.data), Owner(normBias.data))
    XCTAssertEqual(
      layerNorm(x, weight: normWeightOwner.tensor([12]), bias: normBiasOwner.tensor([12]), eps: 1e-6),
      layerNorm(x, weight: normWeight, bias: normBias, eps: 1e-6))
    var sum = x
    addInPlace(&sum, Owner(x.data).tensor([7, 12]))
    XCTAssertEqual(sum, scale(x, by: 2))
    XCTAssertEqual(
      relativePositionTable(Owner(bias.data).tensor([3, 3]), size: 2),
      relativePositionTable(bias.reshaped([3, 3]), size: 2))
  }

  func testWritingABorrowedTensorCopiesItFirst() {
    let owner = Owner([1, 2, 3, 4])
    let borrowed = owner.tensor([2, 2])
    var written = borrowed
    written.data[0] = 10
    XCTAssertFalse(written.isBorrowed)
    XCTAssertEqual(written.data, [10, 2, 3, 4])
    XCTAssertEqual(borrowed.data, [1, 2, 3, 4])
    XCTAssertEqual(Array(owner.buffer), [1, 2, 3, 4], "the borrowed memory is never written")
    var inPlace = owner.tensor([4])
    geluInPlace(&inPlace)
    XCTAssertEqual(Array(owner.buffer), [1, 2, 3, 4])
    XCTAssertEqual(inPlace, gelu(Tensor(shape: [4], data: [1, 2, 3, 4])))
  }

  /// `data[i] = v` on an array tensor writes in place: the values stay where they were (a copy
  /// per write would make element loops quadratic).
  func testWritingAnArrayTensorDoesNotCopyIt() {
    var tensor = Tensor(zeros: [1000])
    let before = tensor.withUnsafeBufferPointer { $0.baseAddress }
    tensor.data[3] = 1
    tensor.data.withUnsafeMutableBufferPointer { $0[4] = 2 }
    XCTAssertEqual(tensor.withUnsafeBufferPointer { $0.baseAddress }, before)
    XCTAssertEqual(tensor.data[3], 1)
    XCTAssertEqual(tensor.data[4], 2)
  }

  func testBorrowedValuesLiveAsLongAsATensorUsesThem() {
    let freedBefore = Owner.freed
    var kept: Tensor?
    do {
      let owner = Owner([5, 6, 7])
      kept = owner.tensor([3]).reshaped([1, 3])
    }
    XCTAssertEqual(Owner.freed, freedBefore, "the tensor keeps its owner alive")
    XCTAssertEqual(kept?.data, [5, 6, 7])
    kept = nil
    XCTAssertEqual(Owner.freed, freedBefore + 1, "the last tensor gone, the owner goes")
  }
}
