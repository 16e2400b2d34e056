// swift-tools-version:6.2
// 6.2: packages that use unsafeFlags (our optimization flags below) can be versioned
// dependencies of other packages only from this tools version on.
import PackageDescription

// Kernels and model code are compiled with optimization even in debug builds, so the parity tests
// run in seconds rather than hours (measured: unoptimized SIMD code is 100-700x
// slower). On x86 we also ask clang for AVX2 + FMA (x86-64-v3, any x86 CPU since 2013); other
// hosts (aarch64 Linux, macOS) build with their defaults.
#if arch(x86_64)
  let cpuFlags = ["-Xcc", "-march=x86-64-v3"]
  let cFlags = ["-O2", "-march=x86-64-v3"]
#else
  let cpuFlags: [String] = []
  let cFlags = ["-O2"]
#endif
let fastSwift: [SwiftSetting] = [.unsafeFlags(["-O"] + cpuFlags)]
let fastC: [CSetting] = [.unsafeFlags(cFlags)]

let package = Package(
  name: "sambatch",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "sambatch", targets: ["sambatch"]),
    .library(name: "MobileSAM", targets: ["MobileSAM"]),
    .library(name: "SAMBatch", targets: ["SAMBatch"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    .package(url: "https://github.com/weichsel/ZIPFoundation", exact: "0.9.20"),
    .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
  ],
  targets: [
    // System libraries: module maps only.
    .systemLibrary(
      name: "CBLAS", pkgConfig: "openblas",
      providers: [.apt(["libopenblas-dev"])]),
    // JPEG and PNG decoding in C: libjpeg reports errors by longjmp, which Swift cannot do.
    .target(
      name: "CImageCodecs",
      cSettings: fastC,
      linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png")]),

    // Kernels compiled for AVX2 and for AVX-512, chosen at run time by the CPU (sam_kernels.h).
    .target(name: "CSAMKernels", cSettings: fastC),
    .target(name: "SAMTensor", dependencies: ["CBLAS", "CSAMKernels"], swiftSettings: fastSwift),
    .target(
      name: "TorchCheckpoint",
      dependencies: ["SAMTensor", "CSAMKernels", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
      swiftSettings: fastSwift),
    .target(name: "SAMImage", dependencies: ["CImageCodecs"], swiftSettings: fastSwift),
    .target(
      name: "MobileSAM", dependencies: ["SAMTensor", "TorchCheckpoint", "SAMImage"],
      swiftSettings: fastSwift),
    .target(
      name: "SAMBatch",
      dependencies: [
        "MobileSAM",
        .product(name: "Yams", package: "Yams"),
        .product(name: "GRDB", package: "GRDB.swift"),
        .product(name: "Crypto", package: "swift-crypto"),
      ],
      // Optimized in debug builds too: RLE encoding and mask statistics loop over every pixel of
      // every mask, and the runner's end-to-end tests would otherwise crawl.
      swiftSettings: fastSwift),
    // The deterministic fake model of the test suite; the binary offers it with
    // SAMBATCH_FAKE_SEGMENTER=1 (release builds too), the library never sees it.
    .target(
      name: "SAMBatchFakes", dependencies: ["SAMBatch", "MobileSAM", "SAMImage"], swiftSettings: fastSwift),
    .executableTarget(
      name: "sambatch",
      dependencies: [
        "SAMBatch", "SAMBatchFakes", .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ]),

    .target(name: "TestSupport", dependencies: ["SAMTensor"], path: "Tests/TestSupport"),
    .testTarget(
      name: "SAMTensorTests", dependencies: ["SAMTensor", "CSAMKernels", "TestSupport"],
      swiftSettings: fastSwift),
    .testTarget(
      name: "TorchCheckpointTests", dependencies: ["TorchCheckpoint", "CSAMKernels", "TestSupport"]),
    .testTarget(name: "SAMImageTests", dependencies: ["SAMImage", "TestSupport"]),
    .testTarget(
      name: "MobileSAMTests", dependencies: ["MobileSAM", "TestSupport"], swiftSettings: fastSwift
    ),
    .testTarget(name: "SAMBatchTests", dependencies: ["SAMBatch", "SAMBatchFakes", "TestSupport"]),
    // Compiles README.md's library example (Tests/ReadmeExample/ReadmeExampleTests.swift holds the same code).
    .testTarget(
      name: "ReadmeExampleTests", dependencies: ["MobileSAM", "SAMImage"], path: "Tests/ReadmeExample"),
    .testTarget(
      name: "CLITests", dependencies: ["TestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
  ]
)
