// Copies that change layout: permutation, padding, cropping.

/// torch's x.permute(perm).contiguous(): result.shape[i] = x.shape[perm[i]].
/// Dimensions that stay adjacent and in order are merged first, so most permutations of the
/// model reduce to copying contiguous runs or to a blocked 2-D transpose of runs.
public func permute(_ x: Tensor, _ perm: [Int]) -> Tensor {
  precondition(
    perm.count == x.shape.count && perm.sorted() == Array(0..<perm.count),
    "permute: \(perm) is not a permutation of the dimensions of \(x.shape)")
  let outShape = perm.map { x.shape[$0] }
  guard x.count > 0 else { return Tensor(shape: outShape, data: []) }
  let plan = PermutePlan(shape: x.shape, perm: perm)
  if plan.sizes.count <= 1 { return x.reshaped(outShape) }
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      plan.copy(from: xp.baseAddress!, to: out)
    }
  }
}

/// A permutation reduced to its essential dimensions: output dimension i has `sizes[i]` entries
/// spaced `strides[i]` apart in the input.
struct PermutePlan {
  var sizes: [Int] = []
  var strides: [Int] = []

  init(shape: [Int], perm: [Int]) {
    var inputStrides = [Int](repeating: 1, count: shape.count)
    for d in stride(from: shape.count - 2, through: 0, by: -1) {
      inputStrides[d] = inputStrides[d + 1] * shape[d + 1]
    }
    for d in perm where shape[d] != 1 {
      // Merge with the previous output dimension when it is the next-outer input dimension.
      if let lastStride = strides.last, let lastSize = sizes.last,
        lastStride == inputStrides[d] * shape[d]
      {
        sizes[sizes.count - 1] = lastSize * shape[d]
        strides[strides.count - 1] = inputStrides[d]
      } else {
        sizes.append(shape[d])
        strides.append(inputStrides[d])
      }
    }
  }

  func copy(from input: UnsafePointer<Float>, to out: UnsafeMutablePointer<Float>) {
    let dims = sizes.count
    let innerSize = sizes[dims - 1]
    if strides[dims - 1] == 1 {
      // Contiguous runs of innerSize values.
      let runs = sizes.dropLast().reduce(1, *)
      parallelForChunksIfLarge(runs, work: runs * innerSize) { range in
        for run in range {
          (out + run * innerSize).update(from: input + offset(ofRun: run, dims: dims - 1), count: innerSize)
        }
      }
      return
    }
    // The innermost output dimension is strided. When the input's contiguous dimension is among
    // the outer output dimensions (it always is), transpose [a, b] tiles: out[.., i, .., j] reads
    // input[.., j, .., i] with i contiguous in the input.
    guard let contiguous = strides.firstIndex(of: 1) else {
      preconditionFailure("permute: no contiguous input dimension in \(strides)")
    }
    // Outer dims: everything except `contiguous` and the last; each outer index is one 2-D
    // transpose of [sizes[contiguous], innerSize] from input strides [1, strides[last]] to
    // output strides [outputStride(contiguous), 1].
    var outputStrides = [Int](repeating: 1, count: dims)
    for d in stride(from: dims - 2, through: 0, by: -1) {
      outputStrides[d] = outputStrides[d + 1] * sizes[d + 1]
    }
    var outerSizes: [Int] = []
    var outerInputStrides: [Int] = []
    var outerOutputStrides: [Int] = []
    for d in 0..<(dims - 1) where d != contiguous {
      outerSizes.append(sizes[d])
      outerInputStrides.append(strides[d])
      outerOutputStrides.append(outputStrides[d])
    }
    let outerCount = outerSizes.reduce(1, *)
    let rows = sizes[contiguous]
    let transpose = TransposeShape(
      rows: rows, columns: innerSize, inputColumnStride: strides[dims - 1],
      outputRowStride: outputStrides[contiguous])
    let total = outerCount * rows * innerSize
    if outerCount == 1 {
      // One big transpose: split its columns across threads.
      parallelForChunksIfLarge(innerSize, work: total) { range in
        transposeTile(input, out, shape: transpose, columns: range)
      }
      return
    }
    parallelForChunksIfLarge(outerCount, work: total) { range in
      for outer in range {
        var rest = outer
        var inOffset = 0
        var outOffset = 0
        for d in stride(from: outerSizes.count - 1, through: 0, by: -1) {
          let index = rest % outerSizes[d]
          rest /= outerSizes[d]
          inOffset += index * outerInputStrides[d]
          outOffset += index * outerOutputStrides[d]
        }
        transposeTile(input + inOffset, out + outOffset, shape: transpose, columns: 0..<innerSize)
      }
    }
  }

  /// Input offset of the run-th contiguous run when the last dimension has input stride 1.
  private func offset(ofRun run: Int, dims: Int) -> Int {
    var rest = run
    var result = 0
    for d in stride(from: dims - 1, through: 0, by: -1) {
      result += (rest % sizes[d]) * strides[d]
      rest /= sizes[d]
    }
    return result
  }
}

struct TransposeShape {
  var rows: Int
  var columns: Int
  var inputColumnStride: Int
  var outputRowStride: Int
}

/// out[i * outputRowStride + j] = input[i + j * inputColumnStride] for i < rows, j in columns,
/// in 16 x 16 blocks so both sides stay in cache.
private func transposeTile(
  _ input: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, shape: TransposeShape,
  columns: Range<Int>
) {
  let block = 16
  var i0 = 0
  while i0 < shape.rows {
    let i1 = min(i0 + block, shape.rows)
    var j0 = columns.lowerBound
    while j0 < columns.upperBound {
      let j1 = min(j0 + block, columns.upperBound)
      for i in i0..<i1 {
        let dst = out + i * shape.outputRowStride
        for j in j0..<j1 { dst[j] = input[i + j * shape.inputColumnStride] }
      }
      j0 = j1
    }
    i0 = i1
  }
}

/// parallelForChunks when `work` (values copied) is large, else one inline call.
func parallelForChunksIfLarge(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
  guard count > 0 else { return }
  if work < parallelElementThreshold { body(0..<count) } else { parallelForChunks(count, body) }
}

/// Zero-pads x [H, W, C] at the bottom and right: -> [H + bottom, W + right, C].
public func padBottomRight(_ x: Tensor, bottom: Int, right: Int) -> Tensor {
  precondition(x.shape.count == 3, "padBottomRight: input must be [H, W, C], got \(x.shape)")
  precondition(bottom >= 0 && right >= 0, "padBottomRight: negative padding \(bottom), \(right)")
  let (height, width, channels) = (x.shape[0], x.shape[1], x.shape[2])
  let outW = width + right
  let outShape = [height + bottom, outW, channels]
  if bottom == 0 && right == 0 { return x }
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      guard let input = xp.baseAddress else {
        out.update(repeating: 0, count: outShape.reduce(1, *))
        return
      }
      parallelForChunksIfLarge(height + bottom, work: outShape.reduce(1, *)) { range in
        for row in range {
          let dst = out + row * outW * channels
          if row < height {
            dst.update(from: input + row * width * channels, count: width * channels)
            (dst + width * channels).update(repeating: 0, count: right * channels)
          } else {
            dst.update(repeating: 0, count: outW * channels)
          }
        }
      }
    }
  }
}

/// Keeps the top-left [height, width] of x [H, W, C]: -> [height, width, C].
public func cropTopLeft(_ x: Tensor, height: Int, width: Int) -> Tensor {
  precondition(x.shape.count == 3, "cropTopLeft: input must be [H, W, C], got \(x.shape)")
  precondition(
    height >= 0 && width >= 0 && height <= x.shape[0] && width <= x.shape[1],
    "cropTopLeft: [\(height), \(width)] does not fit in \(x.shape)")
  let (inW, channels) = (x.shape[1], x.shape[2])
  if height == x.shape[0] && width == inW { return x }
  let outShape = [height, width, channels]
  return Tensor(shape: outShape) { out in
    x.withUnsafeBufferPointer { xp in
      let input = xp.baseAddress!
      parallelForChunksIfLarge(height, work: outShape.reduce(1, *)) { range in
        for row in range {
          (out + row * width * channels).update(from: input + row * inW * channels, count: width * channels)
        }
      }
    }
  }
}

/// Columns `range` of x [N, M] -> [N, range.count].
public func columns(_ x: Tensor, _ range: Range<Int>) -> Tensor {
  precondition(
    x.shape.count == 2 && range.lowerBound >= 0 && range.upperBound <= x.shape[1],
    "columns: \(range) of \(x.shape)")
  let (rows, width, count) = (x.shape[0], x.shape[1], range.count)
  return Tensor(shape: [rows, count]) { out in
    x.withUnsafeBufferPointer { xp in
      for r in 0..<rows {
        (out + r * count).update(from: xp.baseAddress! + r * width + range.lowerBound, count: count)
      }
    }
  }
}

/// Matrices of N rows side by side, [N, M1], [N, M2], ... -> [N, width], zero past their columns
/// (width >= M1 + M2 + ...).
public func joinColumns(_ parts: [Tensor], width: Int) -> Tensor {
  guard let rows = parts.first?.shape.first else { return Tensor(zeros: [0, width]) }
  precondition(
    parts.allSatisfy { $0.shape.count == 2 && $0.shape[0] == rows }
      && parts.map { $0.shape[1] }.reduce(0, +) <= width,
    "joinColumns: \(parts.map(\.shape)) into \(width) columns")
  var out = Tensor(zeros: [rows, width])
  out.data.withUnsafeMutableBufferPointer { op in
    var first = 0
    for part in parts {
      let count = part.shape[1]
      part.withUnsafeBufferPointer { pp in
        for r in 0..<rows {
          (op.baseAddress! + r * width + first).update(from: pp.baseAddress! + r * count, count: count)
        }
      }
      first += count
    }
  }
  return out
}
