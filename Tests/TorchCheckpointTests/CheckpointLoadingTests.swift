import SAMTensor
import TorchCheckpoint
import XCTest

/// Valid files from Scripts/make_checkpoint_fixtures.py. The expected values are the script's
/// formulas recomputed here; every stored value is exact in float32, so comparisons are exact.
final class CheckpointLoadingTests: XCTestCase {
  func testEveryStorageTypeConvertsToFloat32() throws {
    let checkpoint = try loadFixture("dtypes.pt")
    try assertDTypes(checkpoint)
  }

  func testDeflatedEntriesReadLikeStoredOnes() throws {
    try assertDTypes(try loadFixture("dtypes_deflated.pt"))
  }

  private func assertDTypes(_ checkpoint: Checkpoint, file: StaticString = #filePath, line: UInt = #line)
    throws
  {
    let t = checkpoint.tensors
    XCTAssertEqual(
      Set(t.keys),
      [
        "float32", "float16", "float16_special", "bfloat16", "bfloat16_special", "float64", "int64", "int32",
        "int16", "int8", "uint8", "bool", "scalar", "empty",
      ], file: file, line: line)

    XCTAssertEqual(t["float32"]?.shape, [2, 3, 4], file: file, line: line)
    XCTAssertEqual(t["float32"]?.data, (0..<24).map { Float($0) * 0.5 - 3 }, file: file, line: line)
    XCTAssertEqual(t["float16"]?.data, (-8..<8).map { Float($0) * 0.25 }, file: file, line: line)
    let half = try XCTUnwrap(t["float16_special"]?.data, file: file, line: line)
    XCTAssertEqual(Array(half.prefix(3)), [65504, 0x1p-24, 0x1p-14], file: file, line: line)
    XCTAssertEqual(half[3].bitPattern, (-Float(0)).bitPattern, "-0 keeps its sign", file: file, line: line)
    XCTAssertEqual(Array(half[4...5]), [.infinity, -.infinity], file: file, line: line)
    XCTAssertTrue(half[6].isNaN, file: file, line: line)
    XCTAssertEqual(t["bfloat16"]?.data, (-6..<6).map { Float($0) * 0.5 }, file: file, line: line)
    XCTAssertEqual(t["bfloat16_special"]?.data, [0x1p100, -0x1p-100, 3 * 0x1p-131], file: file, line: line)
    XCTAssertEqual(t["float64"]?.data, [1.5, -2.25, Float(Double(1e-3))], file: file, line: line)
    XCTAssertEqual(t["int64"]?.data, (-5..<5).map { Float($0) } + [0x1p40], file: file, line: line)
    XCTAssertEqual(t["int32"]?.data, (-3..<3).map { Float($0) }, file: file, line: line)
    XCTAssertEqual(t["int16"]?.data, [-32768, 32767, 5], file: file, line: line)
    XCTAssertEqual(t["int8"]?.data, [-128, 127, 0], file: file, line: line)
    XCTAssertEqual(t["uint8"]?.data, [0, 255, 7], file: file, line: line)
    XCTAssertEqual(t["bool"]?.data, [1, 0, 1], file: file, line: line)
    XCTAssertEqual(t["scalar"]?.shape, [], file: file, line: line)
    XCTAssertEqual(t["scalar"]?.data, [3.5], file: file, line: line)
    XCTAssertEqual(t["empty"]?.shape, [0, 3], file: file, line: line)
    XCTAssertEqual(t["empty"]?.data, [], file: file, line: line)

    let types = checkpoint.scalarTypes
    let expected: [String: ScalarType] = [
      "float32": .float32, "float16": .float16, "float16_special": .float16, "bfloat16": .bfloat16,
      "bfloat16_special": .bfloat16, "float64": .float64, "int64": .int64, "int32": .int32, "int16": .int16,
      "int8": .int8, "uint8": .uint8, "bool": .bool, "scalar": .float32, "empty": .float32,
    ]
    XCTAssertEqual(types, expected, file: file, line: line)
  }

  func testNonContiguousViewsAreReadInRowMajorOrder() throws {
    let t = try loadFixture("views.pt").tensors
    // arange(12).reshape(3, 4).t(): element (i, j) is 4j + i.
    XCTAssertEqual(t["transposed"]?.shape, [4, 3])
    XCTAssertEqual(t["transposed"]?.data, grid([4, 3]) { Float(4 * $0[1] + $0[0]) })
    // arange(20).reshape(4, 5)[1:3, 2:5]: storage offset 7.
    XCTAssertEqual(t["sliced"]?.shape, [2, 3])
    XCTAssertEqual(t["sliced"]?.data, grid([2, 3]) { Float(5 * ($0[0] + 1) + $0[1] + 2) })
    // float16 arange(24).reshape(2, 3, 4).permute(2, 0, 1): element (c, a, b) is 12a + 4b + c.
    XCTAssertEqual(t["permuted_half"]?.shape, [4, 2, 3])
    XCTAssertEqual(t["permuted_half"]?.data, grid([4, 2, 3]) { Float(12 * $0[1] + 4 * $0[2] + $0[0]) })
    // arange(3).expand(2, 3): stride 0 repeats the storage.
    XCTAssertEqual(t["expanded"]?.shape, [2, 3])
    XCTAssertEqual(t["expanded"]?.data, [0, 1, 2, 0, 1, 2])
  }

  func testTensorsSharingOneStorage() throws {
    let t = try loadFixture("views.pt").tensors
    XCTAssertEqual(t["shared_whole"]?.data, (0..<10).map { Float($0) })
    XCTAssertEqual(t["shared_tail"]?.data, (5..<10).map { Float($0) })
    // base.view(2, 5)[:, ::2]: element (i, j) is 5i + 2j.
    XCTAssertEqual(t["shared_strided"]?.shape, [2, 3])
    XCTAssertEqual(t["shared_strided"]?.data, grid([2, 3]) { Float(5 * $0[0] + 2 * $0[1]) })
  }

  func testModuleStateDictUnderAnotherPrefixWithMetadata() throws {
    // Saved as mobile_sam.pt (entries under mobile_sam/), then renamed; _metadata comes from the module tree.
    let checkpoint = try loadFixture("module_other_prefix.pt")
    XCTAssertEqual(
      Set(checkpoint.tensors.keys),
      [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked",
      ])
    XCTAssertEqual(checkpoint.tensors["0.weight"]?.shape, [3, 2, 1, 1])
    XCTAssertEqual(checkpoint.tensors["0.weight"]?.data, (0..<6).map { Float($0) })
    XCTAssertEqual(checkpoint.tensors["0.bias"]?.data, [-1, 0, 1])
    XCTAssertEqual(checkpoint.tensors["1.running_var"]?.data, [1, 1, 1])
    XCTAssertEqual(checkpoint.tensors["1.num_batches_tracked"]?.shape, [])
    XCTAssertEqual(checkpoint.tensors["1.num_batches_tracked"]?.data, [7])
    XCTAssertEqual(checkpoint.scalarTypes["1.num_batches_tracked"], .int64)
  }

  #if !(os(macOS) && arch(x86_64))  // Float16 is unavailable on Intel macOS
    func testEveryFloat16BitPatternConvertsExactly() throws {
      let bits = try XCTUnwrap(loadFixture("every_float16.pt").tensors["bits"])
      XCTAssertEqual(bits.shape, [65536])
      var mismatches = 0
      for (index, value) in bits.data.enumerated() {
        let expected = Float(Float16(bitPattern: UInt16(index)))
        // NaN payloads may be quieted by the reference conversion: compare NaN-ness and sign only.
        let same =
          expected.isNaN
          ? value.isNaN && value.sign == expected.sign : value.bitPattern == expected.bitPattern
        if !same {
          mismatches += 1
          if mismatches <= 3 { XCTFail("float16 bits \(index): got \(value), expected \(expected)") }
        }
      }
      XCTAssertEqual(mismatches, 0)
    }
  #endif

  func testCheckpointBuiltInMemoryDefaultsToFloat32() {
    let checkpoint = Checkpoint(tensors: ["a": Tensor(zeros: [2])], scalarTypes: [:])
    XCTAssertEqual(checkpoint.scalarTypes, ["a": .float32])
  }
}

/// Row-major values of `shape` given by `value(index)`.
private func grid(_ shape: [Int], _ value: ([Int]) -> Float) -> [Float] {
  var result: [Float] = []
  var index = [Int](repeating: 0, count: shape.count)
  for _ in 0..<shape.reduce(1, *) {
    result.append(value(index))
    var dimension = shape.count - 1
    while dimension >= 0 {
      index[dimension] += 1
      if index[dimension] < shape[dimension] { break }
      index[dimension] = 0
      dimension -= 1
    }
  }
  return result
}

/// Pickle variants torch.save can write besides the common case.
final class CheckpointPickleVariantTests: XCTestCase {
  func testMemoBeyondOneByte() throws {
    let t = try loadFixture("many_tensors.pt").tensors
    XCTAssertEqual(t.count, 301)
    for index in 0..<300 { XCTAssertEqual(t["t\(index)"]?.data, [Float(index), -Float(index)], "t\(index)") }
    XCTAssertEqual(t["alias"]?.data, [-299])
  }

  func testPickleProtocol4() throws {
    // The views fixture again, saved with pickle_protocol=4: FRAME, MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE.
    let expected = try loadFixture("views.pt").tensors
    let actual = try loadFixture("protocol4.pt").tensors
    XCTAssertEqual(actual, expected)
    XCTAssertEqual(actual.count, 7)
  }
}

extension CheckpointPickleVariantTests {
  func testParametersSavedWithKeepVars() throws {
    // Linear(2, 1) with weight [[1.5, -2]] and bias [0.25], pickled through _rebuild_parameter.
    let t = try loadFixture("parameters.pt").tensors
    XCTAssertEqual(t["weight"], Tensor(shape: [1, 2], data: [1.5, -2]))
    XCTAssertEqual(t["bias"], Tensor(shape: [1], data: [0.25]))
  }

  func testRepeatedKeyKeepsTheLaterValue() throws {
    let t = try loadFixture("repeated_key.pt").tensors
    XCTAssertEqual(Array(t.keys), ["w1"])
    XCTAssertEqual(t["w1"]?.data, [3, 4])
  }
}

extension CheckpointPickleVariantTests {
  func testOlderTorchLayoutWithoutByteOrderOrFormatEntries() throws {
    // Only mobile_sam/data.pkl, mobile_sam/data/0 and mobile_sam/version; weight = arange(6).reshape(2, 3).
    let t = try loadFixture("old_layout.pt").tensors
    XCTAssertEqual(t["weight"], Tensor(shape: [2, 3], data: [0, 1, 2, 3, 4, 5]))
  }
}
