import Foundation

/// Paths into the committed test data under Tests/Fixtures.
public enum Fixtures {
  public static let root: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

  public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

  /// The repository's root (where Package.swift is).
  public static let repository: URL = root.deletingLastPathComponent().deletingLastPathComponent()
}
