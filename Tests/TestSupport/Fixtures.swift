import Foundation

/// Paths into the committed test data under Tests/Fixtures.
public enum Fixtures {
  public static let root: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")

  public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

  /// The repository's root (where Package.swift is).
  public static let repository: URL = root.deletingLastPathComponent().deletingLastPathComponent()
}

/// A committed fixture file is not where it should be: a failure, never a skip.
public struct MissingFixture: Error, CustomStringConvertible {
  public let path: String
  public init(path: String) { self.path = path }
  public var description: String {
    "missing fixture \(path): it is committed in the repository (regenerate with the Scripts/ that made it)"
  }
}
