import Foundation
import XCTest

@testable import SAMBatch

final class ModelDigestsTests: XCTestCase {
  /// SHA-256 of "abc" (FIPS 180-2, appendix B.1).
  private let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

  func testDigestIsTheFilesSHA256AndIsKeptOnDisk() throws {
    let folder = try temporaryFolder()
    let model = try write("abc", in: folder)
    let digests = ModelDigests(directory: folder.appendingPathComponent("cache"), settled: 0)
    XCTAssertEqual(try digests.sha256(of: model), abc)
    let kept = try FileManager.default.contentsOfDirectory(
      atPath: folder.appendingPathComponent("cache").path)
    XCTAssertEqual(kept.count, 1)
    let text = try String(contentsOf: folder.appendingPathComponent("cache/\(kept[0])"), encoding: .utf8)
    XCTAssertEqual(text, abc + "\n" + model.path + "\n")
  }

  /// The entry on disk is what answers for the same version of the file (a planted digest shows it).
  func testEntryOnDiskAnswersForTheSameVersionOfTheFile() throws {
    let folder = try temporaryFolder()
    let model = try write("abc", in: folder)
    let version = try XCTUnwrap(FileVersion(model))
    let planted = String(repeating: "0", count: 64)
    try Data((planted + "\n").utf8).write(to: folder.appendingPathComponent(version.name))
    XCTAssertEqual(try ModelDigests(directory: folder, settled: 0).sha256(of: model), planted)
  }

  func testChangedFileIsHashedAgain() throws {
    let folder = try temporaryFolder()
    let model = try write("abd", in: folder)
    let digests = ModelDigests(directory: folder.appendingPathComponent("cache"), settled: 0)
    let first = try digests.sha256(of: model)
    usleep(20_000)  // past the file system's clock tick
    let handle = try FileHandle(forWritingTo: model)  // in place: same inode, same size
    try handle.write(contentsOf: Data("abc".utf8))
    try handle.close()
    XCTAssertNotEqual(first, abc)
    XCTAssertEqual(try digests.sha256(of: model), abc)
  }

  /// A file changed just now is hashed but not remembered (its times could survive another write).
  func testRecentlyChangedFileIsNotRemembered() throws {
    let folder = try temporaryFolder()
    let model = try write("abc", in: folder)
    let cache = folder.appendingPathComponent("cache")
    XCTAssertEqual(try ModelDigests(directory: cache, settled: 3600).sha256(of: model), abc)
    XCTAssertFalse(FileManager.default.fileExists(atPath: cache.path))
  }

  func testUnusableCacheFolderStillHashes() throws {
    let folder = try temporaryFolder()
    let model = try write("abc", in: folder)
    // The cache "folder" lies under a regular file: nothing can be read or written there.
    let digests = ModelDigests(directory: model.appendingPathComponent("cache"), settled: 0)
    XCTAssertEqual(try digests.sha256(of: model), abc)
  }

  func testMissingFileIsAModelError() throws {
    let folder = try temporaryFolder()
    let missing = folder.appendingPathComponent("missing.pt")
    XCTAssertThrowsError(try ModelDigests(directory: folder, settled: 0).sha256(of: missing)) { error in
      XCTAssertTrue(error.localizedDescription.contains(missing.path), error.localizedDescription)
    }
  }

  func testDefaultFolderFollowsXDGThenHome() {
    XCTAssertEqual(
      ModelDigests.defaultDirectory(["XDG_CACHE_HOME": "/x", "HOME": "/h"])?.path, "/x/sambatch/model-sha256")
    XCTAssertEqual(ModelDigests.defaultDirectory(["HOME": "/h"])?.path, "/h/.cache/sambatch/model-sha256")
    XCTAssertNil(ModelDigests.defaultDirectory(["XDG_CACHE_HOME": "relative"]))
  }

  private func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("digests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
  }

  private func write(_ text: String, in folder: URL) throws -> URL {
    let url = folder.appendingPathComponent("model.pt")
    try Data(text.utf8).write(to: url)
    return url
  }
}
