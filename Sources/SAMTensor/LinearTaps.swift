// The interpolation taps of a bilinear resize along one axis (Resize.swift, ThresholdedResize.swift).

/// Interpolation indices and weights along one axis. The indices are 32-bit, as the C kernels
/// take them (sam_resize_row).
struct LinearTaps {
  var first: [Int32]
  var second: [Int32]
  var firstWeight: [Float]
  var secondWeight: [Float]

  init(inputSize: Int, outputSize: Int) {
    precondition(inputSize <= Int(Int32.max), "LinearTaps: input size \(inputSize) beyond 32-bit indices")
    let scale = Float(inputSize) / Float(outputSize)
    // Appended to local arrays: stores into the properties paid a uniqueness check each (this runs
    // for every mask, ~5,000 taps).
    var (first, second) = ([Int32](), [Int32]())
    var (firstWeight, secondWeight) = ([Float](), [Float]())
    first.reserveCapacity(outputSize)
    second.reserveCapacity(outputSize)
    firstWeight.reserveCapacity(outputSize)
    secondWeight.reserveCapacity(outputSize)
    for i in 0..<outputSize {
      // One rounding, as a fused multiply-add: torch's CPU kernel is compiled with FMA contraction,
      // and rounding the product first moves some weights by ~1e-6 (measured against torch 2.15).
      let source = max(0, Float(-0.5).addingProduct(scale, Float(i) + 0.5))
      let index = min(Int(source), inputSize - 1)
      let lambda = min(max(source - Float(index), 0), 1)
      let next = index + (index < inputSize - 1 ? 1 : 0)
      first.append(Int32(index))
      second.append(Int32(next))
      firstWeight.append(1 - lambda)
      secondWeight.append(lambda)
    }
    (self.first, self.second) = (first, second)
    (self.firstWeight, self.secondWeight) = (firstWeight, secondWeight)
  }

  func withPointers<R>(_ body: (LinearTapPointers) -> R) -> R {
    first.withUnsafeBufferPointer { f in
      second.withUnsafeBufferPointer { s in
        firstWeight.withUnsafeBufferPointer { fw in
          secondWeight.withUnsafeBufferPointer { sw in
            body(
              LinearTapPointers(
                first: f.baseAddress!, second: s.baseAddress!, firstWeight: fw.baseAddress!,
                secondWeight: sw.baseAddress!))
          }
        }
      }
    }
  }
}

struct LinearTapPointers {
  var first: UnsafePointer<Int32>
  var second: UnsafePointer<Int32>
  var firstWeight: UnsafePointer<Float>
  var secondWeight: UnsafePointer<Float>

  /// The taps from output index `start` on.
  func offset(by start: Int) -> LinearTapPointers {
    LinearTapPointers(
      first: first + start, second: second + start, firstWeight: firstWeight + start,
      secondWeight: secondWeight + start)
  }
}
