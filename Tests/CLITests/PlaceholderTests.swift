import TestSupport
import XCTest

final class CLITestsPlaceholder: XCTestCase {
  func testFixturesFolderExists() {
    XCTAssertTrue(FileManager.default.fileExists(atPath: Fixtures.url("images/picture1.jpg").path))
  }
}
