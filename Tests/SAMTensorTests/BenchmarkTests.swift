import Foundation
import SAMTensor
import XCTest

/// Times the kernels at the shapes MobileSAM uses. Prints only, never asserts on time (the VM is
/// noisy), so it is not part of the suite: run with
/// `SAMBATCH_KERNEL_BENCH=1 swift test --filter BenchmarkTests`.
final class BenchmarkTests: XCTestCase {
  /// Prints the best wall-clock time and the best process CPU time (all threads) of `repeats`
  /// runs, and the work rate per CPU second (robust when other processes share the machine).
  private func time(
    _ label: String, work: Double? = nil, unit: String = "", repeats: Int = 5, _ body: () -> Void
  ) {
    var bestWall = Double.infinity
    var bestCPU = Double.infinity
    for _ in 0..<repeats {
      let wall = DispatchTime.now().uptimeNanoseconds
      let cpu = processCPUSeconds()
      body()
      bestCPU = min(bestCPU, (processCPUSeconds() - cpu) * 1e3)
      bestWall = min(bestWall, Double(DispatchTime.now().uptimeNanoseconds - wall) / 1e6)
    }
    var line =
      "bench \(label): wall \(String(format: "%.2f", bestWall)) ms, cpu \(String(format: "%.2f", bestCPU)) ms"
    if let work { line += String(format: ", %.2f %@ per cpu-second", work / bestCPU / 1e6, unit) }
    print(line + " (threads \(ComputeThreads.count))")
  }

  private func processCPUSeconds() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
  }

  func testKernelTimesAtModelShapes() throws {
    guard ProcessInfo.processInfo.environment["SAMBATCH_KERNEL_BENCH"] == "1" else {
      throw XCTSkip("a benchmark, not a test: set SAMBATCH_KERNEL_BENCH=1 to print kernel timings")
    }
    // As the executable should: without it, every output above 32 MB is fresh pages.
    TensorMemory.reuseLargeAllocations()
    _ = linear(Tensor(zeros: [1, 1]), weight: Tensor(zeros: [1, 1]), bias: nil)  // selects the BLAS core
    print("bench OpenBLAS core \(BLASCore.name ?? "unknown"), upgraded to \(BLASCore.upgradedTo ?? "none")")
    var random = SeededRandom(seed: 90)
    let image = random.tensor([1024, 1024, 3])
    let patchWeight = random.tensor([32, 3, 3, 3])
    let patchBias = random.tensor([32])
    let flops1 = 2.0 * 512 * 512 * 32 * 27
    time("conv2d 3x3 s2 1024x1024x3 -> 32", work: flops1, unit: "GFLOP") {
      _ = conv2d(image, weight: patchWeight, bias: patchBias, stride: 2, padding: 1)
    }
    let half = random.tensor([512, 512, 32])
    let patchWeight2 = random.tensor([64, 32, 3, 3])
    time("conv2d 3x3 s2 512x512x32 -> 64", work: 2.0 * 256 * 256 * 64 * 288, unit: "GFLOP") {
      _ = conv2d(half, weight: patchWeight2, bias: nil, stride: 2, padding: 1)
    }
    let neck = random.tensor([64, 64, 256])
    let neckWeight = random.tensor([256, 256, 3, 3])
    time("conv2d 3x3 64x64x256 -> 256 (neck)", work: 2.0 * 4096 * 256 * 2304, unit: "GFLOP") {
      _ = conv2d(neck, weight: neckWeight, bias: nil, stride: 1, padding: 1)
    }
    let mbconv = random.tensor([256, 256, 256])
    let dwWeight = random.tensor([256, 1, 3, 3])
    let dwBias = random.tensor([256])
    time("depthwise 3x3 256x256x256", work: 256.0 * 256 * 256, unit: "G outputs") {
      _ = depthwiseConv2d(mbconv, weight: dwWeight, bias: dwBias, stride: 1, padding: 1)
    }
    let merge = random.tensor([128, 128, 160])
    let mergeWeight = random.tensor([160, 1, 3, 3])
    time("depthwise 3x3 s2 128x128x160", work: 64.0 * 64 * 160, unit: "G outputs") {
      _ = depthwiseConv2d(merge, weight: mergeWeight, bias: nil, stride: 2, padding: 1)
    }
    time("gelu 16.7M", work: 256.0 * 256 * 256, unit: "G values") { _ = gelu(mbconv) }
    var inPlace = mbconv
    time("geluInPlace 16.7M", work: 256.0 * 256 * 256, unit: "G values") { geluInPlace(&inPlace) }
    time("relu 16.7M", work: 256.0 * 256 * 256, unit: "G values") { _ = relu(mbconv) }
    time("add 16.7M", work: 256.0 * 256 * 256, unit: "G values") { _ = add(mbconv, mbconv) }
    let tokens = random.tensor([4096, 320])
    let lnWeight = random.tensor([320])
    let lnBias = random.tensor([320])
    time("layerNorm 4096x320", work: 4096.0 * 320, unit: "G values") {
      _ = layerNorm(tokens, weight: lnWeight, bias: lnBias, eps: 1e-5)
    }
    let fc1 = random.tensor([1280, 320])
    let fc1Bias = random.tensor([1280])
    time("linear 4096x320 -> 1280", work: 2.0 * 4096 * 320 * 1280, unit: "GFLOP") {
      _ = linear(tokens, weight: fc1, bias: fc1Bias)
    }
    let up = random.tensor([64, 64, 256])
    let upWeight = random.tensor([256, 64, 2, 2])
    time("convTranspose2d k2 64x64x256 -> 64", work: 2.0 * 4096 * 256 * 256, unit: "GFLOP") {
      _ = convTranspose2d(up, weight: upWeight, bias: nil, stride: 2)
    }
    for (label, groups, heads, n) in [
      ("stage 1", 361 * 4, 4, 49), ("stage 2", 25 * 5, 5, 196), ("stage 3", 100 * 10, 10, 49),
    ] {
      let q = random.tensor([groups, n, 32])
      let bias = random.tensor([heads, n, n])
      let flops = 4.0 * Double(groups * n * n * 32)
      time("attention \(label) G\(groups) N\(n) d32", work: flops, unit: "GFLOP") {
        _ = attention(q: q, k: q, v: q, bias: bias, scale: 0.17)
      }
    }
    let image8 = random.tensor([8, 4096, 16])
    let token8 = random.tensor([8, 7, 16])
    time("attention decoder image-to-token 8x4096x7") {
      _ = attention(q: image8, k: token8, v: token8, bias: nil, scale: 0.25)
    }
    time("attention decoder token-to-image 8x7x4096") {
      _ = attention(q: token8, k: image8, v: image8, bias: nil, scale: 0.25)
    }
    var scores = random.tensor([1444 * 49, 49])
    time("softmax 70756x49", work: Double(scores.count), unit: "G values") {
      softmaxLastDimension(&scores)
    }
    let grid = random.tensor([1, 19, 7, 19, 7, 128])
    time("permute window partition 133x133x128", work: Double(grid.count), unit: "G values") {
      _ = permute(grid, [0, 1, 3, 2, 4, 5])
    }
    time("permute transpose 4096x256", work: 4096.0 * 256, unit: "G values") {
      _ = permute(neck.reshaped([4096, 256]), [1, 0])
    }
    let lowRes = random.tensor([3, 256, 256])
    time("resize 3x256x256 -> 1024", work: 3.0 * 1024 * 1024, unit: "G outputs") {
      _ = resizeBilinear(lowRes, height: 1024, width: 1024)
    }
    let cropped = random.tensor([3, 685, 1024])
    time("resize 3x685x1024 -> 1500x2241", work: 3.0 * 1500 * 2241, unit: "G outputs") {
      _ = resizeBilinear(cropped, height: 1500, width: 2241)
    }
  }
}
