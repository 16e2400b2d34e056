import Foundation
import TestSupport
import TorchCheckpoint
import XCTest

/// Broken and hostile files from Scripts/make_checkpoint_fixtures.py: each must be refused with
/// a message naming the file and the cause, without crashing or allocating without bound.
final class CheckpointRejectionTests: XCTestCase {
  func testForeignGlobalsAreRefusedBeforeAnythingRuns() {
    let marker = URL(fileURLWithPath: "/tmp/sambatch-pwned")
    try? FileManager.default.removeItem(at: marker)
    assertRefused("evil_os_system.pt", mentioning: ["refusing pickle global os.system", "byte 2"])
    assertRefused("evil_builtins_eval.pt", mentioning: ["refusing pickle global builtins.eval"])
    assertRefused("evil_posix_system.pt", mentioning: ["refusing pickle global posix.system"])
    XCTAssertFalse(FileManager.default.fileExists(atPath: marker.path), "the pickle's command ran")
  }

  func testUnknownOpcode() {
    assertRefused("unknown_opcode.pt", mentioning: ["unsupported pickle opcode 0x49", "byte 3"])
  }

  /// Without care, releasing 300,000 nested values recurses once per level and overflows the stack.
  func testDeeplyNestedValuesAreFreedWithoutCrashing() {
    assertRefused("deep_tuples.pt", mentioning: ["the pickle holds a tuple, not a dict"])
    assertRefused("deep_dicts.pt", mentioning: ["key a holds a dict, not a tensor"])
  }

  func testTruncatedPickle() {
    assertRefused("truncated_pickle.pt", mentioning: ["truncated pickle"])
  }

  func testNotAZipFile() {
    assertRefused("not_a_zip.pt", mentioning: ["not a PyTorch zip checkpoint"])
  }

  func testTruncatedZip() {
    assertRefused("truncated_zip.pt", mentioning: ["not a PyTorch zip checkpoint", "truncated"])
  }

  func testLegacyFormatIsNamed() {
    assertRefused("legacy_format.pt", mentioning: ["legacy (pre-1.6) torch.save format"])
  }

  func testZipWithoutDataPickle() {
    assertRefused("no_data_pkl.pt", mentioning: ["no <prefix>/data.pkl"])
  }

  func testBigEndianByteOrder() {
    assertRefused("big_endian.pt", mentioning: ["big-endian"])
  }

  func testCorruptStorageFailsItsChecksum() {
    assertRefused("corrupt_storage.pt", mentioning: ["archive/data/0", "CRC-32 mismatch"])
  }

  func testTopLevelObjectMustBeADict() {
    assertRefused("not_a_state_dict.pt", mentioning: ["does not hold a state dict", "list"])
  }

  func testMalformedPickles() {
    assertRefused(
      "malformed_stack_underflow.pt", mentioning: ["malformed pickle", "byte 2", "REDUCE: stack underflow"])
    assertRefused("malformed_memo.pt", mentioning: ["BINGET: memo entry 5 was never stored"])
    assertRefused("malformed_setitem_target.pt", mentioning: ["SETITEM target is not a dict"])
    assertRefused(
      "malformed_rebuild_arguments.pt", mentioning: ["_rebuild_tensor_v2 expects 6 or 7 arguments, got 3"])
  }

  func testStateDictValuesMustBeTensors() {
    assertRefused("non_tensor_value.pt", mentioning: ["key step holds a int, not a tensor"])
  }

  func testNegativeStride() {
    assertRefused("negative_stride.pt", mentioning: ["tensor weight", "negative stride in [-3, 1]"])
  }

  func testSizesAndStridesOfDifferentRank() {
    assertRefused("rank_mismatch.pt", mentioning: ["tensor weight", "2 sizes [2, 3] but 1 strides [1]"])
  }

  func testOneStorageDeclaredWithTwoSizes() {
    assertRefused(
      "storage_declared_twice.pt",
      mentioning: ["tensor second", "storage 0 is declared as 4 float32 here but as 6 float32"])
  }

  func testTensorLargerThanItsStorage() {
    assertRefused(
      "tensor_larger_than_storage.pt",
      mentioning: ["tensor weight", "size [10]", "reach element 9, outside its storage of 4"])
  }

  func testStrideReachingOutsideTheStorage() {
    assertRefused(
      "stride_outside_storage.pt", mentioning: ["tensor weight", "stride [4, 1]", "outside its storage of 6"])
  }

  func testOffsetReachingOutsideTheStorage() {
    assertRefused("offset_outside_storage.pt", mentioning: ["tensor weight", "offset 5", "reach element 6"])
  }

  func testNegativeSize() {
    assertRefused("negative_size.pt", mentioning: ["tensor weight", "negative size in [-1, 3]"])
  }

  func testOverflowingSize() {
    assertRefused("overflowing_size.pt", mentioning: ["tensor weight", "overflows"])
  }

  func testHugeBroadcastIsRefusedBeforeAllocating() {
    // 2^41 elements from a storage of 6 via stride 0: legal in torch, absurd here.
    assertRefused("huge_broadcast.pt", mentioning: ["tensor weight", "2199023255552 elements"])
  }

  func testStorageEntryShorterThanDeclared() {
    assertRefused(
      "storage_shorter_than_declared.pt",
      mentioning: ["archive/data/0", "tensor weight", "40 bytes, the pickle declares 400"])
  }

  func testMissingStorageEntry() {
    assertRefused("missing_storage.pt", mentioning: ["tensor weight", "archive/data/7", "missing"])
  }

  func testMissingFile() {
    assertRefused("no_such_file.pt", mentioning: ["cannot read checkpoint"])
  }

  func testDirectoryIsNotAFile() throws {
    let url = Fixtures.url("checkpoints")
    XCTAssertThrowsError(try Checkpoint.load(contentsOf: url)) { error in
      XCTAssertTrue(error.localizedDescription.contains("not a regular file"), error.localizedDescription)
    }
  }
}
