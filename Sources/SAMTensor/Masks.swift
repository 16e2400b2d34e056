// Kernels for turning mask logits into masks: planar crop, thresholding, counting.

/// x [P, H, W] -> [P, height, width], keeping the top-left corner of each plane.
public func cropPlanes(_ x: Tensor, height: Int, width: Int) -> Tensor {
  let (planes, inHeight, inWidth) = (x.shape[0], x.shape[1], x.shape[2])
  precondition(
    height <= inHeight && width <= inWidth, "cropPlanes: \(height)x\(width) exceeds \(inHeight)x\(inWidth)")
  var out = [Float](repeating: 0, count: planes * height * width)
  x.data.withUnsafeBufferPointer { source in
    out.withUnsafeMutableBufferPointer { target in
      for p in 0..<planes {
        for y in 0..<height {
          let from = source.baseAddress! + (p * inHeight + y) * inWidth
          let to = target.baseAddress! + (p * height + y) * width
          to.update(from: from, count: width)
        }
      }
    }
  }
  return Tensor(shape: [planes, height, width], data: out)
}

/// 1 where x > threshold, else 0.
public func threshold(_ x: Tensor, above threshold: Float) -> [UInt8] {
  var out = [UInt8](repeating: 0, count: x.count)
  x.data.withUnsafeBufferPointer { source in
    out.withUnsafeMutableBufferPointer { target in
      thresholdKernel(source.baseAddress!, target.baseAddress!, source.count, threshold)
    }
  }
  return out
}

private func thresholdKernel(
  _ source: UnsafePointer<Float>, _ target: UnsafeMutablePointer<UInt8>, _ count: Int, _ threshold: Float
) {
  for i in 0..<count { target[i] = source[i] > threshold ? 1 : 0 }
}

/// The number of values > threshold.
public func countAbove(_ x: Tensor, _ threshold: Float) -> Int {
  x.data.withUnsafeBufferPointer { countAboveKernel($0.baseAddress!, $0.count, threshold) }
}

private func countAboveKernel(_ source: UnsafePointer<Float>, _ count: Int, _ threshold: Float) -> Int {
  var total = 0
  for i in 0..<count where source[i] > threshold { total += 1 }
  return total
}
