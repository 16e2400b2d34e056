import Foundation
import MobileSAM

/// Which model a run used, as `predict` and `bench` report it: the kind read from the
/// checkpoint's shapes (vit_t, vit_b, vit_l, vit_h or vit_custom) and the file's SHA-256.
public struct ModelIdentity: Sendable, Equatable {
  public var kind: String
  public var sha256: String

  /// Hashes the whole file (read again; after loading it is in the page cache).
  public init(model: MobileSAMModel, file url: URL) throws {
    kind = model.kind.rawValue
    sha256 = try JobRunner.sha256(of: url)
  }
}
